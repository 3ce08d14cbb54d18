"""The deployment of deploy/celery/ all at once, for real, on loopback.

A Postgres instance, `dagster-daemon`, two `dagster-celery` workers on a Redis broker, the data
dir on moto's S3 server.

The module's fixture submits version 1300 as a backfill (`materialize --submit`), its chunks in
two runs, and kills (SIGKILL) the Celery worker process that executes one of the chunk steps
once that step has stored a chunk; when the command has ended, it submits 1300 again. The tests
read what happened: the whole version through the deployment, with a worker lost on the way,
must equal what the emulator holds (synapses: its ground truth; units: `build_units` of the raw
tables the deployment stored). One version, not a clean one beside a killed one: each backfill
costs a minute or more of run launches and daemon ticks. The daemon is `fast_daemon`'s. The
CAVE emulator answers every query 20 ms late, so steps overlap as they would on a real server.

Which worker takes a task is Celery's business (the first idle worker polling Redis). On a
loaded 2-core machine the two chunk runs' processes can start 15 s apart, so the first chunk
step may be over before the second is sent and both land on one worker. So once a worker holds
the first chunk step, the fixture tells it (Celery's `cancel_consumer`) to take nothing more
until the first command has ended: the other chunk step must then run on the other worker, as
it would on a cluster where every worker is busy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
)
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import unpack_value
from upath import UPath

from microns_assets.config import ROLES
from microns_assets.emulator import Faults
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.processing.units import build_units
from microns_assets.storage import read_frame
from microns_assets_tests.distributed.servers import (
    BUCKET,
    FAKE_AWS,
    CeleryWorkers,
    celery_workers,
    postgres_server,
    redis_server,
    s3_server,
)
from microns_assets_tests.materialize.cli_helpers import (
    aggregated_truth,
    assert_equals_truth,
    clean_env,
    materialize_args,
    run_cli,
)
from microns_assets_tests.webui.server import running_daemon

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "celery" / "dagster.yaml"
VERSION = "1300"
#: The fixture runs two backfills through the daemon (ticks every few s in tests): minutes.
pytestmark = pytest.mark.timeout(900)
IN_FLIGHT = 2  # per step; the shipped pool limit is 2 steps: CAVE sees at most 4 at once
POOL_LIMIT = 2
QUEUE = "dagster"  # dagster-celery's default queue, which the workers consume
DATA = f"s3://{BUCKET}/celery"
LATENCY_MS = 20  # every CAVE answer, so that steps overlap as on a real server
SLOW_MS = 400  # while the fixture picks a chunk step to kill


@dataclass
class Victim:
    """The chunk run whose worker process was killed, and what it had stored by then."""

    run_id: str
    worker: str
    stored: list[str]


@dataclass
class Deployment:
    """What the fixture's commands printed and what the instance and the bucket hold."""

    home: Path
    env: dict[str, str]
    outputs: dict[str, subprocess.CompletedProcess]
    victim: Victim
    max_queries_in_flight: int
    remote: dict[str, pd.DataFrame] = field(default_factory=dict)
    expected_units: pd.DataFrame | None = None

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))


def _submit(emulator, home: Path) -> list[str]:
    args = materialize_args(emulator, home, Path("unused"), "--submit")
    args[args.index("--data-dir") + 1] = DATA
    return args


def _chunk_range(instance: dg.DagsterInstance, run_id: str, version: str) -> list[str]:
    """The chunks a chunk run of `version` covers; [] for any other run."""
    run = instance.get_run_by_id(run_id)
    start = run.tags.get(ASSET_PARTITION_RANGE_START_TAG, "") if run else ""
    if not start.startswith(f"{version}|"):
        return []
    end = run.tags[ASSET_PARTITION_RANGE_END_TAG]
    return [c for c in CHUNK_KEYS if start.split("|")[1] <= c <= end.split("|")[1]]


def _stored_chunks(s3: str, datastack: str, version: str) -> list[str]:
    folder = UPath(f"{DATA}/{datastack}/v{version}/synapse_chunks", endpoint_url=s3)
    # s3fs caches listings: a first look that saw only a file being written (a temporary
    # name) would otherwise be all this loop ever sees
    folder.fs.invalidate_cache()
    if not folder.exists():
        return []
    return sorted(
        p.name.removesuffix(".parquet") for p in folder.iterdir() if p.suffix == ".parquet"
    )


