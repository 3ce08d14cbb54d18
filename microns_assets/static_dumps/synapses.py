"""The synapse dump of an expired version, split into chunks in one streaming pass.

DuckDB reads the gzip CSV (typed from its header file, only the columns a chunk needs), keeps
the rows whose post cell belongs to one of the wanted chunks and whose pre cell is selected,
and writes them partitioned by chunk to Parquet files, spilling to disk past `memory_limit`:
memory stays bounded whatever the dump's size (about 20 GB at MICrONS scale). Each chunk's rows
are then handed over as a frame with the live API's columns and dtypes (`id`, roots, `size`,
and centre positions when individual), as `cave.synapses.download_chunks` gives them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from microns_assets.static_dumps.tables import Column, DumpFormatError

#: Postgres header type -> DuckDB type, for the columns read.
DUCK_TYPES = {
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
}
AGGREGATE_COLUMNS = ("id", "pre_pt_root_id", "post_pt_root_id", "size")
INDIVIDUAL_COLUMNS = (
    *AGGREGATE_COLUMNS,
    "ctr_pt_position_x",
    "ctr_pt_position_y",
    "ctr_pt_position_z",
)
DTYPES = {"id": "Int64", "pre_pt_root_id": "Int64", "post_pt_root_id": "Int64", "size": "Int32"}


def synapse_files(table: str) -> tuple[str, str]:
    """The header and data file names of a synapse table's dump."""
    return f"{table}_v1_filtered_view_header.csv", f"{table}_v1_filtered_view.csv.gz"


def _dtype(column: str) -> str:
    return DTYPES.get(column, "Int32")  # positions: Int32, as the live API sends them


def _columns_struct(columns: list[Column], wanted: tuple[str, ...]) -> str:
    """DuckDB's `columns={...}` of read_csv: every column, the unread ones as VARCHAR."""
    names = {c.name for c in columns}
    missing = [w for w in wanted if w not in names]
    if missing:
        raise DumpFormatError(f"the synapse dump has no column(s) {missing}")
    parts = []
    for column in columns:
        if not re.fullmatch(r"\w+", column.name):
            raise DumpFormatError(f"unexpected column name {column.name!r} in the synapse dump")
        kind = DUCK_TYPES.get(column.pg_type, "VARCHAR") if column.name in wanted else "VARCHAR"
        parts.append(f"'{column.name}': '{kind}'")
    return "{" + ", ".join(parts) + "}"


def split_synapses(
    path: Path,
    columns: list[Column],
    chunks: Mapping[str, np.ndarray],
    pre_roots: np.ndarray | None,
    *,
    individual: bool,
    work_dir: Path,
    memory_limit: str = "512MB",
) -> Iterator[tuple[str, pd.DataFrame, int]]:
    """Each chunk's synapses from the dump at `path`: `(label, rows, rows)` in `chunks`' order.

    `chunks` maps a label to its post roots; `pre_roots` None keeps every pre cell. Raises
    `DumpFormatError` when the file cannot be read whole (corrupt gzip, a malformed line).
    """
    import duckdb

    wanted = INDIVIDUAL_COLUMNS if individual else AGGREGATE_COLUMNS
    labels = list(chunks)
    posts = [np.unique(np.asarray(chunks[k], dtype=np.int64)) for k in labels]
    post_table = pa.table(
        {
            "root": pa.array(np.concatenate(posts) if posts else [], pa.int64()),
            "part": pa.array(
                np.repeat(np.arange(len(labels)), [p.size for p in posts]), pa.int32()
            ),
        }
    )
    work = Path(tempfile.mkdtemp(prefix="synapse-split-", dir=work_dir))
    try:
        con = duckdb.connect()
        con.execute("SET autoinstall_known_extensions = false")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(f"SET temp_directory = '{work / 'spill'}'")
        con.execute("SET preserve_insertion_order = false")
        con.register("posts", post_table)
        pre_filter = ""
        if pre_roots is not None:
            con.register("pres", pa.table({"root": pa.array(np.unique(pre_roots), pa.int64())}))
            pre_filter = "WHERE s.pre_pt_root_id IN (SELECT root FROM pres)"
        select = ", ".join(f's."{c}"' for c in wanted)
        source = (
            f"read_csv(?, header = false, auto_detect = false, delim = ',', quote = '\"', "
            f"compression = 'gzip', columns = {_columns_struct(columns, wanted)})"
        )
        out = work / "split"
        try:
            con.execute(
                f"COPY (SELECT p.part, {select} FROM {source} s JOIN posts p "
                f"ON s.post_pt_root_id = p.root {pre_filter}) "
                f"TO '{out}' (FORMAT PARQUET, PARTITION_BY (part))",
                [str(path)],
            )
        except duckdb.Error as err:
            raise DumpFormatError(
                f"{path}: the synapse dump cannot be read whole ({err}); delete it and "
                "materialize again to download it anew"
            ) from err
        finally:
            con.close()
        for index, label in enumerate(labels):
            files = sorted((out / f"part={index}").glob("*.parquet"))
            table = pa.concat_tables([pq.read_table(f) for f in files]) if files else None
            frame = pd.DataFrame(
                {
                    c: (
                        table[c].to_pandas(types_mapper=pd.ArrowDtype)
                        if table is not None
                        else pd.Series([], dtype="int64")
                    ).astype(_dtype(c))
                    for c in wanted
                }
            )
            yield label, frame, len(frame)
    finally:
        shutil.rmtree(work, ignore_errors=True)
