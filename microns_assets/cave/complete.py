"""Complete answers under a row cap: split by ranges of an integer key until no piece is capped.

The server cuts results at its row cap without failing and returns rows in no fixed order, so
`offset` paging is unsafe. Instead a capped range `[lo, hi)` of the key is split at the median
key of the rows it did return: both halves then hold some of those rows, ranges shrink strictly,
and disjoint ranges can neither lose nor duplicate a row. A single key value holding more rows
than the cap cannot be split by this key and raises `IncompleteResultError`.

A complete answer is then held against the server's own (uncapped) count of the same query
(asked while the rows download):
`until_counted` fetches again while the rows differ and raises `RowsLostError` if they never
match, so rows a server drops without an error are never stored either.

A reference table comes joined with its target table, and the server counts only the
reference table's own rows (its join endpoint does not count). When the joined rows fall short,
`fetch_verified` finds out why: annotations whose target no longer exists (a deleted nucleus)
are dropped by the server's inner join, as in caveclient and the seed. Those orphans are
identified exactly, from the reference table's own `id`/`target_id` rows and the target's ids
(each download verified by its own count), and the joined rows must then be exactly the other
annotations. Any other shortfall is lost rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from microns_assets.cave.connection import CaveConnection, QueryResult
from microns_assets.cave.errors import IncompleteResultError, RowsLostError
from microns_assets.cave.filters import NO_FILTERS, Filters

T = TypeVar("T")


@dataclass
class CompleteResult:
    """All rows of a query, and how many capped queries it took to get them."""

    frame: pd.DataFrame
    queries: int
    capped: int


def fetch_complete(
    conn: CaveConnection,
    version: int,
    table: str,
    *,
    key: str = "id",
    filters: Filters = NO_FILTERS,
    select_columns: list[str] | None = None,
    merge_reference: bool = True,
    on_query: Callable[[QueryResult], None] | None = None,
) -> CompleteResult:
    """Every row of a filtered query, however many rows the server's cap lets through at once."""
    if select_columns is not None and key not in select_columns:
        select_columns = [*select_columns, key]
    pending: list[tuple[int | None, int | None]] = [(None, None)]
    pieces: list[pd.DataFrame] = []
    queries = capped = 0
    while pending:
        lo, hi = pending.pop()
        result = conn.query(
            version,
            table,
            filters.in_range(key, lo, hi),
            select_columns=select_columns,
            merge_reference=merge_reference,
        )
        queries += 1
        if on_query is not None:
            on_query(result)
        if not result.truncated:
            pieces.append(result.frame)
            continue
        capped += 1
        keys = result.frame[key].to_numpy(dtype=np.int64)
        low, high = int(keys.min()), int(keys.max())
        if low == high:
            raise IncompleteResultError(
                f"{table} (v{version}): more than {len(keys)} rows share {key} = {low}; the "
                f"server's row cap cannot be worked around by splitting on {key!r}."
            )
        mid = max(int(np.median(keys)), low + 1)
        pending += [(lo, mid), (mid, hi)]
    frame = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
    return CompleteResult(frame, queries, capped)


def until_counted(
    fetch: Callable[[], T],
    rows: Callable[[T], int],
    expected: int,
    *,
    attempts: int,
    what: str,
    on_miss: Callable[[], None] | None = None,
) -> T:
    """`fetch()` until its rows equal the server's count `expected`, at most `attempts` times.

    Raises `RowsLostError` when they never do: the server drops rows without an error.
    """
    for _ in range(attempts):
        result = fetch()
        received = rows(result)
        if received == expected:
            return result
        if on_miss is not None:
            on_miss()
    raise RowsLostError(
        f"{what}: the server counts {expected} rows but answered {received}, in each of "
        f"{attempts} attempts: rows go missing without an error. Nothing was stored. "
        "Materialize it again later; if it persists, report it to the CAVE administrators."
    )


