"""Synapses between chosen pre and post cells, downloaded without losing or duplicating a row.

Post cells go in sub-batches as a `filter_in` on `post_pt_root_id`: the seed's `neurs_per_steps`
(default 500) until the answers show how many rows a cell brings, then as many as bring about
3/4 of the row cap (`_Sizer`). `download_chunks` downloads the sub-batches of many chunks on a few
threads over one connection and hands each chunk over as soon as it is complete. The pre side
is sent as a filter too, unless it is "every unit" or too long to send, in which case rows are
filtered locally, until the answers turn out dense (see `DENSE_PRE_FILTER`).
A capped answer is never kept: the batch is cut in halves (or smaller pieces, when answers since
say how many cells fit) and each piece queried again; a single post cell
still over the cap is split by synapse `id` ranges (`complete.fetch_complete`). The pieces are
disjoint sets of post cells or of ids, so no row can be lost or counted twice. With
`verify_counts`, the server also counts each chunk's rows (one uncapped count query per chunk,
same filters, sent beside its sub-batches); a chunk whose rows differ from its count has each of
its sub-batches counted, and a sub-batch whose rows differ from its own count is downloaded again;
one that never matches raises `RowsLostError`, so a silently lossy answer is never returned. No
Dagster imports.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, fields
from itertools import chain

import numpy as np
import pandas as pd

from microns_assets.cave.complete import fetch_complete, until_counted
from microns_assets.cave.connection import CaveConnection, QueryResult
from microns_assets.cave.errors import IncompleteResultError
from microns_assets.cave.filters import Filters

#: Longest pre-cell list sent as a filter; longer lists are applied locally.
MAX_PRE_FILTER = 5_000
#: Longest pre-cell list sent once answers are dense (`DENSE_CELLS` cells would bring more than
#: the sizer's target, 3/4 of the row cap): then every row dropped locally costs a share of a
#: full query on both sides, more than sending the list. Chunks planned from then on send it,
#: also for "every unit" (`send_pre=False`). Measured on the emulator at MICrONS density (20,000
#: nuclei, 2,300 synapses each, 12k units, half the rows from other cells): chunk stage
#: 17.3-18.8 -> 11.4-13.6 s. At the default density answers are not dense, and sending 18k ids
#: per query was no faster (docs/benchmarks.md), so nothing changes there. Not measured against
#: the real server: 20,000 ids (~400 KB a query) is as long as the lists the seed itself sends
#: (its whole pre set, every unit of a 30000-nuclei world in our peer benchmark); longer lists
#: stay local.
DENSE_PRE_FILTER = 20_000
#: Answers are dense when this many post cells (the seed's batch) bring more than the target.
DENSE_CELLS = 500
#: Most post cells in one sub-batch, however few rows they bring.
MAX_POST_BATCH = 5_000
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
    pre_sent: bool = False  # the pre cells went with the queries (else filtered locally)

    @classmethod
    def total(cls, parts: list[DownloadStats], verified: bool) -> DownloadStats:
        """The sum of several downloads' figures (`server_rows` None when not verified)."""
        out = cls(server_rows=0 if verified else None)
        for part in parts:
            for f in fields(cls):
                if f.name == "pre_sent":  # (not a figure: the caller says)
                    continue
                mine, theirs = getattr(out, f.name), getattr(part, f.name)
                if mine is not None and theirs is not None:
                    setattr(out, f.name, mine + theirs)
        return out

    def count(self, result: QueryResult) -> None:
        """Record one query."""
        self.queries += 1
        self.capped += int(result.truncated)
        self.seconds += result.elapsed_s


#: One try at a sub-batch: its pieces (more than one if capped and split) and what it took.
_Fetched = tuple[list[pd.DataFrame], DownloadStats]


