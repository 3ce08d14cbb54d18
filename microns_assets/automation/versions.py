"""Which CAVE materialization versions are new, which to download, and the sensor's cursor.

Plain Python, no Dagster: `plan_update` decides from what CAVE lists, what Dagster already has
as `mat_version` partitions and what the sensor saw before. The Dagster wiring is in
`versions_sensor.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field


class CursorError(ValueError):
    """The sensor's cursor is not what this module writes."""


@dataclass(frozen=True)
class SeenVersions:
    """What the sensor has seen: valid versions (added or already present) and expired ones."""

    known: frozenset[int] = field(default_factory=frozenset)
    expired: frozenset[int] = field(default_factory=frozenset)

    def to_cursor(self) -> str:
        """The cursor text: JSON with sorted version lists."""
        return json.dumps({"known": sorted(self.known), "expired": sorted(self.expired)})

    @classmethod
    def from_cursor(cls, cursor: str | None) -> SeenVersions | None:
        """The state a cursor holds; `None` for an empty cursor (the sensor's first tick)."""
        if not cursor:
            return None
        try:
            data = json.loads(cursor)
            return cls(
                known=frozenset(int(v) for v in data["known"]),
                expired=frozenset(int(v) for v in data["expired"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise CursorError(
                f"The cave_versions sensor's cursor {cursor[:200]!r} is not "
                '{"known": [...], "expired": [...]}. Clear it in the UI (Sensors > cave_versions '
                "> Set cursor value: empty) and the next tick starts afresh."
            ) from err


@dataclass(frozen=True)
class VersionUpdate:
    """One tick's decisions."""

    add: list[int]  # valid versions to add as `mat_version` partitions, ascending
    run: list[int]  # versions whose raw tables to download now
    newly_expired: list[int]  # expired versions seen for the first time
    state: SeenVersions  # the next cursor
    first_tick: bool


def plan_update(
    seen: SeenVersions | None,
    listed: Iterable[int],
    valid: Iterable[int],
    partitions: Iterable[int],
) -> VersionUpdate:
    """Decide a tick: add every valid version never seen and not yet a partition.

    Args:
        seen: the previous tick's state, `None` on the first tick.
        listed: every version CAVE lists, expired ones included.
        valid: the versions CAVE lists as current (not expired).
        partitions: versions that already are `mat_version` partitions.

    A run is requested for every added version, except on the first tick: then only for the
    newest valid version (if this tick adds it), so that turning the sensor on does not
    download the whole history. Expired versions are recorded, never added or run. Versions
    the sensor has seen are never added again, so a partition deleted by hand stays deleted;
    nothing is ever removed.
    """
    valid_set = set(valid)
    expired = set(listed) - valid_set
    first = seen is None
    seen = seen or SeenVersions()
    add = sorted(valid_set - seen.known - set(partitions))
    newest = max(valid_set, default=None)
    run = ([newest] if newest in add else []) if first else list(add)
    return VersionUpdate(
        add=add,
        run=run,
        newly_expired=sorted(expired - seen.expired),
        state=SeenVersions(known=seen.known | valid_set, expired=seen.expired | expired),
        first_tick=first,
    )


def version_numbers(partition_keys: Iterable[str]) -> set[int]:
    """The integer versions among `mat_version` partition keys (other keys are ignored)."""
    return {int(k) for k in partition_keys if k.isdigit()}


def newest_version(partition_keys: Iterable[str]) -> int | None:
    """The highest integer version among partition keys, `None` if there is none."""
    return max(version_numbers(partition_keys), default=None)
