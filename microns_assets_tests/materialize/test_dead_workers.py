"""Runs left "started" by a killed `materialize` worker are marked failed, and only those."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg

from microns_assets.materialize.dead_workers import WORKER_TAG, fail_runs_of_dead_workers

STARTED = dg.DagsterRunStatus.STARTED


def gone_pid() -> int:
    """The pid of a process that has already ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def add_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, tags: dict) -> str:
    run = dg.DagsterRun(
        job_name="synapse_chunk_download", run_id=str(uuid.uuid4()), status=status, tags=tags
    )
    instance.add_run(run)
    return run.run_id


def status(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run_id).status


def test_only_started_runs_of_vanished_local_workers_are_failed(dagster_instance):
    host, dead = socket.gethostname(), gone_pid()
    dead_worker = add_run(dagster_instance, STARTED, {WORKER_TAG: f"{host}:{dead}"})
    alive = add_run(dagster_instance, STARTED, {WORKER_TAG: f"{host}:{os.getpid()}"})
    elsewhere = add_run(dagster_instance, STARTED, {WORKER_TAG: f"not-{host}:{dead}"})
    untagged = add_run(dagster_instance, STARTED, {})  # e.g. launched from the web UI
    finished = add_run(
        dagster_instance, dg.DagsterRunStatus.SUCCESS, {WORKER_TAG: f"{host}:{dead}"}
    )

    assert fail_runs_of_dead_workers(dagster_instance) == [dead_worker]

    assert status(dagster_instance, dead_worker) == dg.DagsterRunStatus.FAILURE
    for run_id in (alive, elsewhere, untagged):
        assert status(dagster_instance, run_id) == STARTED
    assert status(dagster_instance, finished) == dg.DagsterRunStatus.SUCCESS
    failure = dagster_instance.get_records_for_run(
        dead_worker, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    assert len(failure) == 1
    message = failure[0].event_log_entry.dagster_event.message
    assert str(dead) in message and "materialize" in message
    assert fail_runs_of_dead_workers(dagster_instance) == []  # done once


def test_a_killed_worker_not_yet_reaped_counts_as_gone(dagster_instance):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "Z" not in state_of(zombie.pid):
        time.sleep(0.05)  # ended, and not waited for: a zombie until we reap it
    assert state_of(zombie.pid) == "Z"
    host = socket.gethostname()
    run_id = add_run(dagster_instance, STARTED, {WORKER_TAG: f"{host}:{zombie.pid}"})
    try:
        assert fail_runs_of_dead_workers(dagster_instance) == [run_id]
    finally:
        zombie.wait()


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