def _kill_a_chunk_step(
    workers: CeleryWorkers, server, first: subprocess.Popen, instance: dg.DagsterInstance,
    s3: str, datastack: str,
) -> tuple[Victim, str]:  # fmt: skip
    """SIGKILL the worker process running a chunk step of VERSION once it stored a chunk.

    The first worker seen holding a chunk step stops consuming (see the module docstring). From
    then until the kill, the emulator answers SLOW_MS late: a chunk step then lasts many
    seconds, far longer than Celery's control replies take under load, so it cannot end
    between being seen and being killed (at 20 ms a step can be over in 5 s on this machine).
    Returns the victim and that worker's name (to resume consuming later).
    """
    app = workers.app()
    busy = ""
    seen: list[str] = []
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if first.poll() is not None:
                raise AssertionError(
                    f"the first submission ended ({first.returncode}) before a chunk step was "
                    f"killed; tasks seen: {seen}; stored: {_stored_chunks(s3, datastack, VERSION)}"
                )
            for worker, task in _active_tasks(app, len(workers.names)):
                packed = task["kwargs"]["execute_step_args_packed"]
                run_id = unpack_value(packed, as_type=ExecuteStepArgs).run_id
                covered = _chunk_range(instance, run_id, VERSION)
                seen.append(f"{worker}:{run_id[:8]}:{len(covered)}")
                if not covered:
                    continue
                if not busy:
                    server.faults = Faults(latency_ms=SLOW_MS)
                    busy = worker
                    _stop_consuming(app, busy)
                stored = [c for c in _stored_chunks(s3, datastack, VERSION) if c in covered]
                if stored and _still_running(app, worker, task):  # not a pid gone idle
                    os.kill(task["worker_pid"], signal.SIGKILL)
                    return Victim(run_id, worker, stored), busy
            time.sleep(0.2)
    finally:
        server.faults = Faults(latency_ms=LATENCY_MS)
    raise AssertionError(f"no chunk step of {VERSION} stored a chunk on a worker in 300 s: {seen}")


def _active_tasks(app, workers: int) -> list[tuple[str, dict]]:
    """(worker, task) for every task the workers are executing now.

    `limit`: return as soon as every worker replied (without it Celery waits the full timeout).
    """
    active = app.control.inspect(timeout=5.0, limit=workers).active() or {}
    return [(worker, task) for worker, tasks in active.items() for task in tasks]


