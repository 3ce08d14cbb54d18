"""The materialization engine's query semantics over Arrow tables: joins, filters, row cap.

Given a version's tables and a query body as caveclient sends it, produce the result table and
whether the row cap cut it, or (`count=true`) only how many rows match. Filters on root-id and
id columns use sorted indexes so that the synapse table answers sub-batch queries without
scanning every row.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from microns_assets.emulator.tables import VersionTables

INDEXED = ("pt_root_id", "pre_pt_root_id", "post_pt_root_id", "id", "target_id")
_COMPARISONS = {
    "filter_greater_dict": pc.greater,
    "filter_less_dict": pc.less,
    "filter_greater_equal_dict": pc.greater_equal,
    "filter_less_equal_dict": pc.less_equal,
}
_UNSUPPORTED = ("filter_spatial_dict", "filter_regex_dict", "desired_resolution")


class QueryError(Exception):
    """A query the server rejects; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Result:
    """A query's answer: the rows, and the limit that cut it (None if complete)."""

    table: pa.Table
    limited_to: int | None


def pandas_dtypes(table: pa.Table) -> dict:
    """The pandas dtype of each column, as the table's pandas metadata describes it."""
    return dict(table.schema.empty_table().to_pandas().dtypes)


def with_pandas_metadata(arrays: list[pa.Array], names: list[str], dtypes: dict) -> pa.Table:
    """Build a table whose pandas metadata makes `read_pandas` give exactly `dtypes`."""
    import pandas as pd

    empty = pd.DataFrame({n: pd.Series([], dtype=dtypes[n]) for n in names})
    schema = pa.Schema.from_pandas(empty, preserve_index=False)
    return pa.Table.from_arrays(
        [a.cast(f.type) if a.type != f.type else a for a, f in zip(arrays, schema, strict=True)],
        schema=schema,
    )


