"""Following runs through the instance's event log: chunk progress and failures.

Whether a run executes in this process or in a run worker launched by the daemon, its events
reach the instance; `RunFollower` reads them on a background thread and turns the chunk step's
per-chunk log lines (`microns_assets.progress`) into a progress bar with an ETA, so both paths
of `materialize` show the same progress the web UI's run view shows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from tqdm import tqdm

from microns_assets.progress import parse_chunk_line

_FAILURES = {
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.RESOURCE_INIT_FAILURE,
    dg.DagsterEventType.RUN_FAILURE,
}


@dataclass(frozen=True)
class StepFailure:
    """A failed step (or run): what failed, on which partition(s), and the error chain."""

    step: str
    partition: str
    message: str


def _error_text(error) -> str:
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return " <- caused by: ".join(parts)


def run_failures(instance: dg.DagsterInstance, run_id: str) -> list[StepFailure]:
    """The failed steps of a run, or the run's own failure when no step failed."""
    run = instance.get_run_by_id(run_id)
    tags = run.tags if run else {}
    ends = [tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)]
    partition = tags.get(PARTITION_NAME_TAG) or "..".join(filter(None, ends))
    found: list[StepFailure] = []
    run_level: list[StepFailure] = []
    for entry in instance.all_logs(run_id, of_type=_FAILURES):
        event = entry.dagster_event
        data = event.event_specific_data
        error = getattr(data, "error", None)
        message = _error_text(error) if error is not None else (entry.message or "failed")
        failure = StepFailure(event.step_key or "run", partition, message)
        is_run = event.event_type == dg.DagsterEventType.RUN_FAILURE
        (run_level if is_run else found).append(failure)
    return found or run_level


class RunFollower:
    """Reads runs' new log lines and advances a chunk progress bar."""

    def __init__(self, instance: dg.DagsterInstance, bar: tqdm | None) -> None:
        self.instance = instance
        self.bar = bar
        self._cursors: dict[str, str | None] = {}
        self.chunks: dict[str, str] = {}  # partition -> downloaded, reused or failed

    def poll(self, run_id: str) -> None:
        """Take in the run's events since the last poll."""
        cursor = self._cursors.get(run_id)
        while True:
            page = self.instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
            for record in page.records:
                entry = record.event_log_entry
                progress = entry.dagster_event is None and parse_chunk_line(entry.user_message)
                if progress and progress.partition not in self.chunks:
                    self.chunks[progress.partition] = progress.status
                    if self.bar is not None:
                        self.bar.update(1)
                        if progress.status == "failed":
                            self.bar.write(f"  failed: chunk {progress.partition}")
            cursor = page.cursor
            if not page.has_more:
                break
        self._cursors[run_id] = cursor


@contextmanager
def following(follower: RunFollower, run_id: str, every_s: float = 0.5) -> Iterator[None]:
    """Poll `run_id` on a background thread while the body runs, and once more after it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            follower.poll(run_id)

    thread = threading.Thread(target=loop, name="follow-run", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        follower.poll(run_id)
