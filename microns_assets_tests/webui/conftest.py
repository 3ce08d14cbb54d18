"""Version 1300 materialized the way a web UI user does it: "Materialize all", run by the daemon.

Package-scoped: `dagster-webserver` and `dagster-daemon` start on an empty sqlite instance in a
temp `DAGSTER_HOME`; the test sends the GraphQL `launchPartitionBackfill` the UI's "Materialize
all" sends (every asset, partition 1300 of the roots) and waits for the daemon to finish the
backfill; then every test of this package reads the result through the same webserver. Meanwhile
`microns-assets materialize --submit` hands version 1718 to the same daemon as a backfill of its
own and follows it (the daemon's ticks serve both at once; `test_submit.py` checks it). The
daemon is `fast_daemon`'s: its backfill ticks come every few seconds, not every 30.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from microns_assets.emulator import Emulator
from microns_assets_tests.webui import expected
from microns_assets_tests.webui.server import graphql, running_daemon, running_webserver

VERSION = "1300"
SUBMITTED = "1718"  # the version `materialize --submit` hands to the daemon
INSTANCE_YAML = "telemetry:\n  enabled: false\n"
#: Memory-backed when there is one: Dagster's sqlite storage fsyncs every event.
TMPFS = Path("/dev/shm")
#: A version takes three backfill stages and several run launches: a generous bound.
BACKFILL_TIMEOUT_S = 420

#: What the web UI sends for "Materialize all" with a partition chosen for the roots.
LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
  } }
"""
BACKFILL_STATUS = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } ... on PythonError { message } } }
"""
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@dataclass(frozen=True)
class Materialized:
    """Where the materialized version lives, and how the backfill went."""

    home: Path
    data_dir: Path
    server: str
    datastack: str
    seconds: float
    backfill_id: str
    status: str
    submitted: subprocess.CompletedProcess

    @property
    def version_dir(self) -> Path:
        """The folder of the version's Parquet files."""
        return self.data_dir / self.datastack / f"v{VERSION}"


@dataclass(frozen=True)
class Webserver:
    """A running `dagster-webserver` and the instance it serves."""

    url: str
    materialized: Materialized


def materialize_all(url: str, partition: str) -> str:
    """Launch the backfill "Materialize all" launches; its id."""
    params = {
        "assetSelection": [{"path": key.split("/")} for key in expected.BACKFILLED],
        "partitionNames": [partition],
        "fromFailure": False,
        "tags": [],
    }
    result = graphql(url, LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def wait_for_backfill(url: str, backfill_id: str, timeout_s: float) -> str:
    """Poll the backfill until it ends; its final status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        data = graphql(url, BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        assert data["__typename"] == "PartitionBackfill", data
        if data["status"] in FINISHED:
            return data["status"]
        time.sleep(1)
    raise AssertionError(f"backfill {backfill_id} not finished after {timeout_s} s")


def start_submit(
    env: dict[str, str], home: Path, data_dir: Path, emu: Emulator
) -> subprocess.Popen:
    """`microns-assets materialize --submit` of `SUBMITTED`, in the background."""
    args = [
        sys.executable, "-m", "microns_assets.cli", "materialize", "--version", SUBMITTED,
        "--submit", "--server", emu.url, "--datastack", emu.datastack,
        "--data-dir", str(data_dir), "--dagster-home", str(home),
    ]  # fmt: skip
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="package")
def webserver(
    session_emulator: Emulator, emulator_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Webserver]:
    """Webserver and daemon on a new instance, version 1300 backfilled through the UI's API."""
    tmpfs = TMPFS if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) else None
    data_dir = tmp_path_factory.mktemp("webui-data")
    logs = tmp_path_factory.mktemp("webui-logs")
    emu = session_emulator
    with tempfile.TemporaryDirectory(prefix="microns-webui-home-", dir=tmpfs) as home_dir:
        home = Path(home_dir)
        (home / "dagster.yaml").write_text(INSTANCE_YAML)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("mat_version", [VERSION])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MICRONS_", "DAGSTER_"))}
        env.update(
            DAGSTER_HOME=str(home),
            MICRONS_CAVE_SERVER=emu.url,
            MICRONS_DATASTACK=emu.datastack,
            MICRONS_DATA_DIR=str(data_dir),
        )
        with (
            running_webserver(env, logs / "dagster-webserver.log") as url,
            running_daemon(env, logs / "dagster-daemon.log"),
        ):
            start = time.perf_counter()
            backfill_id = materialize_all(url, VERSION)
            cli_env = {**env, "MICRONS_EMULATOR_CACHE": str(emulator_cache)}
            for name in ("MICRONS_CAVE_SERVER", "MICRONS_DATASTACK", "MICRONS_DATA_DIR"):
                cli_env.pop(name)  # the command gets them as flags, as a user gives them
            submit = start_submit(cli_env, home, data_dir, emu)
            try:
                status = wait_for_backfill(url, backfill_id, BACKFILL_TIMEOUT_S)
                seconds = time.perf_counter() - start
                stdout, stderr = submit.communicate(timeout=BACKFILL_TIMEOUT_S)
            finally:
                submit.kill()
            print(
                f"\n'Materialize all' of v{VERSION} through the daemon: {status} in {seconds:.1f} s"
            )
            submitted = subprocess.CompletedProcess(submit.args, submit.returncode, stdout, stderr)
            done = Materialized(
                home, data_dir, emu.url, emu.datastack, seconds, backfill_id, status, submitted
            )
            yield Webserver(url, done)
