"""Roll-up of chunk files into one sorted Parquet file with bounded memory (DuckDB).

DuckDB reads the chunk files, sorts out of core under a memory limit (spilling to a temporary
folder) and streams Arrow record batches; `write_batches` writes them atomically. No Dagster.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from microns_assets.storage.parquet import PROVENANCE_KEY, Written


@dataclass
class Streamed:
    """A table too big to hold: a stream of record batches and the provenance to store.

    While it is written, `written` tallies what went into the file: `rows`, and the sum of
    every column named in `tally`.
    """

    reader: pa.RecordBatchReader
    provenance: dict
    tally: tuple[str, ...] = ()
    written: dict[str, int] = field(default_factory=dict)


def _connect(memory_limit: str, temp_dir: str | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_dir:
        con.execute(f"SET temp_directory = '{temp_dir}'")
    return con


def sorted_batches(
    paths: list[UPath],
    order_by: list[str],
    memory_limit: str = "256MB",
    temp_dir: str | None = None,
    batch_rows: int = 1_000_000,
) -> pa.RecordBatchReader:
    """All rows of `paths` sorted by `order_by`, as a stream of record batches."""
    con = _connect(memory_limit, temp_dir)
    files = [str(p) for p in paths]
    columns = ", ".join(f'"{c}"' for c in order_by)
    relation = con.sql(f"SELECT * FROM read_parquet(?) ORDER BY {columns}", params=[files])
    return relation.to_arrow_reader(batch_rows)


def totals(paths: list[UPath], sql_aggregates: dict[str, str]) -> dict[str, int]:
    """Aggregates (name -> SQL expression) over all rows of `paths`."""
    con = _connect("512MB", None)
    select = ", ".join(f'{expr} AS "{name}"' for name, expr in sql_aggregates.items())
    row = con.execute(f"SELECT {select} FROM read_parquet(?)", [[str(p) for p in paths]]).fetchone()
    return {name: int(value or 0) for name, value in zip(sql_aggregates, row, strict=True)}


def write_batches(streamed: Streamed, path: UPath) -> Written:
    """Stream into `path` atomically, provenance in the Parquet metadata; tally as it goes."""
    schema = streamed.reader.schema
    meta = dict(schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(streamed.provenance, default=str).encode()
    schema = schema.with_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    tally = dict.fromkeys(("rows", *streamed.tally), 0)
    try:
        with tmp.open("wb") as f, pq.ParquetWriter(f, schema, compression="zstd") as writer:
            for batch in streamed.reader:
                writer.write_batch(batch.replace_schema_metadata(meta))
                tally["rows"] += batch.num_rows
                for column in streamed.tally:
                    tally[column] += int(pc.sum(batch[column]).as_py() or 0)
        tmp.rename(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    streamed.written = tally
    return Written(path, tally["rows"], path.stat().st_size)
