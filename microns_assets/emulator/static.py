"""Static dumps of expired versions, in the layout of CAVE's public bucket.

The real service publishes an expired version N of `minnie65_phase3_v1` under
`https://storage.googleapis.com/mat_dbs/public/minnie65_phase3_v1/v{N}/`. The emulator serves the
same files for its expired versions under `/static/{datastack}/v{N}/` (public: no token):

- `{table}_merged.csv.gz`: the table's rows as stored (its annotation and segmentation columns,
  positions split into `_x/_y/_z`; a reference table carries its own columns only, not its
  target's), gzip CSV without a header row;
- `{table}_merged_header.csv`: one `column,type` line per column, in order, Postgres type names;
- `{synapse table}_v1_filtered_view.csv.gz` and `..._header.csv`: the synapse table.

Values are written as Postgres' `COPY ... CSV` writes them: booleans `t`/`f`, NULL as an empty
field, timestamps `YYYY-MM-DD HH:MM:SS.ffffff`, strings quoted only when needed (an empty string
is `""`). A file is built on its first request and kept in memory.
"""

from __future__ import annotations

import gzip
import io
import threading
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from microns_assets.emulator import catalog as cat
from microns_assets.emulator.query import pandas_dtypes
from microns_assets.emulator.tables import VersionTables

TABLE_SUFFIX = "_merged.csv.gz"
HEADER_SUFFIX = "_merged_header.csv"
SYNAPSE_VIEW = "_v1_filtered_view"

#: pandas dtype of a served column -> the Postgres type its dump header names.
PG_TYPES = {
    "Int64": "bigint",
    "int64": "bigint",
    "Int32": "integer",
    "int32": "integer",
    "Float32": "real",
    "float32": "real",
    "Float64": "double precision",
    "float64": "double precision",
    "boolean": "boolean",
    "bool": "boolean",
    "string": "character varying",
    "datetime64[ns, UTC]": "timestamp without time zone",
}


def file_names(version: int) -> dict[str, tuple[str, bool]]:
    """Every file of `version`'s dump: name -> (table, is the header file)."""
    names = {}
    for table in cat.tables_in(version):
        stem = f"{table}{SYNAPSE_VIEW}" if table == cat.SYNAPSES else f"{table}_merged"
        names[f"{stem}.csv.gz"] = (table, False)
        names[f"{stem}_header.csv"] = (table, True)
    return names


def header_csv(table: pa.Table) -> bytes:
    """The header file: `column,type` per column, in the table's order."""
    dtypes = pandas_dtypes(table)
    lines = [f"{name},{PG_TYPES[str(dtypes[name])]}" for name in table.column_names]
    return ("\n".join(lines) + "\n").encode()


def rows_csv_gz(table: pa.Table) -> bytes:
    """The rows as Postgres' COPY writes them, gzip-compressed, no header row."""
    columns = []
    for column in table.columns:
        if pa.types.is_boolean(column.type):
            column = pc.if_else(column, "t", "f")
        elif pa.types.is_timestamp(column.type):
            column = pc.strftime(column.cast(pa.timestamp("us")), format="%Y-%m-%d %H:%M:%S")
        columns.append(column)
    plain = pa.Table.from_arrays(columns, names=table.column_names)
    text = io.BytesIO()
    pacsv.write_csv(plain, text, pacsv.WriteOptions(include_header=False))
    return gzip.compress(text.getvalue(), compresslevel=1, mtime=0)  # fast; same format


class StaticDumps:
    """The dump files of the expired versions of one world, built on demand (thread-safe)."""

    def __init__(self, tables_for_version: Callable[[int], VersionTables]) -> None:
        self._tables_for_version = tables_for_version
        self._files: dict[tuple[int, str], bytes] = {}
        self._lock = threading.Lock()

    def get(self, version: int, name: str) -> bytes | None:
        """The bytes of file `name` of `version`'s dump; None if there is no such file."""
        if (
            cat.VERSION_INDEX.get(version) is None
            or not cat.VERSIONS[cat.VERSION_INDEX[version]].expired
        ):
            return None
        entry = file_names(version).get(name)
        if entry is None:
            return None
        key = (version, name)
        with self._lock:
            if key not in self._files:
                table = self._tables_for_version(version).get(entry[0])
                self._files[key] = header_csv(table) if entry[1] else rows_csv_gz(table)
            return self._files[key]
