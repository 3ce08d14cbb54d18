"""Settings read from the environment: which CAVE, which datastack, where the data goes.

- `MICRONS_CAVE_SERVER`: CAVE global server URL, or `embedded` for the in-process emulator.
  Default `https://global.daf-apis.com`.
- `MICRONS_DATASTACK`: datastack name. Default `minnie65_public`, or `minnie65_synthetic` when
  the server is `embedded`.
- `MICRONS_DATA_DIR`: root of the Parquet files, a local path or an fsspec URL. Default `./data`.
- `CAVE_TOKEN`: CAVE API token, read by the resource at run time and never logged.
- `MICRONS_VERSIONS_POLL_MINUTES`: how often the `cave_versions` sensor polls CAVE, in whole
  minutes. Default 60.
- `MICRONS_CAVE_IN_FLIGHT`: requests to CAVE in flight at once per run, at most. Default 4.
- `MICRONS_EXECUTOR`: how a run executes its steps: `in_process` (default; the steps are
  I/O-bound and share one CAVE connection), `multiprocess` (a process per step) or `celery`
  (each step a task for Celery workers, which may live on other machines: `deploy/celery/`).
- `MICRONS_CELERY_BROKER`: the Celery broker URL with `MICRONS_EXECUTOR=celery`, a Redis URL
  (`redis://:password@broker.example.org:6379/0`); it is also the result backend.
- `MICRONS_CHUNK_RUNS`: into how many runs a backfill splits a version's 32 synapse chunks
  (default 1: all in one run; one of `CHUNK_RUN_COUNTS`: 1-8, 11, 16, 32). With Celery
  workers or Kubernetes run pods, N runs keep up to N of them busy.
- `MICRONS_STATIC_BASE`: root URL of the static dumps of expired versions (the folder holding
  `v{N}/`). Default: CAVE's public bucket for `minnie65_public`
  (`PUBLIC_STATIC_BASE`), `<server>/static/minnie65_synthetic` for the emulator's datastack.
- `MICRONS_STATIC_DIR`: local folder for the downloaded dump files (one subfolder per version).
  Default `<data dir>/<datastack>/static` when the data dir is local, else
  `~/.cache/microns_assets/static/<datastack>`.
- `MICRONS_FUNCTIONAL_URL`: URL of the functional recordings (one HDF5 file) that the
  `functional_recordings` asset downloads. Default: the Hugging Face file microns-combiner reads
  (`PUBLIC_FUNCTIONAL_URL`) for `minnie65_public`, `<server>/functional/minnie65_synthetic/
  microns.h5` for the emulator's datastack. The file is kept at `functional_file`.

Plain Python: read once when the definitions are built; reading them does no I/O.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from microns_assets.catalogue import FUNCTIONAL_RECORDINGS
from microns_assets.cave import GLOBAL_SERVER
from microns_assets.emulator.catalog import DATASTACK as SYNTHETIC_DATASTACK
from microns_assets.processing.chunks import N_CHUNKS

ENV_SERVER = "MICRONS_CAVE_SERVER"
ENV_DATASTACK = "MICRONS_DATASTACK"
ENV_DATA_DIR = "MICRONS_DATA_DIR"
ENV_TOKEN = "CAVE_TOKEN"
ENV_POLL_MINUTES = "MICRONS_VERSIONS_POLL_MINUTES"
ENV_EXECUTOR = "MICRONS_EXECUTOR"
ENV_IN_FLIGHT = "MICRONS_CAVE_IN_FLIGHT"
ENV_CELERY_BROKER = "MICRONS_CELERY_BROKER"
ENV_CHUNK_RUNS = "MICRONS_CHUNK_RUNS"
ENV_STATIC_BASE = "MICRONS_STATIC_BASE"
ENV_STATIC_DIR = "MICRONS_STATIC_DIR"
ENV_FUNCTIONAL_URL = "MICRONS_FUNCTIONAL_URL"
PUBLIC_FUNCTIONAL_URL = "https://huggingface.co/datasets/NeuroBLab/MICrONS/resolve/main/microns.h5"
PUBLIC_STATIC_BASE = "https://storage.googleapis.com/mat_dbs/public/minnie65_phase3_v1"
DEFAULT_IN_FLIGHT = 4
EXECUTORS = ("in_process", "multiprocess", "celery")
#: Broker URL schemes: Redis, which is the result backend too (tested: redis).
BROKER_SCHEMES = ("redis", "rediss")
DEFAULT_POLL_MINUTES = 60
EMBEDDED = "embedded"
PUBLIC_DATASTACK = "minnie65_public"


class SettingsError(ValueError):
    """An environment variable holds a value the pipeline cannot use."""


@dataclass(frozen=True)
class Settings:
    """Effective settings; `from_env` fills the defaults."""

    server: str
    datastack: str
    data_dir: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from environment variables, with the documented defaults."""
        server = environ.get(ENV_SERVER) or GLOBAL_SERVER
        default_ds = SYNTHETIC_DATASTACK if server == EMBEDDED else PUBLIC_DATASTACK
        data_dir = environ.get(ENV_DATA_DIR) or str(Path("data").resolve())
        return cls(
            server=server.rstrip("/"),
            datastack=environ.get(ENV_DATASTACK) or default_ds,
            data_dir=data_dir,
        )


