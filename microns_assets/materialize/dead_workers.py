"""Runs of `materialize` whose worker process died (killed, out of memory): marked failed.

Runs execute in-process in `materialize`'s workers, outside any run launcher, so nothing in
Dagster notices when such a process is killed: its run would show as "started" in the web UI
forever. Each run is tagged with its worker's host and process id; the next `materialize` on
the same instance marks the runs of workers that no longer exist on this host as failed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

#: Tag on every run `materialize` starts: `<host>:<pid>` of the process executing it.
WORKER_TAG = "microns_assets/worker"

#: Statuses of a run whose process is (or was) executing it.
_LIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def worker_tag() -> str:
    """This process's `WORKER_TAG` value."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _process_exists(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # Linux: the state field follows the parenthesized command name
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (or it just ended): trust the signal check
    return stat.rpartition(")")[2].split()[0] != "Z"


def _dead_worker(tag: str | None) -> int | None:
    """The pid in `tag` if it names a process of this host that no longer exists."""
    host, _, pid = (tag or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None  # another machine's worker, or not ours: leave it alone
    return None if _process_exists(int(pid)) else int(pid)


def fail_runs_of_dead_workers(instance: dg.DagsterInstance) -> list[str]:
    """Mark started runs whose worker process is gone as failed; return their run ids."""
    records = instance.get_run_records(dg.RunsFilter(statuses=_LIVE))  # few, if any
    failed = []
    for record in records:
        run = record.dagster_run
        pid = _dead_worker(run.tags.get(WORKER_TAG))
        if pid is None:
            continue
        instance.report_run_failed(
            run,
            message=(
                f"The `microns-assets materialize` worker (process {pid}) executing this run "
                "ended without finishing it (killed or out of memory). Marked failed by the "
                "next `materialize`, which redoes what this run did not complete."
            ),
        )
        failed.append(run.run_id)
    return failed
