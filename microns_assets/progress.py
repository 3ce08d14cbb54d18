"""The per-chunk progress line: written to the run log by the chunk step, read by the CLI.

The same line is what a user sees in the UI's run view and what `microns-assets materialize`
turns into its progress bar, so the two always agree. No Dagster imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Chunk outcomes: downloaded and stored, reused from a complete file, or failed.
STATUSES = ("downloaded", "reused", "failed")
_LINE = re.compile(r"^chunk (?P<partition>\S+) (?P<status>downloaded|reused|failed)\b")


@dataclass(frozen=True)
class ChunkProgress:
    """One chunk partition finished (either way)."""

    partition: str
    status: str


def chunk_line(partition: str, status: str, detail: str, done: int, total: int) -> str:
    """The log line for one finished chunk, e.g. `chunk 1300|05 downloaded: ... [6/32]`."""
    if status not in STATUSES:
        raise ValueError(f"unknown chunk status {status!r}")
    return f"chunk {partition} {status}: {detail} [{done}/{total}]"


def parse_chunk_line(message: str) -> ChunkProgress | None:
    """The chunk a log line reports, or None for any other line."""
    found = _LINE.match(message)
    return ChunkProgress(found["partition"], found["status"]) if found else None
