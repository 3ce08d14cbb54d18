"""Roll-up of chunk files into one sorted Parquet file with bounded memory (DuckDB).

DuckDB reads the chunk files, sorts out of core under a memory limit (spilling to a local
temporary folder) and streams Arrow record batches; `write_batches` writes them atomically. Files
on object storage (`s3://`, `gs://`, ...) reach DuckDB through their fsspec filesystem
(`duckdb_for`: DuckDB's own `httpfs` extension is not in its wheel, and nothing is downloaded at
run time). No Dagster.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from microns_assets.storage.parquet import PROVENANCE_KEY, Written, is_local, write_options


@dataclass
class Streamed:
    """A table too big to hold: a stream of record batches and the provenance to store.

    While it is written, `written` tallies what went into the file: `rows`, the sum of every
    column named in `tally`, and with `sorted_by` (the columns the stream is sorted by)
    `repeated_keys`, the rows whose values there equal the previous row's (duplicates are
    neighbours in a sorted stream); once written, `path` is the file. `later`, if given, is
    called once the file is written for metadata that was not ready when the stream was handed
    over (a picture drawn meanwhile).
    """

    reader: pa.RecordBatchReader
    provenance: dict
    tally: tuple[str, ...] = ()
    sorted_by: tuple[str, ...] = ()
    written: dict[str, int] = field(default_factory=dict)
    path: UPath | None = None
    later: Callable[[], dict] | None = None


class _Repeats:
    """Rows of a stream sorted by `keys` whose keys equal the previous row's."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys, self.count, self._last = keys, 0, None

    def add(self, batch: pa.RecordBatch) -> None:
        if not self.keys or batch.num_rows == 0:
            return
        for key in self.keys:  # (with a null, to_numpy gives floats: 64-bit ids would blur)
            if batch.column(key).null_count:
                raise ValueError(f"the roll-up's sort key {key!r} has missing values")
        columns = [batch.column(k).to_numpy(zero_copy_only=False) for k in self.keys]
        if self._last is not None:  # the previous batch's last row, against this one's first
            columns = [
                np.concatenate(([last], c)) for last, c in zip(self._last, columns, strict=True)
            ]
        same = np.ones(len(columns[0]) - 1, dtype=bool)
        for column in columns:
            same &= column[1:] == column[:-1]
        self.count += int(np.count_nonzero(same))
        self._last = [column[-1] for column in columns]


def duckdb_for(
    paths: list[UPath], memory_limit: str = "512MB", temp_dir: str | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read `paths`, local or on any fsspec file system."""
    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")  # never download at run time
    con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_dir:
        con.execute(f"SET temp_directory = '{temp_dir}'")
    registered: set[str] = set()
    for path in paths:
        if not is_local(path) and path.protocol not in registered:
            con.register_filesystem(path.fs)  # DuckDB routes `<protocol>://` paths to it
            registered.add(path.protocol)
    return con


@contextmanager
def spill_dir(paths: list[UPath]) -> Iterator[str]:
    """Where DuckDB may spill while sorting `paths`.

    Beside them if local, else a local temporary folder, deleted when the block ends (so
    consume the sorted stream inside it).
    """
    if paths and is_local(paths[0]):
        yield str(paths[0].parent)
        return
    with tempfile.TemporaryDirectory(prefix="microns-rollup-spill-") as folder:
        yield folder


def sorted_batches(
    paths: list[UPath],
    order_by: list[str],
    memory_limit: str = "256MB",
    temp_dir: str | None = None,
    batch_rows: int = 1_000_000,
    threads: int | None = None,
) -> pa.RecordBatchReader:
    """All rows of `paths` sorted by `order_by`, as a stream of record batches.

    `threads`: how many threads DuckDB sorts on (default: one per core).
    """
    con = duckdb_for(paths, memory_limit, temp_dir)
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    files = [str(p) for p in paths]
    columns = ", ".join(f'"{c}"' for c in order_by)
    relation = con.sql(f"SELECT * FROM read_parquet(?) ORDER BY {columns}", params=[files])
    return relation.to_arrow_reader(batch_rows)


def write_batches(streamed: Streamed, path: UPath) -> Written:
    """Stream into `path` atomically, provenance in the Parquet metadata; tally as it goes."""
    schema = streamed.reader.schema
    meta = dict(schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(streamed.provenance, default=str).encode()
    schema = schema.with_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    tally = dict.fromkeys(("rows", *streamed.tally), 0)
    repeats = _Repeats(streamed.sorted_by)
    try:
        with tmp.open("wb") as f, pq.ParquetWriter(f, schema, **write_options(schema)) as writer:
            for batch in streamed.reader:
                writer.write_batch(batch.replace_schema_metadata(meta))
                tally["rows"] += batch.num_rows
                for column in streamed.tally:
                    tally[column] += int(pc.sum(batch[column]).as_py() or 0)
                repeats.add(batch)
        tmp.rename(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if streamed.sorted_by:
        tally["repeated_keys"] = repeats.count
    streamed.written = tally
    streamed.path = path
    return Written(path, tally["rows"], path.stat().st_size)