def check_server(settings: Settings) -> str:
    """The CAVE server setting, validated: `embedded` or an http(s) URL.

    Read by the code location and the commands, not by `load`, which needs no server.
    """
    server = settings.server
    if server == EMBEDDED or _is_http_url(server):
        return server
    raise SettingsError(
        f"{ENV_SERVER} (or --server) is {server!r}: give the CAVE global server's URL "
        f"(http:// or https://, default {GLOBAL_SERVER}) or `{EMBEDDED}` for the in-process "
        "emulator"
    )


def check_data_dir(settings: Settings) -> str:
    """The data dir, validated: a local path, or a URL of a filesystem fsspec can open here."""
    data_dir = settings.data_dir
    if "://" not in data_dir:
        return data_dir
    import fsspec

    protocol = data_dir.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except (ValueError, ImportError) as err:
        raise SettingsError(
            f"{ENV_DATA_DIR} (or --data-dir) is {data_dir!r}, whose filesystem cannot be opened "
            f"here ({err}): give a local path, or an fsspec URL such as s3://bucket/folder "
            "(with its package installed)"
        ) from err
    return data_dir


def static_base_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """`MICRONS_STATIC_BASE` as set ("" when unset: the datastack's default), validated."""
    given = (environ.get(ENV_STATIC_BASE) or "").strip()
    if given and not _is_http_url(given):
        raise SettingsError(
            f"{ENV_STATIC_BASE} is {given!r}: give the http(s) URL of the folder that holds the "
            f"static dumps' v{{N}}/ folders, e.g. {PUBLIC_STATIC_BASE}, or unset it for the "
            "datastack's default"
        )
    return given


