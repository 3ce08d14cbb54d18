"""Synapses between chosen pre and post cells, downloaded without losing or duplicating a row.

Post cells go in sub-batches (the seed's `neurs_per_steps`, default 500) as a `filter_in` on
`post_pt_root_id`. The pre side is sent as a filter too, unless it is "every unit" or too long
to send, in which case rows are filtered locally. A capped answer is never kept: the batch is
halved and each half queried again; a single post cell still over the cap is split by synapse
`id` ranges (`complete.fetch_complete`). The pieces are disjoint sets of post cells or of ids,
so no row can be lost or counted twice. With `verify_counts`, the server also counts each
sub-batch's rows (one uncapped count query per sub-batch, same filters); a sub-batch whose rows
differ from its count is downloaded again, and one that never matches raises `RowsLostError`,
so a silently lossy answer is never returned. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from microns_assets.cave.complete import fetch_complete, until_counted
from microns_assets.cave.connection import CaveConnection, QueryResult
from microns_assets.cave.errors import IncompleteResultError

#: Longest pre-cell list sent as a filter; longer lists are applied locally.
MAX_PRE_FILTER = 5_000
INDIVIDUAL_COLUMNS = ["id", "pre_pt_root_id", "post_pt_root_id", "size", "ctr_pt_position"]
AGGREGATE_COLUMNS = ["id", "pre_pt_root_id", "post_pt_root_id", "size"]


@dataclass
class DownloadStats:
    """What a download took: queries, capped answers that were split, rows received.

    `rows` are the rows kept, before pre cells are filtered locally; `server_rows` is what the
    server counted for the same filters (None when counts were not asked for); `recounted` the
    sub-batches downloaded again because their rows differed from the count.
    """

    queries: int = 0
    capped: int = 0
    rows: int = 0
    seconds: float = 0.0
    batches_done: int = 0
    batches: int = 0
    splits_by_id: int = 0
    server_rows: int | None = None
    count_queries: int = 0
    recounted: int = 0

    def count(self, result: QueryResult) -> None:
        """Record one query."""
        self.queries += 1
        self.capped += int(result.truncated)
        self.seconds += result.elapsed_s


def _batch(
    conn: CaveConnection,
    version: int,
    table: str,
    post: np.ndarray,
    pre_filter: np.ndarray | None,
    columns: list[str],
    stats: DownloadStats,
) -> list[pd.DataFrame]:
    filters = _filters(post, pre_filter)
    result = conn.query(version, table, filter_in=filters, select_columns=columns)
    stats.count(result)
    if not result.truncated:
        return [result.frame]
    if post.size > 1:
        half = post.size // 2
        return _batch(conn, version, table, post[:half], pre_filter, columns, stats) + _batch(
            conn, version, table, post[half:], pre_filter, columns, stats
        )
    stats.splits_by_id += 1
    complete = fetch_complete(
        conn, version, table, key="id", filter_in=filters, select_columns=columns,
        on_query=stats.count,
    )  # fmt: skip
    return [complete.frame]


def _verified_batch(
    conn: CaveConnection,
    version: int,
    table: str,
    post: np.ndarray,
    pre_filter: np.ndarray | None,
    columns: list[str],
    stats: DownloadStats,
    attempts: int,
) -> list[pd.DataFrame]:
    """One sub-batch; with counts on, downloaded again until its rows equal the server's count."""

    def fetch() -> list[pd.DataFrame]:
        return _batch(conn, version, table, post, pre_filter, columns, stats)

    def recounted() -> None:
        stats.recounted += 1

    if stats.server_rows is None:
        pieces = fetch()
    else:
        expected = conn.count_rows(version, table, filter_in=_filters(post, pre_filter))
        stats.count_queries += 1
        pieces = until_counted(
            fetch,
            lambda found: sum(len(p) for p in found),
            expected,
            attempts=attempts,
            what=f"{table} (v{version}), synapses onto {post.size} post cells",
            on_miss=recounted,
        )
        stats.server_rows += expected
    stats.rows += sum(len(p) for p in pieces)
    return pieces


def _filters(post: np.ndarray, pre_filter: np.ndarray | None) -> dict[str, list[int]]:
    filters = {"post_pt_root_id": post.tolist()}
    if pre_filter is not None:
        filters["pre_pt_root_id"] = pre_filter.tolist()
    return filters


def download_synapses(
    conn: CaveConnection,
    version: int,
    table: str,
    post_roots: np.ndarray,
    pre_roots: np.ndarray | None,
    *,
    individual: bool,
    send_pre: bool = True,
    batch_size: int = 500,
    verify_counts: bool = True,
    attempts: int = 3,
    on_batch: Callable[[DownloadStats], None] | None = None,
) -> tuple[pd.DataFrame, DownloadStats]:
    """All synapses onto `post_roots` from `pre_roots` (None: from anything), one row each.

    `send_pre=False` (for a pre side that is every unit) filters pre cells locally instead of
    sending the list. Returns the raw rows (`id`, roots, `size`, and centre positions in voxels
    when `individual`) and what it took. `verify_counts` asks the server to count each
    sub-batch's rows too; a sub-batch is tried up to `attempts` times to match its count.
    """
    stats = DownloadStats(server_rows=0 if verify_counts else None)
    post_roots = np.unique(np.asarray(post_roots, dtype=np.int64))
    sendable = pre_roots is not None and send_pre and len(pre_roots) <= MAX_PRE_FILTER
    pre_send = np.asarray(pre_roots, dtype=np.int64) if sendable else None
    columns = INDIVIDUAL_COLUMNS if individual else AGGREGATE_COLUMNS
    batches = [post_roots[i : i + batch_size] for i in range(0, post_roots.size, batch_size)]
    stats.batches = len(batches)
    pieces: list[pd.DataFrame] = []
    for batch in batches:
        pieces += _verified_batch(conn, version, table, batch, pre_send, columns, stats, attempts)
        stats.batches_done += 1
        if on_batch is not None:
            on_batch(stats)
    if not pieces:
        return _empty(individual), stats
    keep = [c for c in pieces[0].columns if not c.endswith("_supervoxel_id")]
    frame = pd.concat([p[keep] for p in pieces], ignore_index=True)
    if pre_roots is not None and pre_send is None:
        frame = frame[frame["pre_pt_root_id"].isin(pre_roots).to_numpy()]  # hashed, not sorted
    duplicated = int(frame["id"].duplicated().sum())
    if duplicated:
        raise IncompleteResultError(
            f"{table} (v{version}): {duplicated} synapse ids arrived twice; refusing to store"
        )
    return frame.reset_index(drop=True), stats


def _empty(individual: bool) -> pd.DataFrame:
    columns = {
        "id": "Int64",
        "pre_pt_root_id": "Int64",
        "post_pt_root_id": "Int64",
        "size": "Int32",
    }
    if individual:
        columns |= {f"ctr_pt_position_{a}": "Int32" for a in "xyz"}
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in columns.items()})