class _Sizer:
    """Post cells per sub-batch: `first` until answers are in, then 3/4 of a capped answer's rows.

    From the rows the answers so far brought per post cell (a chunk's count, asked first, is
    such an answer too, uncapped): as many cells as bring three quarters of the server's row cap
    (at least 1, at most `MAX_POST_BATCH`; a batch of hundreds of cells varies far less than
    that margin, and one that is capped all the same is halved). So a dense world (MICrONS:
    ~2,300 synapses a cell) is not asked for capped answers that are
    thrown away, and a sparse one is not asked in more queries than it needs.
    """

    def __init__(self, first: int, row_cap: int) -> None:
        self.first, self.target = first, max(1, row_cap * 3 // 4)
        self.posts = self.rows = 0

    def add(self, posts: int, rows: int) -> None:
        """An answer (a sub-batch's rows, or a count): `rows` onto `posts` post cells."""
        self.posts += posts
        self.rows += rows

    def dense(self) -> bool:
        """Whether answers so far say `DENSE_CELLS` cells bring more than the target rows."""
        return self.rows > 0 and self.rows * DENSE_CELLS > self.target * self.posts

    def restarted(self) -> _Sizer:
        """A sizer for answers of another kind (fewer rows a cell), which start it afresh.

        It begins at this one's rate, worth one sub-batch, so the first sizes stay safe and
        the new kind's answers soon outweigh it.
        """
        new = copy.copy(self)
        cells = self.size()
        new.posts, new.rows = cells, max(1, self.rows * cells // max(1, self.posts))
        return new

    def size(self) -> int:
        """Post cells for the next sub-batches (also read by the threads that cut capped ones)."""
        # (read while an answer is added, the pair may be a rate a little off: a piece too big
        # is capped and cut again; no cut can lose or repeat a cell)
        posts, rows = self.posts, self.rows
        if not posts:
            return self.first
        if not rows:
            return MAX_POST_BATCH
        return max(1, min(MAX_POST_BATCH, self.target * posts // rows))


@dataclass(frozen=True)
class _SubBatches:
    """What the sub-batches of one way of querying share: where they go, and what for.

    `pre_filter`: the pre cells sent with each query, as the list sent (made once, not per
    query: up to `DENSE_PRE_FILTER` ids); None: every pre cell comes, and the caller filters
    locally.
    """

    conn: CaveConnection
    version: int
    table: str
    pre_filter: list[int] | None
    columns: list[str]
    attempts: int

    def filters(self, post: np.ndarray) -> Filters:
        """Synapses onto `post`, from the pre cells sent (if any)."""
        isin = {"post_pt_root_id": post.tolist()}
        if self.pre_filter is not None:
            isin["pre_pt_root_id"] = self.pre_filter
        return Filters(isin=isin)

    def fetch(
        self, post: np.ndarray, stats: DownloadStats, sizer: _Sizer | None = None
    ) -> list[pd.DataFrame]:
        """Rows onto `post`: cut while capped, then split by synapse id.

        A capped batch is cut in halves, or in pieces of `sizer`'s size if smaller (its answers,
        read while this runs, may have come in since the batch was planned blind): disjoint
        pieces of `post` either way.
        """
        filters = self.filters(post)
        result = self.conn.query(
            self.version, self.table, filters, select_columns=self.columns, merge_reference=False
        )  # (a synapse table joins nothing: caveclient need not read its metadata first)
        stats.count(result)
        if not result.truncated:
            return [result.frame]
        if post.size > 1:
            piece = post.size // 2
            if sizer is not None and sizer.posts:
                piece = max(1, min(piece, sizer.size()))
            return [
                found
                for start in range(0, post.size, piece)
                for found in self.fetch(post[start : start + piece], stats, sizer)
            ]
        stats.splits_by_id += 1
        complete = fetch_complete(
            self.conn, self.version, self.table, key="id", filters=filters,
            select_columns=self.columns, merge_reference=False, on_query=stats.count,
        )  # fmt: skip
        return [complete.frame]

    def count(self, post: np.ndarray) -> int:
        """The server's count of the rows onto `post` (uncapped, same filters)."""
        return self.conn.count_rows(self.version, self.table, self.filters(post))

    def once(self, post: np.ndarray, sizer: _Sizer | None = None) -> _Fetched:
        """One try at the rows onto `post`, and what it took (`sizer`: see `fetch`)."""
        stats = DownloadStats(batches=1, batches_done=1)
        pieces = self.fetch(post, stats, sizer)
        stats.rows = sum(len(p) for p in pieces)
        return pieces, stats

    def settle(self, subs: list[np.ndarray], tries: list[_Fetched], expected: int) -> DownloadStats:
        """Make a chunk's sub-batches add up to the server's count of the chunk (`expected`).

        Rows that add up are kept as they are. Otherwise each sub-batch is counted (a single one
        has the chunk's count) and one whose rows differ is downloaded again, up to `attempts`
        tries in all, in place in `tries`; `RowsLostError` if it never matches. Returns the
        chunk's figures, every try's queries included.
        """
        extra = DownloadStats(server_rows=expected, count_queries=1)
        if sum(stats.rows for _, stats in tries) == expected:
            return extra
        for i, post in enumerate(subs):
            if len(subs) == 1:
                wanted = expected
            else:
                wanted = self.count(post)
                extra.count_queries += 1
            tries[i] = self._until_counted(post, tries[i], wanted, extra)
        return extra

    def _until_counted(
        self, post: np.ndarray, first: _Fetched, wanted: int, extra: DownloadStats
    ) -> _Fetched:
        """`first`, or later tries at `post` until one has `wanted` rows.

        Into `extra`: each miss, and the queries of the tries not kept.
        """
        tries = chain([first], iter(lambda: self.once(post), None))  # endless
        spent: list[DownloadStats] = []

        def next_try() -> _Fetched:
            found = next(tries)
            spent.append(found[1])
            return found

        def missed() -> None:
            extra.recounted += 1

        kept = until_counted(
            next_try, lambda found: found[1].rows, wanted, attempts=self.attempts,
            what=f"{self.table} (v{self.version}), synapses onto {post.size} post cells",
            on_miss=missed,
        )  # fmt: skip
        for earlier in spent[:-1]:
            extra.queries += earlier.queries
            extra.capped += earlier.capped
            extra.seconds += earlier.seconds
            extra.splits_by_id += earlier.splits_by_id
        return kept


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
    attempts: int | None = None,
) -> tuple[pd.DataFrame, DownloadStats]:
    """All synapses onto `post_roots` from `pre_roots` (None: from anything), one row each.

    One chunk of `download_chunks`, its sub-batches one at a time; see there (one chunk is
    planned before any answer, so it sends the pre list only by `send_pre` and `MAX_PRE_FILTER`).
    """
    chunks = download_chunks(
        conn, version, table, {"all": post_roots}, pre_roots, individual=individual,
        send_pre=send_pre, batch_size=batch_size, verify_counts=verify_counts,
        attempts=attempts, workers=1,
    )  # fmt: skip
    _, frame, stats = next(chunks)
    return frame, stats


def download_chunks(
    conn: CaveConnection,
    version: int,
    table: str,
    chunks: Mapping[str, np.ndarray],
    pre_roots: np.ndarray | None,
    *,
    individual: bool,
    send_pre: bool = True,
    batch_size: int = 500,
    verify_counts: bool = True,
    attempts: int | None = None,
    workers: int = 4,
) -> Iterator[tuple[str, pd.DataFrame, DownloadStats]]:
    """Each chunk's synapses (onto its post roots, from `pre_roots`), as soon as it is complete.

    Every chunk's post cells are cut into sub-batches (`_Sizer`: `batch_size` cells until
    answers have come in, then as many as bring about 3/4 of the server's row cap); `workers`
    threads download the sub-batches of all chunks, in chunk order, over the one connection
    (whose own bound on requests in flight holds across them), a few chunks ahead of the
    answers (until the first answer, chunks only until `workers // 2` sub-batches are out, at
    least one chunk: chunks planned blind into a dense world would each be capped and halved
    several times). A chunk is yielded, as
    `(key, rows, stats)`, once all its sub-batches are in, so chunks finish roughly in order and
    only a few are held in memory at once. `send_pre=False`
    (for a pre side that is every unit) filters pre cells locally instead of sending the list,
    until answers are dense (`DENSE_PRE_FILTER`); a chunk's queries and count all go one way
    (`stats.pre_sent`).
    Rows: `id`, roots, `size`, and centre positions in voxels when `individual`. `verify_counts`
    asks the server to count each chunk's rows too (one count query per chunk, sent before its
    sub-batches); a chunk that does not add up has its sub-batches counted, and each is tried up
    to `attempts` times (default: the connection's `call_attempts`) to match its own count
    (`_SubBatches.settle`). The first error stops the download (pending queries are cancelled)
    and is raised.
    """
    columns = INDIVIDUAL_COLUMNS if individual else AGGREGATE_COLUMNS
    attempts = conn.settings.call_attempts if attempts is None else attempts
    pre = None if pre_roots is None else np.asarray(pre_roots, dtype=np.int64)
    local = _SubBatches(conn, version, table, None, columns, attempts)
    always = pre is not None and send_pre and pre.size <= MAX_PRE_FILTER
    when_dense = pre is not None and pre.size <= DENSE_PRE_FILTER
    sending = (
        _SubBatches(conn, version, table, pre.tolist(), columns, attempts)
        if always or when_dense
        else local  # (never chosen: `always` stays False)
    )
    sizer = _Sizer(batch_size, conn.settings.row_cap)
    how: dict[str, _SubBatches] = {}  # each chunk's way, chosen when it is planned
    todo = iter(chunks.items())
    ahead = 3 * max(1, workers)  # sub-batches asked for and not yet in
    plan: dict[str, list[np.ndarray]] = {}
    counts: dict[str, Future[int]] = {}
    tries: dict[str, list[Future[_Fetched]]] = {}
    owner: dict[Future, str] = {}
    posts: dict[Future, int] = {}  # a sub-batch's post cells
    counted: dict[Future, int] = {}  # a count's post cells
    sized: dict[Future, _Sizer] = {}  # the sizer an answer informs (of its kind of answers)
    left: dict[str, int] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="cave-synapses")
    try:
        while True:
            # until an answer says how many rows a cell brings, few chunks are planned blind
            limit = ahead if sizer.posts else max(1, workers // 2)
            while len(posts) < limit and (item := next(todo, None)) is not None:
                key, roots = item
                post = np.unique(np.asarray(roots, dtype=np.int64))
                size = sizer.size()
                if not always and when_dense and sizer.dense():
                    always = True  # for good: the chunks after this one send it too
                    sizer = sizer.restarted()  # (answers bring fewer rows a cell now)
                    size = sizer.size()
                how[key] = batches = sending if always else local
                plan[key] = subs = [post[i : i + size] for i in range(0, post.size, size)]
                if not subs:
                    stats = DownloadStats(server_rows=0 if verify_counts else None)
                    stats.pre_sent = batches.pre_filter is not None
                    del how[key], plan[key]
                    yield key, _empty(individual), stats
                    continue
                if verify_counts:  # sent first: the count is in before the rows (and sizes)
                    counts[key] = pool.submit(batches.count, post)
                    owner[counts[key]], counted[counts[key]], sized[counts[key]] = (
                        key,
                        post.size,
                        sizer,
                    )
                tries[key] = [pool.submit(batches.once, b, sizer) for b in subs]
                for future, sub in zip(tries[key], subs, strict=True):
                    owner[future], posts[future], sized[future] = key, sub.size, sizer
                left[key] = len(subs) + (key in counts)
            if not owner:
                return
            for future in wait(owner, return_when=FIRST_COMPLETED).done:
                key = owner.pop(future)
                found = future.result()  # raise the first error
                if future in posts:
                    sized.pop(future).add(posts.pop(future), found[1].rows)
                elif future in counted:  # a count: the rows its cells bring, uncapped
                    sized.pop(future).add(counted.pop(future), found)
                left[key] -= 1
                if left[key]:
                    continue
                done = [f.result() for f in tries.pop(key)]
                # settling (against the count) may replace tries in `done`
                batches = how.pop(key)
                extra = (
                    [batches.settle(plan[key], done, counts.pop(key).result())]
                    if key in counts
                    else []
                )
                stats = DownloadStats.total([s for _, s in done] + extra, verify_counts)
                stats.pre_sent = batches.pre_filter is not None
                pieces = [p for found, _ in done for p in found]
                frame = _assemble(pieces, pre_roots, batches.pre_filter, individual, table, version)
                del plan[key]
                yield key, frame, stats
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _assemble(
    pieces: list[pd.DataFrame],
    pre_roots: np.ndarray | None,
    pre_send: list[int] | None,
    individual: bool,
    table: str,
    version: int,
) -> pd.DataFrame:
    """One chunk's rows from its pieces: pre cells filtered locally if not sent; ids unique.

    Id, root and size columns without missing values become plain int64 (what the shaping
    and checks downstream read, without copies); one with a missing value stays as sent.
    """
    if not pieces:
        return _empty(individual)
    keep = [c for c in pieces[0].columns if not c.endswith("_supervoxel_id")]
    columns = {c: _joined([p[c] for p in pieces]) for c in keep}
    if pre_roots is not None and pre_send is None:
        pre = pd.Series(columns["pre_pt_root_id"], copy=False)
        mine = pre.isin(pre_roots).to_numpy()  # hashed, not sorted (a missing pre cell is no unit)
        if not mine.all():
            rows = np.flatnonzero(mine)  # (taking rows by number: ~3x faster than by mask)
            columns = {c: v.take(rows) for c, v in columns.items()}
    ids = pd.Series(columns["id"], copy=False)
    duplicated = 0 if ids.is_unique else int(ids.duplicated().sum())
    if duplicated:
        raise IncompleteResultError(
            f"{table} (v{version}): {duplicated} synapse ids arrived twice; refusing to store"
        )
    return pd.DataFrame(columns, copy=False)


def _joined(parts: list[pd.Series]) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """A column of every piece: int64 if it holds integers and no missing value."""
    if all(pd.api.types.is_integer_dtype(p.dtype) and not p.hasnans for p in parts):
        arrays = [p.to_numpy(dtype=np.int64) for p in parts]
    else:
        arrays = [p.array for p in parts]
    if len(arrays) == 1:
        return arrays[0]
    if all(isinstance(a, np.ndarray) for a in arrays):
        return np.concatenate(arrays)
    return pd.concat(map(pd.Series, arrays), ignore_index=True).array


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