def _is_http_url(text: str) -> bool:
    """Whether `text` is an http(s) URL with a host."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def static_dir_from_env(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """`MICRONS_STATIC_DIR`, or its default for `settings` (see the module docstring)."""
    if given := (environ.get(ENV_STATIC_DIR) or "").strip():
        return given
    if "://" not in settings.data_dir or settings.data_dir.startswith("file://"):
        root = settings.data_dir.removeprefix("file://")
        return str(Path(root) / settings.datastack / "static")
    return str(Path.home() / ".cache" / "microns_assets" / "static" / settings.datastack)


def static_base(datastack: str, server: str, environ: Mapping[str, str] = os.environ) -> str:
    """Where the static dumps of `datastack` are: `MICRONS_STATIC_BASE` or its default.

    `server` is the CAVE server actually used (the emulator's URL when embedded).
    """
    if given := (environ.get(ENV_STATIC_BASE) or "").strip():
        return given.rstrip("/")
    if datastack == PUBLIC_DATASTACK:
        return PUBLIC_STATIC_BASE
    if datastack == SYNTHETIC_DATASTACK:
        return f"{server.rstrip('/')}/static/{SYNTHETIC_DATASTACK}"
    raise SettingsError(
        f"Expired versions of {datastack!r} are read from static dumps, and there is no known "
        f"location for this datastack's: set {ENV_STATIC_BASE} to the URL of the folder that "
        "holds its v{N}/ folders."
    )


def functional_url(datastack: str, server: str, environ: Mapping[str, str] = os.environ) -> str:
    """Where the functional recordings of `datastack` are: `MICRONS_FUNCTIONAL_URL` or default.

    `server` is the CAVE server actually used (the emulator's URL when embedded).
    """
    if given := (environ.get(ENV_FUNCTIONAL_URL) or "").strip():
        return given
    if datastack == PUBLIC_DATASTACK:
        return PUBLIC_FUNCTIONAL_URL
    if datastack == SYNTHETIC_DATASTACK:
        return f"{server.rstrip('/')}/functional/{SYNTHETIC_DATASTACK}/microns.h5"
    raise SettingsError(
        f"There is no known functional recordings file for datastack {datastack!r}: set "
        f"{ENV_FUNCTIONAL_URL} to the URL of its HDF5 file."
    )


def functional_file(settings: Settings) -> Path:
    """The local path of the downloaded functional recordings (HDF5 needs a local file).

    `<data dir>/<datastack>/functional/microns.h5` when the data dir is local, else
    `~/.cache/microns_assets/functional/<datastack>/microns.h5`.
    """
    if "://" not in settings.data_dir or settings.data_dir.startswith("file://"):
        root = Path(settings.data_dir.removeprefix("file://")) / settings.datastack
        return root / FUNCTIONAL_RECORDINGS.layout
    cache = Path.home() / ".cache" / "microns_assets" / "functional"
    return cache / settings.datastack / Path(FUNCTIONAL_RECORDINGS.layout).name


def _whole_number(environ: Mapping[str, str], name: str, default: int, unit: str) -> int:
    """A positive whole number from the environment, or `default` when unset."""
    raw = environ.get(name)
    if not raw:
        return default
    text = raw.strip()
    if not (text.isascii() and text.isdecimal()) or int(text) < 1:
        raise SettingsError(
            f"{name}={raw!r} is not a whole number of {unit} of at least 1: set it to e.g. "
            f"{default * 2}, or unset it for the default of {default}."
        )
    return int(text)


def poll_minutes_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """`MICRONS_VERSIONS_POLL_MINUTES`, validated (read by the code location, not by `load`)."""
    return _whole_number(environ, ENV_POLL_MINUTES, DEFAULT_POLL_MINUTES, "minutes")


def in_flight_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """`MICRONS_CAVE_IN_FLIGHT`, validated (read by the code location and the commands)."""
    return _whole_number(environ, ENV_IN_FLIGHT, DEFAULT_IN_FLIGHT, "requests")


def executor_from_env(environ: Mapping[str, str] = os.environ) -> str:
    """`MICRONS_EXECUTOR`, validated (read by the code location and the commands)."""
    name = (environ.get(ENV_EXECUTOR) or EXECUTORS[0]).strip()
    if name not in EXECUTORS:
        raise SettingsError(
            f"{ENV_EXECUTOR}={name!r} is not an executor: set it to one of {list(EXECUTORS)}, "
            f"or unset it for the default, {EXECUTORS[0]}."
        )
    return name


def _chunks_per_run(runs: int) -> int:
    return -(-N_CHUNKS // runs)


#: Run counts a version's chunks split into exactly: Dagster's multi-run policy cuts the range
#: into runs of at most ceil(32 / N) chunks, which gives N runs only for these N.
CHUNK_RUN_COUNTS = tuple(
    n for n in range(1, N_CHUNKS + 1) if -(-N_CHUNKS // _chunks_per_run(n)) == n
)


def chunk_runs_from_env(environ: Mapping[str, str] = os.environ) -> int:
    """`MICRONS_CHUNK_RUNS`, validated: a count of runs the 32 chunks split into exactly."""
    runs = _whole_number(environ, ENV_CHUNK_RUNS, 1, "runs")
    if runs not in CHUNK_RUN_COUNTS:
        below = max(n for n in CHUNK_RUN_COUNTS if n <= min(runs, N_CHUNKS))
        raise SettingsError(
            f"{ENV_CHUNK_RUNS}={runs}: a backfill cuts a version's {N_CHUNKS} synapse chunks "
            f"into runs of at most ceil({N_CHUNKS}/N) chunks, which makes exactly N runs only "
            f"for N in {list(CHUNK_RUN_COUNTS)}; set it to one of those, e.g. {below}."
        )
    return runs


def chunks_per_run(runs: int) -> int:
    """The most chunks one of `runs` chunk runs covers (its backfill policy's limit)."""
    return _chunks_per_run(runs)


def celery_broker_from_env(environ: Mapping[str, str] = os.environ) -> str | None:
    """`MICRONS_CELERY_BROKER`, validated; required (and only read) with the Celery executor."""
    if executor_from_env(environ) != "celery":
        return None
    url = (environ.get(ENV_CELERY_BROKER) or "").strip()
    if not url:
        raise SettingsError(
            f"{ENV_EXECUTOR}=celery needs {ENV_CELERY_BROKER}, the URL of the Celery broker the "
            "workers listen to, e.g. redis://broker.example.org:6379/0."
        )
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in BROKER_SCHEMES:
        raise SettingsError(
            f"{ENV_CELERY_BROKER}={redacted_url(url)!r} is not a Redis URL (the broker is also the "
            "result backend): it must start with redis:// or rediss://, e.g. "
            "redis://:password@broker.example.org:6379/0."
        )
    if scheme == "rediss" and "ssl_cert_reqs=" not in url:
        raise SettingsError(
            f"{ENV_CELERY_BROKER}: a rediss:// URL needs ?ssl_cert_reqs=required (or optional, "
            "none), as Celery's Redis backend requires."
        )
    return url


def redacted_url(url: str) -> str:
    """The URL with the password of `scheme://user:password@host` replaced by `***`."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{head}://{user}{':***' if ':' in userinfo else ''}@{host}"
