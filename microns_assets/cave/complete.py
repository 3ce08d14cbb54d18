"""Complete answers under a row cap: split by ranges of an integer key until no piece is capped.

The server cuts results at its row cap without failing and returns rows in no fixed order, so
`offset` paging is unsafe. Instead a capped range `[lo, hi)` of the key is split at the median
key of the rows it did return: both halves then hold some of those rows, ranges shrink strictly,
and disjoint ranges can neither lose nor duplicate a row. A single key value holding more rows
than the cap cannot be split by this key and raises `IncompleteResultError`.

A complete answer is then held against the server's own (uncapped) count of the same query:
`until_counted` fetches again while the rows differ and raises `RowsLostError` if they never
match, so rows a server drops without an error are never stored either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from microns_assets.cave.connection import CaveConnection, QueryResult
from microns_assets.cave.errors import IncompleteResultError, RowsLostError

T = TypeVar("T")


@dataclass
class CompleteResult:
    """All rows of a query, and how many capped queries it took to get them."""

    frame: pd.DataFrame
    queries: int
    capped: int


def _bounds(lo: int | None, hi: int | None, key: str) -> tuple[dict | None, dict | None]:
    return ({key: lo} if lo is not None else None), ({key: hi} if hi is not None else None)


def fetch_complete(
    conn: CaveConnection,
    version: int,
    table: str,
    *,
    key: str = "id",
    filter_in: dict | None = None,
    filter_out: dict | None = None,
    filter_equal: dict | None = None,
    select_columns: list[str] | None = None,
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
        ge, less = _bounds(lo, hi, key)
        result = conn.query(
            version,
            table,
            filter_in=filter_in,
            filter_out=filter_out,
            filter_equal=filter_equal,
            filter_greater_equal=ge,
            filter_less=less,
            select_columns=select_columns,
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


def fetch_verified(
    conn: CaveConnection,
    version: int,
    table: str,
    *,
    attempts: int = 3,
    on_query: Callable[[QueryResult], None] | None = None,
) -> tuple[CompleteResult, int]:
    """Every row of `table`, checked against the server's own count (fetched again on a miss).

    Returns the result and the count. Raises `RowsLostError` when the rows never match it.
    """
    expected = conn.count_rows(version, table)
    result = until_counted(
        lambda: fetch_complete(conn, version, table, on_query=on_query),
        lambda r: len(r.frame),
        expected,
        attempts=attempts,
        what=f"{table} (v{version})",
    )
    return result, expected
