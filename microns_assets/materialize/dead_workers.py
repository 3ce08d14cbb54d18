"""Runs of `materialize` whose process died (killed, out of memory): marked failed.

`materialize` executes its runs in its own process, outside any run launcher, so Dagster's run
monitoring cannot see that process (it watches run workers that a launcher started): a killed
`materialize` would leave its run "started" in the web UI forever, holding its `cave` pool slot. A
SIGTERM or Ctrl-C ends the run as failed through Dagster itself; for a SIGKILL or an out-of-memory
kill, this module is the rest. Each run is tagged with the identity of the process executing it
(host, pid, PID namespace and the process's start time); the next `materialize` on the same
instance marks the unfinished runs whose process is certainly gone as failed and frees their pool
slots. When in doubt (another host or PID namespace, no procfs), a run is left alone. Re-executions
launched from the web UI copy their parent's tags, so runs with a parent run are never touched.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

#: Tag on every run `materialize` starts, so they are easy to find in the UI.
DRIVER_TAG = "microns_assets/driver"
DRIVER = "materialize"
#: Tag on every run `materialize` starts: `WorkerId.tag()` of the process executing it.
WORKER_TAG = "microns_assets/worker"
_PARENT_RUN_TAG = "dagster/parent_run_id"

#: Statuses of a run a worker has created and not finished.
_UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _stat_fields(pid: int | str) -> list[str] | None:
    """`/proc/<pid>/stat` from the state field on (fields 3...), None without procfs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()  # the command name may hold spaces and ')'


def _pid_namespace() -> str | None:
    try:
        return re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or None
    except OSError:
        return None


@dataclass(frozen=True)
class WorkerId:
    """Who executes a run: host, pid, and (on Linux) PID namespace and process start time."""

    host: str
    pid: int
    started: str | None = None  # start time in clock ticks since boot (stat field 22)
    namespace: str | None = None

    @classmethod
    def this_process(cls) -> WorkerId:
        """The identity of the calling process."""
        fields = _stat_fields("self")
        started = fields[19] if fields and len(fields) > 19 else None
        return cls(socket.gethostname(), os.getpid(), started, _pid_namespace())

    def tag(self) -> str:
        """`host:pid:started:namespace` (`-` for what is unknown)."""
        return f"{self.host}:{self.pid}:{self.started or '-'}:{self.namespace or '-'}"

    @classmethod
    def from_tag(cls, tag: str | None) -> WorkerId | None:
        """The identity in a tag, None if it is not one."""
        parts = (tag or "").split(":")
        if len(parts) != 4 or not parts[1].isdecimal():
            return None
        host, pid, started, namespace = parts
        return cls(
            host, int(pid), None if started == "-" else started, namespace.strip("-") or None
        )

    def is_gone(self, me: WorkerId | None = None) -> bool:
        """True only when this process certainly no longer runs (a zombie counts as gone).

        `me` is the caller's own identity (read from the system when not given).
        """
        me = me or WorkerId.this_process()
        if self.host != me.host or self.namespace != me.namespace:
            return False  # another machine or container: its processes are not ours to see
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, owned by someone else
            pass
        fields = _stat_fields(self.pid)
        if fields is None:
            return False  # no procfs: the pid exists, and that is all we know
        if fields[0] == "Z":
            return True  # killed, not yet reaped
        return self.started is not None and fields[19] != self.started  # the pid was reused


def fail_runs_of_dead_workers(instance: dg.DagsterInstance) -> list[str]:
    """Mark unfinished `materialize` runs whose worker process is gone as failed; their ids."""
    records = instance.get_run_records(
        dg.RunsFilter(statuses=_UNFINISHED, tags={DRIVER_TAG: DRIVER})
    )
    me = WorkerId.this_process()
    failed = []
    for record in records:
        run = record.dagster_run
        worker = WorkerId.from_tag(run.tags.get(WORKER_TAG))
        if _PARENT_RUN_TAG in run.tags or worker is None or not worker.is_gone(me):
            continue
        instance.report_run_failed(
            run,
            message=(
                f"The `microns-assets materialize` worker (process {worker.pid}) executing this "
                "run ended without finishing it (killed or out of memory). Marked failed by the "
                "next `materialize`, which redoes what this run did not complete."
            ),
        )
        # Its steps' pool slots (`cave`) would otherwise stay claimed, and block later runs.
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed
