"""A Dagster instance with version 1300 fully materialized, served by `dagster-webserver`.

Package-scoped: the whole graph is materialized once (raw tables and units, all 32 synapse
chunks, the roll-up) into a real sqlite instance in a temp `DAGSTER_HOME`, then one webserver
serves it for every test of this package and is stopped after them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from microns_assets.emulator import Emulator
from microns_assets.materialize import materialize_version
from microns_assets.settings import Settings
from microns_assets_tests.webui.server import running_webserver

VERSION = "1300"
INSTANCE_YAML = "telemetry:\n  enabled: false\n"
#: Memory-backed when there is one: Dagster's sqlite storage fsyncs every event, and on a busy
#: disk that triples the time of the 34 runs (measured: ~0.3 s vs ~1 s per chunk run).
TMPFS = Path("/dev/shm")


@dataclass(frozen=True)
class Materialized:
    """Where the materialized version lives, and how long materializing it took."""

    home: Path
    data_dir: Path
    server: str
    datastack: str
    seconds: float

    @property
    def version_dir(self) -> Path:
        """The folder of the version's Parquet files."""
        return self.data_dir / self.datastack / f"v{VERSION}"


@dataclass(frozen=True)
class Webserver:
    """A running `dagster-webserver` and the instance it serves."""

    url: str
    materialized: Materialized


def _materialize(instance: dg.DagsterInstance, emu: Emulator, data_dir: Path) -> None:
    """Materialize version `VERSION` as `microns-assets materialize` does (same driver)."""
    settings = Settings(server=emu.url, datastack=emu.datastack, data_dir=str(data_dir))
    report = materialize_version(int(VERSION), instance=instance, settings=settings, jobs=2)
    assert report.success, f"materialize failed: {report.failures}"


@pytest.fixture(scope="package")
def materialized(
    session_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Materialized]:
    """A persistent sqlite instance and data dir with version 1300 fully materialized."""
    tmpfs = TMPFS if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) else None
    data_dir = tmp_path_factory.mktemp("webui-data")
    with tempfile.TemporaryDirectory(prefix="microns-webui-home-", dir=tmpfs) as home_dir:
        home = Path(home_dir)
        (home / "dagster.yaml").write_text(INSTANCE_YAML)
        start = time.perf_counter()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            _materialize(instance, session_emulator, data_dir)
        seconds = time.perf_counter() - start
        print(f"\nmaterialized v{VERSION} (units, 32 chunks, roll-up) in {seconds:.1f} s")
        emu = session_emulator
        yield Materialized(home, data_dir, emu.url, emu.datastack, seconds)


@pytest.fixture(scope="package")
def webserver(materialized: Materialized, tmp_path_factory) -> Iterator[Webserver]:
    """`dagster-webserver` on the repo's workspace.yaml, serving the materialized instance."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICRONS_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(materialized.home),
        MICRONS_CAVE_SERVER=materialized.server,
        MICRONS_DATASTACK=materialized.datastack,
        MICRONS_DATA_DIR=str(materialized.data_dir),
    )
    log = tmp_path_factory.mktemp("webui-logs") / "dagster-webserver.log"
    start = time.perf_counter()
    with running_webserver(env, log) as url:
        print(f"\ndagster-webserver ready at {url} in {time.perf_counter() - start:.1f} s")
        yield Webserver(url, materialized)