def _stop_consuming(app, worker: str) -> None:
    """Tell `worker` to take no more tasks from QUEUE, and wait until it says it stopped.

    Under load a control reply can take longer than Celery's 1 s default: ask again, with
    longer timeouts, until the worker's own list of queues lacks QUEUE.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        app.control.cancel_consumer(QUEUE, destination=[worker], reply=True, timeout=5.0, limit=1)
        queues = (
            app.control.inspect(destination=[worker], timeout=5.0, limit=1).active_queues() or {}
        )
        if worker in queues and QUEUE not in {q["name"] for q in queues[worker]}:
            return
    raise AssertionError(f"{worker} still consumes {QUEUE!r} after 60 s of cancel_consumer")


def _still_running(app, worker: str, task: dict) -> bool:
    """The task is still active on the same worker process (asked again just now)."""
    active = app.control.inspect(destination=[worker], timeout=5.0, limit=1).active() or {}
    return any(
        t["id"] == task["id"] and t["worker_pid"] == task["worker_pid"]
        for t in active.get(worker, [])
    )


@pytest.fixture(scope="module")
def deployment(session_emulator, emulator_cache, tmp_path_factory) -> Deployment:
    base = tmp_path_factory.mktemp("celery")
    home = base / "home"
    home.mkdir()
    shutil.copy(DEPLOY, home / "dagster.yaml")
    server = session_emulator.server
    with (
        postgres_server() as postgres,
        redis_server() as broker,
        s3_server() as s3,
        pytest.MonkeyPatch.context() as patch,
    ):
        env = {
            **clean_env(emulator_cache),
            **FAKE_AWS,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_URL": postgres.create_database("celery"),
            "FSSPEC_S3_ENDPOINT_URL": s3,
            "MICRONS_EXECUTOR": "celery",
            "MICRONS_CELERY_BROKER": broker,
            "MICRONS_CHUNK_RUNS": "2",
            "MICRONS_CAVE_IN_FLIGHT": str(IN_FLIGHT),
            "MICRONS_CAVE_SERVER": session_emulator.url,
            "MICRONS_DATASTACK": session_emulator.datastack,
            "MICRONS_DATA_DIR": DATA,
        }
        patch.setenv("DAGSTER_PG_URL", env["DAGSTER_PG_URL"])  # this process reads the instance
        assert server.stats.wait_idle(timeout_s=30)
        server.stats.reset()
        server.faults = Faults(latency_ms=LATENCY_MS)
        # as deploy/celery/README.md says: the instance's tables first (processes starting
        # together on an empty database race to create them: "type run_tags already exists")
        migrate = [str(Path(sys.executable).parent / "dagster"), "instance", "migrate"]
        done = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        try:
            with (
                celery_workers(env, 2, base) as workers,
                running_daemon(env, base / "daemon.log"),
                dg.DagsterInstance.from_config(str(home)) as instance,
            ):
                pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
                first = subprocess.Popen(_submit(session_emulator, home), env=env, **pipes)
                try:
                    victim, busy = _kill_a_chunk_step(
                        workers, server, first, instance, s3, session_emulator.datastack
                    )
                    stdout, stderr = first.communicate(timeout=600)
                finally:
                    first.kill() if first.poll() is None else None
                workers.app().control.add_consumer(
                    QUEUE, destination=[busy], reply=True, timeout=5.0
                )
                outputs = {
                    "first": subprocess.CompletedProcess(
                        first.args, first.returncode, stdout, stderr
                    ),
                    "again": run_cli(_submit(session_emulator, home), env),
                }
        finally:
            server.faults = Faults()
        deployment = Deployment(home, env, outputs, victim, server.stats.max_queries_in_flight)
        folder = UPath(f"{DATA}/{session_emulator.datastack}/v{VERSION}", endpoint_url=s3)
        for name in ("units", "synapses"):
            deployment.remote[name] = read_frame(folder / f"{name}.parquet")
        raw = {r: read_frame(folder / "cave_raw" / f"{r}.parquet") for r in ROLES}
        deployment.expected_units = build_units(raw, version=int(VERSION))[0]
        yield deployment  # the servers stay up while the tests read the instance


def _runs(instance: dg.DagsterInstance, version: str) -> list[dg.DagsterRun]:
    """The runs of the backfills of `version`, oldest first."""
    backfills = instance.get_backfills()
    ids = [b.backfill_id for b in backfills if b.tags.get("microns_assets/version") == version]
    runs = [r for i in ids for r in instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: i}))]
    return sorted(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)


def _chunk_materializations(instance: dg.DagsterInstance, version: str) -> dict[str, int]:
    records = instance.fetch_materializations(dg.AssetKey("synapse_chunks"), limit=10_000).records
    counts: dict[str, int] = {}
    for record in records:
        if record.partition_key.startswith(f"{version}|"):
            counts[record.partition_key] = counts.get(record.partition_key, 0) + 1
    return counts


def _workers_of_chunk_steps(instance: dg.DagsterInstance, runs: list[dg.DagsterRun]) -> set[str]:
    """The Celery workers that executed the chunk steps of `runs` (from their engine events)."""
    names = set()
    for run in runs:
        if ASSET_PARTITION_RANGE_START_TAG not in run.tags:
            continue
        for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
            metadata = entry.dagster_event.event_specific_data.metadata or {}
            if "Celery worker" in metadata:
                names.add(metadata["Celery worker"].value.split("@")[0])
    return names


def test_the_version_is_complete_and_each_chunk_stored_once(deployment, session_emulator):
    out = deployment.outputs["again"]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    units = deployment.remote["units"]
    pd.testing.assert_frame_equal(units, deployment.expected_units)
    expected = aggregated_truth(session_emulator, units, int(VERSION))
    assert_equals_truth(deployment.remote["synapses"], expected)
    with deployment.instance() as instance:
        # each chunk partition recorded once: the killed step recorded none
        assert _chunk_materializations(instance, VERSION) == {
            f"{VERSION}|{c}": 1 for c in CHUNK_KEYS
        }
        runs = _runs(instance, VERSION)
        chunk_runs = [r for r in runs if ASSET_PARTITION_RANGE_START_TAG in r.tags]
        starts = sorted(r.tags[ASSET_PARTITION_RANGE_START_TAG] for r in chunk_runs)
        # two chunk runs (MICRONS_CHUNK_RUNS=2), the killed one's range run again
        assert sorted(set(starts)) == [f"{VERSION}|00", f"{VERSION}|16"] and len(starts) == 3


def test_chunk_steps_spread_over_both_workers_within_the_cave_bound(deployment):
    with deployment.instance() as instance:
        assert _workers_of_chunk_steps(instance, _runs(instance, VERSION)) == {
            "worker0",
            "worker1",
        }
    # the pool's limit held across both workers and all runs: steps x requests in flight
    assert 0 < deployment.max_queries_in_flight <= POOL_LIMIT * IN_FLIGHT


def test_a_killed_worker_fails_its_run_and_the_rerun_reuses_its_chunks(deployment):
    first, again = deployment.outputs["first"], deployment.outputs["again"]
    assert first.returncode == 1, first.stdout[-3000:] + first.stderr[-3000:]
    assert "32/32" not in first.stdout and "FAILED" in first.stdout
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    victim = deployment.victim
    with deployment.instance() as instance:
        killed = instance.get_run_by_id(victim.run_id)
        assert killed.status == dg.DagsterRunStatus.FAILURE  # marked failed by Dagster
        errors = [
            data.error.to_string()
            for entry in instance.all_logs(victim.run_id)
            if entry.dagster_event is not None
            and (data := entry.dagster_event.event_specific_data) is not None
            and getattr(data, "error", None) is not None
        ]
        assert any("WorkerLostError" in e and "SIGKILL" in e for e in errors), errors
    # the re-run re-executed the failed backfill from failure: the killed run's range and the
    # roll-up; the chunks that run stored before the kill were reused, the rest downloaded
    assert "re-executing it from failure" in again.stdout
    assert "(2 runs;" in again.stdout
    reused = int(again.stdout.split(" reused)")[0].rsplit(", ", 1)[1])
    assert reused >= len(victim.stored) > 0
