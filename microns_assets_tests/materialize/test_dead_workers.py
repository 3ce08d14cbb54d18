"""Runs left unfinished by a killed `materialize` worker are marked failed, and only those."""

from __future__ import annotations

import functools
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import dagster as dg

from microns_assets.materialize.dead_workers import (
    DRIVER,
    DRIVER_TAG,
    WORKER_TAG,
    WorkerId,
    fail_runs_of_dead_workers,
)
from microns_assets_tests.conftest import wait_until

STARTED = dg.DagsterRunStatus.STARTED


def gone_pid() -> int:
    """The pid of a process that has already ended (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def tags(worker: WorkerId, **more: str) -> dict[str, str]:
    return {DRIVER_TAG: DRIVER, WORKER_TAG: worker.tag(), **more}


def add_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, run_tags: dict) -> str:
    run = dg.DagsterRun(
        job_name="synapse_chunk_download", run_id=str(uuid.uuid4()), status=status, tags=run_tags
    )
    instance.add_run(run)
    return run.run_id


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def test_the_identity_of_this_process_round_trips_through_its_tag():
    me = WorkerId.this_process()
    assert me.started is not None and me.namespace is not None  # Linux, procfs
    assert WorkerId.from_tag(me.tag()) == me
    assert not me.is_gone()
    assert WorkerId.from_tag("host:123") is None and WorkerId.from_tag(None) is None


def test_only_unfinished_runs_of_certainly_dead_local_workers_are_failed(dagster_instance):
    me = WorkerId.this_process()
    dead = replace(me, pid=gone_pid())
    add = functools.partial(add_run, dagster_instance)
    failed = {
        "dead": add(STARTED, tags(dead)),
        "dead, not started yet": add(dg.DagsterRunStatus.NOT_STARTED, tags(dead)),
        "pid reused by another process": add(STARTED, tags(replace(me, started="1"))),
    }
    kept = {
        "alive": add(STARTED, tags(me)),
        "other host": add(STARTED, tags(replace(dead, host=f"not-{me.host}"))),
        "other PID namespace": add(STARTED, tags(replace(dead, namespace="1"))),
        "re-executed from the UI, tags copied": add(
            STARTED, tags(dead, **{"dagster/parent_run_id": "x"})
        ),
        "not from materialize": add(STARTED, {WORKER_TAG: dead.tag()}),
        "untagged": add(STARTED, {}),
    }
    finished = add(dg.DagsterRunStatus.SUCCESS, tags(dead))

    assert sorted(fail_runs_of_dead_workers(dagster_instance)) == sorted(failed.values())

    for why, run_id in failed.items():
        assert status(dagster_instance, run_id) == dg.DagsterRunStatus.FAILURE, why
    for why, run_id in kept.items():
        assert status(dagster_instance, run_id) == STARTED, why
    assert status(dagster_instance, finished) == dg.DagsterRunStatus.SUCCESS
    records = dagster_instance.get_records_for_run(
        failed["dead"], of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    assert len(records) == 1
    message = records[0].event_log_entry.dagster_event.message
    assert str(dead.pid) in message and "materialize" in message
    assert fail_runs_of_dead_workers(dagster_instance) == []  # done once


def test_a_killed_worker_not_yet_reaped_counts_as_gone(dagster_instance):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    # ended, and not waited for: a zombie until we reap it
    wait_until(lambda: state_of(zombie.pid) == "Z", seconds=10)
    assert state_of(zombie.pid) == "Z"
    worker = replace(WorkerId.this_process(), pid=zombie.pid, started=None)
    run_id = add_run(dagster_instance, STARTED, tags(worker))
    try:
        assert fail_runs_of_dead_workers(dagster_instance) == [run_id]
    finally:
        zombie.wait()


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
