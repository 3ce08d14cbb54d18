"""A Dagster instance on a real Postgres server (`deploy/postgres/dagster.yaml`), end to end.

The server is started by the test on a free loopback port (`servers.postgres_server`); each test
gets a database of its own. `materialize` runs as a user runs it, in a child process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from microns_assets.emulator import Faults
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.storage import read_frame
from microns_assets_tests.distributed.servers import postgres_server
from microns_assets_tests.loopback import free_port
from microns_assets_tests.materialize.cli_helpers import (
    aggregated_truth,
    assert_equals_truth,
    chunk_materializations,
    clean_env,
    materialize_args,
    run_cli,
    runs_of,
)
from microns_assets_tests.webui.server import WORKSPACE, running_daemon

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "postgres" / "dagster.yaml"
IN_FLIGHT = 2


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


def postgres_home(folder: Path) -> Path:
    """A Dagster home with the shipped Postgres `dagster.yaml`, as docs/scaling.md says."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(DEPLOY, folder / "dagster.yaml")
    return folder


def test_two_versions_at_once_on_postgres_share_the_cave_pool_exactly(
    postgres, session_emulator, emulator_cache, tmp_path
):
    """Two versions at once on a Postgres instance: complete, and within the pool's limit.

    The pool limit of 1 holds across both commands: never 2 x IN_FLIGHT queries in flight.
    """
    home, data = postgres_home(tmp_path / "home"), tmp_path / "data"
    env = {
        **clean_env(emulator_cache),
        "DAGSTER_PG_URL": postgres.create_database("two"),
        "MICRONS_CAVE_IN_FLIGHT": str(IN_FLIGHT),
    }
    # the pool exists before both commands start, as docs/scaling.md says: Dagster creates a
    # pool at its first claim, and two processes doing that at once on a new database race
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.event_log_storage.initialize_concurrency_limit_to_default("cave")
            assert instance.event_log_storage.get_concurrency_info("cave").slot_count == 1
    server = session_emulator.server
    assert server.stats.wait_idle(timeout_s=30)
    server.stats.reset()
    server.faults = Faults(latency_ms=30)
    try:
        children = []
        for version in ("1300", "1718"):
            args = materialize_args(session_emulator, home, data)
            args[args.index("1300")] = version
            pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
            children.append(subprocess.Popen(args, env=env, **pipes))
        outs = [child.communicate(timeout=600) for child in children]
    finally:
        server.faults = Faults()
    for child, (stdout, stderr) in zip(children, outs, strict=True):
        assert child.returncode == 0, stdout[-3000:] + stderr[-3000:]
    # both commands' CAVE steps ran, one at a time: the emulator never saw more than one
    # step's queries in flight, and saw that step's full concurrency (queries only: each
    # command's version check, outside the pool, may overlap the other command's step)
    assert server.stats.max_queries_in_flight == IN_FLIGHT
    # nothing went to SQLite files in the home: the instance is the database
    assert not (home / "history").exists()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = runs_of(home)
        materializations = chunk_materializations(home)
    assert len(runs) == 6 and all(r.is_success for r in runs)
    for version in ("1300", "1718"):
        assert sorted(m for m in materializations if m.startswith(f"{version}|")) == [
            f"{version}|{c}" for c in CHUNK_KEYS
        ]
    assert all(len(m) == 1 for m in materializations.values())  # each chunk once
    version_dir = UPath(data) / session_emulator.datastack / "v1300"
    merged = read_frame(version_dir / "synapses.parquet")
    units = read_frame(version_dir / "units.parquet")
    assert_equals_truth(merged, aggregated_truth(session_emulator, units))


def test_unreachable_postgres_is_one_clear_error_naming_the_setting(
    session_emulator, emulator_cache, tmp_path
):
    home = postgres_home(tmp_path / "home")
    env = {
        **clean_env(emulator_cache),
        "DAGSTER_PG_URL": f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/dagster",
    }
    out = run_cli(materialize_args(session_emulator, home, tmp_path / "data"), env)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "storage.postgres.postgres_url" in out.stderr and "$DAGSTER_PG_URL" in out.stderr
    assert str(home / "dagster.yaml") in out.stderr
    assert not (tmp_path / "data").exists()  # refused before any run


def test_an_unset_database_url_is_named(session_emulator, emulator_cache, tmp_path):
    home = postgres_home(tmp_path / "home")
    env = clean_env(emulator_cache)  # no DAGSTER_PG_URL
    out = run_cli(materialize_args(session_emulator, home, tmp_path / "data"), env)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "environment variable DAGSTER_PG_URL is not set" in out.stderr
    assert "$DAGSTER_PG_URL (NOT set here)" in out.stderr


def test_a_run_whose_process_dies_is_marked_failed_by_dagster(
    postgres, emulator, emulator_cache, tmp_path
):
    """A run the daemon launched, its process killed mid-run: Dagster itself fails the run."""
    home = postgres_home(tmp_path / "home")
    env = {
        **clean_env(emulator_cache),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": postgres.create_database("killed"),
        "MICRONS_CAVE_SERVER": emulator.url,
        "MICRONS_DATASTACK": emulator.datastack,
        "MICRONS_DATA_DIR": str(tmp_path / "data"),
    }
    dagster = Path(sys.executable).parent / "dagster"
    launch = [str(dagster), "job", "launch", "-w", str(WORKSPACE), "-j", "cave_raw_tables",
              "--tags", json.dumps({"dagster/partition": "1300"})]  # fmt: skip
    server = emulator.server
    server.faults = Faults(latency_ms=300)  # the run lasts long enough to be killed mid-run
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])
        with (
            running_daemon(env, tmp_path / "daemon.log"),
            dg.DagsterInstance.from_config(str(home)) as instance,
        ):
            instance.add_dynamic_partitions("mat_version", ["1300"])
            out = run_cli(launch, env)  # queued; the daemon's run queue launches it
            assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
            (run,) = instance.get_runs()
            pid = _run_process(instance, run.run_id, timeout_s=120)
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while not instance.get_run_by_id(run.run_id).is_finished:
                assert time.monotonic() < deadline, "the killed run is still not failed"
                time.sleep(0.5)
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
            messages = [e.message or "" for e in instance.all_logs(run.run_id)]
    assert any("SIGKILL" in m for m in messages), messages[-5:]


def _run_process(instance: dg.DagsterInstance, run_id: str, timeout_s: float) -> int:
    """The pid of the run's process, once it has started a step (from its engine event)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        logs = instance.all_logs(run_id)
        started = any(e.dagster_event and e.dagster_event.is_step_start for e in logs)
        for entry in logs:
            found = re.search(r"Started process for run \(pid: (\d+)\)", entry.message or "")
            if found and started:
                return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not start a step in {timeout_s} s")