class _Index:
    """Sorted keys of one column and the row order that sorts them."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        values = column.to_numpy(zero_copy_only=False)
        self.order = np.argsort(values, kind="stable")
        self.keys = values[self.order]

    def rows(self, wanted: np.ndarray, ordered: bool = True) -> np.ndarray:
        """The rows whose key is in `wanted`, in table order (any order unless `ordered`).

        Unordered is enough to count them: a database counts without sorting.
        """
        wanted = np.unique(wanted)
        lo = np.searchsorted(self.keys, wanted, side="left")
        hi = np.searchsorted(self.keys, wanted, side="right")
        hit = hi > lo
        lo, hi = lo[hit], hi[hit]
        if lo.size == 0:
            return np.empty(0, dtype=np.int64)
        lengths = hi - lo
        starts = np.repeat(lo - np.cumsum(np.concatenate([[0], lengths[:-1]])), lengths)
        positions = starts + np.arange(lengths.sum())
        rows = self.order[positions]
        return np.sort(rows) if ordered else rows


class QueryEngine:
    """Answers queries for the versions of one world; thread-safe, memoizing tables/indexes."""

    def __init__(self, tables_for_version) -> None:
        self.tables_for_version = tables_for_version
        self._frames: dict[tuple, pa.Table] = {}
        self._indexes: dict[tuple, _Index] = {}
        self._lock = threading.Lock()

    # --- frames -----------------------------------------------------------------------
    def frame(self, version: int, tables: list) -> tuple[pa.Table, dict[str, dict[str, str]]]:
        """The queried frame and, per table name, the map from its columns to output names."""
        key = (version, tuple(tuple(t) if isinstance(t, list) else t for t in tables))
        with self._lock:
            if key not in self._frames:
                self._frames[key] = self._build_frame(self.tables_for_version(version), tables)
            frame = self._frames[key]
        return frame, self._column_maps(self.tables_for_version(version), tables)

    @staticmethod
    def _names(tables: list) -> list[str]:
        return [t if isinstance(t, str) else t[0] for t in tables]

    def _column_maps(self, vt: VersionTables, tables: list) -> dict[str, dict[str, str]]:
        names = self._names(tables)
        if len(names) == 1:
            return {names[0]: {c: c for c in vt.get(names[0]).column_names}}
        left, right = names
        left_cols = [c for c in vt.get(left).column_names if c not in ("superceded_id", "deleted")]
        maps = {left: {c: c for c in left_cols}, right: {}}
        for c in vt.get(right).column_names:
            if c not in ("superceded_id", "deleted"):
                maps[right][c] = f"{c}_ref" if c in left_cols else c
        return maps

    def _build_frame(self, vt: VersionTables, tables: list) -> pa.Table:
        if len(tables) == 1:
            name = tables[0] if isinstance(tables[0], str) else tables[0][0]
            return vt.get(name)
        if len(tables) != 2:
            raise QueryError(400, "the emulator joins at most two tables")
        (left, left_col), (right, right_col) = tables
        lt = vt.get(left).drop_columns(["superceded_id"])
        rt = vt.get(right).drop_columns(["superceded_id"])
        keys = rt[right_col].to_numpy()
        order = np.argsort(keys, kind="stable")
        target = lt[left_col].to_numpy()
        pos = np.clip(np.searchsorted(keys[order], target), 0, max(len(keys) - 1, 0))
        found = (keys[order][pos] == target) if len(keys) else np.zeros(len(target), bool)
        left_rows = np.flatnonzero(found)
        right_rows = order[pos[found]]
        dtypes = {**pandas_dtypes(lt)}
        names, arrays = [], []
        for c in lt.column_names:
            names.append(c)
            arrays.append(lt[c].take(left_rows).combine_chunks())
        for c in rt.column_names:
            out = f"{c}_ref" if c in lt.column_names else c
            dtypes[out] = pandas_dtypes(rt)[c]
            names.append(out)
            arrays.append(rt[c].take(right_rows).combine_chunks())
        return with_pandas_metadata(arrays, names, dtypes)

    def _index(self, version: int, tables: list, frame: pa.Table, column: str) -> _Index:
        key = (version, str(tables), column)
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = _Index(frame[column])
            return self._indexes[key]

    # --- queries ----------------------------------------------------------------------
    def count(self, version: int, table: str) -> int:
        """Number of rows of a plain table (what `/count` answers)."""
        return self.frame(version, [table])[0].num_rows

    def query(self, version: int, tables: list, body: dict, row_cap: int) -> Result:
        """Run one query body against `tables` (one plain table, or `[[t, col], [ref, col]]`)."""
        subset = self._matching(version, tables, body, select=True)
        requested = body.get("limit")
        limit = row_cap if requested is None else min(int(requested), row_cap)
        offset = int(body.get("offset") or 0)
        result = subset.slice(offset, limit)
        limited = limit if result.num_rows == limit else None
        return Result(result, limited)

    def count_query(self, version: int, tables: list, body: dict) -> int:
        """Rows a query body matches, as the server's `count=true` answers it.

        Like the real server, every filter applies but neither the row cap nor `limit` does;
        `offset` still skips rows (SQL `count(*)` over the offset query).
        """
        subset = self._matching(version, tables, body, select=False)
        return max(0, subset.num_rows - int(body.get("offset") or 0))

    def _matching(self, version: int, tables: list, body: dict, *, select: bool) -> pa.Table:
        """Every row the body's filters keep, before offset and limit.

        With `select`, the selected columns; without, only the filtered ones (enough to count).
        Only the columns needed are gathered, as a database reads only those it needs.
        """
        for key in _UNSUPPORTED:
            if body.get(key):
                raise QueryError(400, f"{key} is not supported by the microns_assets emulator")
        frame, maps = self.frame(version, tables)
        conditions = self._conditions(body, maps)
        selected = self._selected(body, maps, frame.column_names) if select else []
        filtered = {c[1] for c in conditions}
        frame = frame.select([c for c in frame.column_names if c in filtered or c in selected])

        # The indexed `filter_in` with the fewest keys picks candidate rows; the rest filter them.
        indexed = [c for c in conditions if c[0] == "filter_in_dict" and c[1] in INDEXED]
        chosen = min(indexed, key=lambda c: len(c[2]), default=None)
        subset = frame
        if chosen is not None:
            wanted = np.asarray(chosen[2], dtype=np.int64)
            index = self._index(version, tables, frame, chosen[1])
            subset = frame.take(index.rows(wanted, ordered=select))

        mask = None
        for condition in conditions:
            if condition is chosen:
                continue
            cond = self._condition(subset, *condition)
            mask = cond if mask is None else pc.and_(mask, cond)
        if mask is not None:
            subset = subset.filter(mask)

        return subset.select(selected)

    @staticmethod
    def _conditions(body: dict, maps: dict[str, dict[str, str]]) -> list[tuple[str, str, object]]:
        out = []
        kinds = ("filter_in_dict", "filter_notin_dict", "filter_equal_dict", *_COMPARISONS)
        for kind in kinds:
            for table, filters in (body.get(kind) or {}).items():
                if table not in maps:
                    raise QueryError(400, f"{kind} names table {table!r}, not part of this query")
                for column, values in filters.items():
                    out.append((kind, QueryEngine._resolve(maps, table, column), values))
        return out

    @staticmethod
    def _resolve(maps: dict[str, dict[str, str]], table: str, column: str) -> str:
        if column in maps[table]:
            return maps[table][column]
        for other in maps.values():  # a join filters on either table's columns
            if column in other.values():
                return column
        raise QueryError(400, f"column {column!r} does not exist in table {table!r}")

    @staticmethod
    def _condition(table: pa.Table, kind: str, column: str, values) -> pa.Array:
        col = table[column]
        if kind == "filter_in_dict":
            return pc.is_in(col, value_set=pa.array(values, type=col.type))
        if kind == "filter_notin_dict":
            return pc.invert(pc.is_in(col, value_set=pa.array(values, type=col.type)))
        if kind == "filter_equal_dict":
            return pc.equal(col, pa.scalar(values, type=col.type))
        return _COMPARISONS[kind](col, pa.scalar(values, type=col.type))

    @staticmethod
    def _selected(body: dict, maps: dict[str, dict[str, str]], available: list[str]) -> list[str]:
        wanted: set[str] = set()
        if body.get("select_columns"):
            for c in body["select_columns"]:
                split = [f"{c}_{axis}" for axis in "xyz"]
                if c in available:
                    wanted.add(c)
                elif all(s in available for s in split):  # a point, sent split into x/y/z
                    wanted.update(split)
                else:
                    raise QueryError(400, f"select_columns names unknown column {c!r}")
        elif body.get("select_column_map"):
            for table, cols in body["select_column_map"].items():
                if table not in maps:
                    raise QueryError(400, f"select_column_map names unknown table {table!r}")
                wanted.update(QueryEngine._resolve(maps, table, c) for c in cols)
        else:
            return available
        for c in list(wanted):  # a selected root id brings its supervoxel id along
            if c.endswith("_root_id"):
                sv = c.replace("_root_id", "_supervoxel_id")
                if sv in available:
                    wanted.add(sv)
        return [c for c in available if c in wanted]
