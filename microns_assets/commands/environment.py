"""Where a command works: settings from flags over environment, the Dagster home, a connection.

Flags win over `MICRONS_*` environment variables, which win over the defaults of `Settings`.
The resolved settings are written back to `os.environ`, so everything the command starts
(worker processes, `dagster dev`, the code location) sees the same values.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from microns_assets.settings import (
    EMBEDDED,
    ENV_DATA_DIR,
    ENV_DATASTACK,
    ENV_SERVER,
    Settings,
    celery_broker_from_env,
    check_data_dir,
    check_server,
    chunk_runs_from_env,
    executor_from_env,
    in_flight_from_env,
    poll_minutes_from_env,
    static_base_from_env,
)

DEFAULT_HOME = ".dagster_home"


class CommandError(ValueError):
    """Bad input to a command (a flag, a file it names): printed, exit status 2."""


#: The instance config a new Dagster home starts with (edit `dagster.yaml` to change it).
DAGSTER_YAML = """\
# Written by microns-assets for a new Dagster home; edit freely.
# Dagster's SQLite storage (the same files, in this folder), with its database engines and
# connections kept instead of rebuilt for every event: ~25 % less time per version. Delete these
# five lines to use Dagster's own class; moved this folder? Update base_dir.
storage:
  custom:
    module: microns_assets.instance_storage
    class: SqliteStorage
    config: {{base_dir: {home}}}
# Steps in a pool run at most `default_limit` at a time across all runs of this instance.
# Our only pool is `cave`: every step that queries CAVE (raw tables, synapse chunks). Each such
# step has at most MICRONS_CAVE_IN_FLIGHT (default 4) requests in flight, so CAVE sees at most
# default_limit x MICRONS_CAVE_IN_FLIGHT requests at once from this instance.
concurrency:
  pools:
    default_limit: 1
# Runs the daemon launched (web UI, backfills, sensors) whose start hangs are marked failed.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
# No usage statistics from a folder we created for you; set to true to share them.
telemetry:
  enabled: false
"""


def dagster_yaml(home: Path) -> str:
    """The `dagster.yaml` of a new Dagster home at `home` (an absolute path)."""
    return DAGSTER_YAML.format(home=json.dumps(str(home)))


def add_location_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command that reads or writes results takes."""
    parser.add_argument(
        "--server", default=None, help=f"CAVE server URL or `embedded` (${ENV_SERVER})"
    )
    parser.add_argument("--datastack", default=None, help=f"datastack name (${ENV_DATASTACK})")
    parser.add_argument(
        "--data-dir", default=None, help=f"where the Parquet files go (${ENV_DATA_DIR}, ./data)"
    )
    parser.add_argument(
        "--dagster-home",
        default=None,
        help=f"Dagster instance folder ($DAGSTER_HOME, ./{DEFAULT_HOME})",
    )


def resolve(args: argparse.Namespace) -> tuple[Settings, Path]:
    """Settings and Dagster home from flags and environment; exported to `os.environ`."""
    environ = dict(os.environ)
    if args.server:
        environ[ENV_SERVER] = args.server
        if not args.datastack:
            environ.pop(ENV_DATASTACK, None)  # the server's default datastack
    if args.datastack:
        environ[ENV_DATASTACK] = args.datastack
    if args.data_dir:
        environ[ENV_DATA_DIR] = str(_absolute(args.data_dir))
    settings = Settings.from_env(environ)
    check_server(settings)
    check_data_dir(settings)
    for read in (
        static_base_from_env,
        poll_minutes_from_env,
        in_flight_from_env,
        executor_from_env,
        celery_broker_from_env,
        chunk_runs_from_env,
    ):
        read(environ)  # the code location reads them: fail here, saying why
    home = Path(args.dagster_home or os.environ.get("DAGSTER_HOME") or DEFAULT_HOME).resolve()
    config = home / "dagster.yaml"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if not config.exists():
            config.write_text(dagster_yaml(home))
    except OSError as err:
        raise CommandError(
            f"cannot use {home} as the Dagster home (--dagster-home, $DAGSTER_HOME): {err}. "
            "Give a folder (it is created if missing)"
        ) from err
    _check_storage_folder(home)
    os.environ.update(
        {
            "DAGSTER_HOME": str(home),
            ENV_SERVER: settings.server,
            ENV_DATASTACK: settings.datastack,
            ENV_DATA_DIR: settings.data_dir,
        }
    )
    return settings, home


def _check_storage_folder(home: Path) -> None:
    """Refuse a home whose `dagster.yaml` keeps its SQLite files in another folder.

    The `dagster.yaml` we write names the home's absolute path; a home moved or copied elsewhere
    would otherwise read and write the old folder's instance without a word.
    """
    import yaml

    try:
        config = yaml.safe_load((home / "dagster.yaml").read_text()) or {}
        custom = config["storage"]["custom"]
        ours = custom["module"] == "microns_assets.instance_storage"
        base_dir = Path(custom["config"]["base_dir"])
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        return  # not the storage we configure: Dagster checks its own config
    if ours and base_dir.resolve() != home.resolve():
        raise CommandError(
            f"{home / 'dagster.yaml'} keeps this instance's files in {base_dir}, not in "
            f"{home} (was the folder moved or copied?). Set `base_dir: {home}` under "
            "`storage: custom: config:` in that file to use the files here."
        )


def _absolute(path: str) -> str:
    return path if "://" in path else str(Path(path).resolve())


class InstanceError(RuntimeError):
    """The Dagster instance of a home cannot be opened (storage unreachable or misconfigured)."""


def open_instance(home: Path):  # -> dg.DagsterInstance (no Dagster import at module level)
    """The Dagster instance at `home` (`DAGSTER_HOME`), or `InstanceError` saying what to fix."""
    import dagster as dg

    try:
        return dg.DagsterInstance.get()
    except Exception as err:  # whatever the storage raises: name the setting behind it
        unset = re.search(r'environment variable "(\w+)" which is not set', str(err))
        first = (
            f"environment variable {unset[1]} is not set"
            if unset
            else (str(err).strip().splitlines() or [type(err).__name__])[0]
        )
        raise InstanceError(
            f"cannot open the Dagster instance at {home}: {type(err).__name__}: {first}\n"
            f"Check {_storage_setting(home)} in {home / 'dagster.yaml'}."
        ) from err


def _storage_setting(home: Path) -> str:
    """Which setting of the home's `dagster.yaml` says where the instance's storage is."""
    import yaml

    try:
        config = yaml.safe_load((home / "dagster.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        return f"the file itself ({err})"
    storage = config.get("storage") if isinstance(config, dict) else None
    if not isinstance(storage, dict) or not storage:
        return "`storage` (none set: SQLite files in the home)"
    kind, options = next(iter(storage.items()))
    for key, value in (options or {}).items() if isinstance(options, dict) else []:
        if isinstance(value, dict) and "env" in value:
            state = "set" if os.environ.get(value["env"]) else "NOT set"
            return f"`storage.{kind}.{key}`, read from ${value['env']} ({state} here)"
    return f"`storage.{kind}`"


@contextmanager
def cave_connection(settings: Settings) -> Iterator[object]:
    """A `CaveConnection` to the configured server (an in-process emulator when embedded)."""
    from microns_assets.cave import CaveConnection, CaveSettings
    from microns_assets.emulator import Emulator

    token = os.environ.get("CAVE_TOKEN") or None
    if settings.server != EMBEDDED:
        yield CaveConnection(CaveSettings(settings.datastack, settings.server, token=token))
        return
    with Emulator() as emulator:
        yield CaveConnection(CaveSettings(settings.datastack, emulator.url, token=token))
