"""A table dump read into the frame the live API gives: same columns, dtypes and join.

The header file names each column's Postgres type; the CSV is read with exactly those types
(64-bit ids as integers, never through float; nullable integers and booleans; timestamps as
UTC), by pyarrow's CSV reader. A reference table's dump carries its own columns only (its
`target_id` and no root id): it is joined here to its target table's dump (the nucleus table,
the synapse table, ...: whichever CAVE's table metadata names) exactly like the server's join
(inner join on `target_id = id`, neither side's `superceded_id`, the target's clashing columns
suffixed `_ref`); annotations whose target is missing are orphans, dropped by the join as the
server drops them, and reported. The target's dump is streamed and only the rows the reference
table names are kept, so a reference to the synapse table does not load the whole synapse dump.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from microns_assets.cave.errors import CaveError

#: Postgres type in a dump header -> (Arrow type to parse as, pandas dtype of the live API).
TYPES: dict[str, tuple[pa.DataType, str]] = {
    "bigint": (pa.int64(), "Int64"),
    "integer": (pa.int32(), "Int32"),
    "smallint": (pa.int16(), "Int16"),
    "real": (pa.float32(), "Float32"),
    "double precision": (pa.float64(), "Float64"),
    "numeric": (pa.float64(), "Float64"),
    "boolean": (pa.bool_(), "boolean"),
    "character varying": (pa.string(), "string"),
    "text": (pa.string(), "string"),
    "timestamp without time zone": (pa.timestamp("us"), "datetime64[ns, UTC]"),
    "timestamp with time zone": (pa.timestamp("us", tz="UTC"), "datetime64[ns, UTC]"),
}
_NOT_JOINED = "superceded_id"


class DumpFormatError(CaveError):
    """A dump file is not what the static layout promises (bad header, corrupt gzip, ...)."""


class UnknownReferenceError(CaveError):
    """A reference table's dump whose target table no current version's metadata names."""


@dataclass(frozen=True)
class Column:
    """One line of a dump's header file."""

    name: str
    pg_type: str


def read_header(path: Path) -> list[Column]:
    """The columns of a dump, from its `..._header.csv` (`column,type` per line)."""
    columns = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, sep, pg_type = line.strip().partition(",")
        pg_type = pg_type.strip().strip('"').lower()
        if not sep or not name:
            raise DumpFormatError(f"{path}, line {number}: expected `column,type`, got {line!r}")
        if pg_type not in TYPES:
            raise DumpFormatError(
                f"{path}, line {number}: column {name!r} has type {pg_type!r}, which this reader "
                f"does not know (known: {sorted(TYPES)}); report it with the dump's URL"
            )
        columns.append(Column(name, pg_type))
    if not columns:
        raise DumpFormatError(f"{path}: empty header file")
    return columns


def read_rows(path: Path, columns: list[Column], ids: np.ndarray | None = None) -> pd.DataFrame:
    """The rows of a `.csv.gz` dump as a frame with the live API's dtypes.

    `ids`: keep only the rows whose `id` is one of them, reading the file as a stream (memory
    bounded by what is kept, whatever the dump's size).
    """
    options = pacsv.ConvertOptions(
        column_types={c.name: TYPES[c.pg_type][0] for c in columns},
        true_values=["t", "true"],
        false_values=["f", "false"],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        timestamp_parsers=["%Y-%m-%d %H:%M:%S", pacsv.ISO8601],
    )
    read = pacsv.ReadOptions(column_names=[c.name for c in columns], block_size=1 << 24)
    try:
        with gzip.open(path, "rb") as stream:
            if ids is None:
                table = pacsv.read_csv(stream, read_options=read, convert_options=options)
            else:
                table = _rows_with_ids(stream, read, options, ids)
    except (OSError, EOFError, zlib.error, pa.ArrowInvalid) as err:
        raise DumpFormatError(
            f"{path}: not a complete dump of {len(columns)} columns ({err}); delete it and "
            "materialize again to download it anew"
        ) from err
    frame = {}
    for column in columns:
        dtype = TYPES[column.pg_type][1]
        values = table[column.name]
        if dtype.startswith("datetime64"):
            series = values.to_pandas()
            series = (
                series.dt.tz_localize("UTC")
                if series.dt.tz is None
                else series.dt.tz_convert("UTC")
            )
            frame[column.name] = series.astype(dtype)
        else:
            frame[column.name] = values.to_pandas(types_mapper=pd.ArrowDtype).astype(dtype)
    return pd.DataFrame(frame)


def _rows_with_ids(stream, read, options, ids: np.ndarray) -> pa.Table:
    """The rows of a CSV stream whose `id` is in `ids`, batch by batch."""
    wanted = pa.array(np.unique(np.asarray(ids, dtype=np.int64)), pa.int64())
    reader = pacsv.open_csv(stream, read_options=read, convert_options=options)
    kept = [batch.filter(pc.is_in(batch.column("id"), value_set=wanted)) for batch in reader]
    return pa.Table.from_batches(kept, schema=reader.schema)


def is_unjoined_reference(columns: list[Column]) -> bool:
    """A reference table's dump without its target's columns (to be joined locally)."""
    names = {c.name for c in columns}
    return "target_id" in names and not any(n.endswith("root_id") for n in names)


@dataclass
class Joined:
    """A reference table joined to its target, and the annotations the join dropped."""

    frame: pd.DataFrame
    orphan_ids: tuple[int, ...]


def join_reference(reference: pd.DataFrame, target: pd.DataFrame) -> Joined:
    """The server's join of a reference table with its target table (see module docstring)."""
    left = reference.drop(columns=[_NOT_JOINED], errors="ignore")
    right = target.drop(columns=[_NOT_JOINED], errors="ignore")
    renamed = {c: f"{c}_ref" if c in left.columns else c for c in right.columns}
    right = right.rename(columns=renamed)
    key = renamed["id"]
    if right[key].duplicated().any():
        raise DumpFormatError("the target table's dump has an id twice; it cannot be joined")
    has_target = left["target_id"].isin(right[key]).to_numpy(dtype=bool, na_value=False)
    orphans = tuple(int(i) for i in np.sort(left.loc[~has_target, "id"].to_numpy(dtype=np.int64)))
    merged = left[has_target].merge(
        right, left_on="target_id", right_on=key, how="left", sort=False, validate="many_to_one"
    )
    return Joined(merged.reset_index(drop=True), orphans)