@dataclass(frozen=True)
class ServerCount:
    """The server's count of a table's rows, and the annotations its join drops as orphans."""

    table_rows: int
    orphan_ids: tuple[int, ...] = ()

    @property
    def expected(self) -> int:
        """Rows a complete (joined) download holds."""
        return self.table_rows - len(self.orphan_ids)


def fetch_verified(
    conn: CaveConnection,
    version: int,
    table: str,
    *,
    attempts: int | None = None,
    on_query: Callable[[QueryResult], None] | None = None,
) -> tuple[CompleteResult, ServerCount]:
    """Every row of `table`, checked against the server's own count (fetched again on a miss).

    Returns the result and the count (with the orphans a reference table's join dropped; see
    the module docstring). Raises `RowsLostError` when the rows never match it in `attempts`
    downloads (default: the connection's `call_attempts`).
    """
    attempts = conn.settings.call_attempts if attempts is None else attempts
    what = f"{table} (v{version})"

    def fetch() -> CompleteResult:
        return fetch_complete(conn, version, table, on_query=on_query)

    # the count is asked on a thread of its own while the rows download (the connection
    # bounds the requests in flight); the rows are held against it only once both are in
    with ThreadPoolExecutor(1, thread_name_prefix="cave-count") as counter:
        counting = counter.submit(conn.count_rows, version, table)
        result = fetch()
        count = ServerCount(counting.result())
    joinable = None  # ids of the annotations whose target exists, when orphans were looked for
    if len(result.frame) < count.expected:
        target = conn.table_metadata(version, table).get("reference_table") or None
        if target is not None:
            own = _own_rows(conn, version, table, target, count.table_rows, attempts, on_query)
            orphan = ~own["has_target"]
            count = ServerCount(count.table_rows, tuple(sorted(own.loc[orphan, "id"].tolist())))
            joinable = own.loc[~orphan, "id"]
    if len(result.frame) != count.expected:
        result = _counted(fetch, count.expected, max(1, attempts - 1), what)
    if joinable is not None and not _same_ids(result.frame["id"], joinable):
        raise RowsLostError(
            f"{what}: the joined rows are not exactly the {count.expected} annotations whose "
            f"target exists ({len(count.orphan_ids)} orphans dropped by the join). Nothing was "
            "stored. Materialize it again later; if it persists, report it to the CAVE "
            "administrators."
        )
    return result, count


def _own_rows(
    conn: CaveConnection,
    version: int,
    table: str,
    target: str,
    rows: int,
    attempts: int,
    on_query: Callable[[QueryResult], None] | None = None,
) -> pd.DataFrame:
    """`table`'s own `id`s, unjoined, and whether each one's `target_id` is an id of `target`."""
    unjoined = functools.partial(
        fetch_complete, conn, version, merge_reference=False, on_query=on_query
    )
    own = _counted(
        lambda: unjoined(table, select_columns=["id", "target_id"]),
        rows,
        attempts,
        f"{table} (v{version}, unjoined)",
    ).frame
    targets = _counted(
        lambda: unjoined(target, select_columns=["id"]),
        conn.count_rows(version, target),
        attempts,
        f"{target} (v{version}, ids)",
    ).frame
    return pd.DataFrame(
        {"id": own["id"].to_numpy(np.int64), "has_target": own["target_id"].isin(targets["id"])}
    )


def _counted(
    fetch: Callable[[], CompleteResult], expected: int, attempts: int, what: str
) -> CompleteResult:
    """`until_counted` for a complete result: fetched again until its rows equal `expected`."""
    return until_counted(fetch, lambda r: len(r.frame), expected, attempts=attempts, what=what)


def _same_ids(ids: pd.Series, expected: pd.Series) -> bool:
    """Whether `ids` are exactly `expected`, each once (in any order)."""
    got = np.sort(ids.to_numpy(np.int64))
    return bool(np.array_equal(got, np.sort(expected.to_numpy(np.int64))))
