"""Reading and writing one asset partition as a zstd Parquet file with provenance.

Layout: `<data_dir>/<datastack>/v<version>/<asset path>.parquet`, chunked assets one folder of
`<chunk>.parquet` files. Writes go to a hidden temporary name and are renamed into place, so a
killed write never leaves a file that looks complete. Provenance (a JSON object) is stored in
the Parquet key-value metadata under `microns_assets` and comes back in `DataFrame.attrs`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

PROVENANCE_KEY = b"microns_assets"


class MissingDataError(FileNotFoundError):
    """The file of an asset partition does not exist (it was never materialized)."""


class CorruptFileError(ValueError):
    """A file exists but cannot be read as Parquet: truncated, overwritten or not ours."""


@dataclass(frozen=True)
class Written:
    """What a write produced."""

    path: UPath
    rows: int
    bytes: int


def asset_path(
    data_dir: str,
    datastack: str,
    version: int | str,
    asset: list[str],
    chunk: str | None = None,
    suffix: str = ".parquet",
) -> UPath:
    """Where an asset partition lives (`suffix`: `.npz` for a matrix, `storage.matrix`)."""
    base = UPath(data_dir) / datastack / f"v{version}"
    if chunk is None:
        *folders, name = asset
        return base.joinpath(*folders, f"{name}{suffix}")
    return base.joinpath(*asset, f"{chunk}{suffix}")


#: Compression of the files kept: small on disk (and object storage).
COMPACT = "zstd"
#: Compression of files written while a download waits and read once soon after (synapse
#: chunks): a chunk of 48,000 pairs is written in ~3.5 ms instead of ~6.2 ms, and is ~60 %
#: larger (0.66 MB instead of 0.40 MB).
FAST = "lz4"


def write_options(schema: pa.Schema, compression: str = COMPACT) -> dict:
    """How every Parquet file is written: `compression`, dictionaries for text columns only.

    Ids, counts and positions hardly repeat within a file: a dictionary of them costs time and
    bytes (a chunk of 233,000 pairs: 0.06 s and 2.4 MB with, 0.03 s and 2.0 MB without).
    Every page carries a CRC-32, checked on reading (`_open_parquet`): lz4 and zstd have no
    checksum of their own, so a bit flipped on disk would otherwise read back as other values.
    """
    text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_dictionary(f.type)]  # fmt: skip
    return {"compression": compression, "use_dictionary": text, "write_page_checksum": True}


def write_frame(
    frame: pd.DataFrame, path: UPath, provenance: dict, compression: str = COMPACT
) -> Written:
    """Write `frame` atomically to `path`, with `provenance` in the file's metadata."""
    view = frame.copy(deep=False)
    view.attrs = {}  # provenance goes under our own key, not pandas' `attributes`
    table = pa.Table.from_pandas(view, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(provenance, default=str).encode()
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with tmp.open("wb") as f:
            pq.write_table(table, f, **write_options(table.schema, compression))
        tmp.rename(path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return Written(path, table.num_rows, path.stat().st_size)


def is_local(path: UPath) -> bool:
    """Whether `path` is on the local file system (not object storage); a `pathlib.Path` is."""
    return getattr(path, "protocol", "") in ("", "file", "local")


def _local_file(path: UPath) -> str | None:
    """The local file system's name of `path`; None for object storage and the like."""
    if not is_local(path):
        return None
    return path.path if hasattr(path, "protocol") else os.fspath(path)


@contextmanager
def _open_parquet(path: UPath) -> Iterator[pq.ParquetFile]:
    """The file opened as Parquet; closed (its handle too) when the block ends.

    A local file is opened by Arrow itself: Arrow's reading threads then never call back into
    a Python file object, which can leave a thread behind at interpreter exit (apache/arrow
    #34314, #50482: an abort, "terminate called without an active exception", or a hang).
    """
    if not path.exists():
        raise MissingDataError(f"{path} does not exist")
    local = _local_file(path)
    with pa.OSFile(local, "rb") if local is not None else path.open("rb") as handle:
        try:
            file = pq.ParquetFile(handle, page_checksum_verification=True)
        except (pa.ArrowInvalid, OSError) as err:
            raise CorruptFileError(
                f"{path} is not a readable Parquet file ({err}). Delete it and materialize that "
                "partition again."
            ) from err
        with file:
            yield file


def read_head(path: UPath, rows: int) -> pd.DataFrame:
    """The first `rows` rows of a file that has rows (of its first row group): a preview."""
    with _open_parquet(path) as file:
        return file.read_row_group(0).slice(0, rows).to_pandas()


def _provenance(path: UPath, raw: bytes | None) -> dict:
    """The provenance JSON `raw` read from `path`'s metadata; damaged JSON is a damaged file."""
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError as err:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        raise CorruptFileError(
            f"{path} is damaged (its provenance does not read back: {err}). Delete it and "
            "materialize that partition again."
        ) from err


def read_provenance(path: UPath) -> dict:
    """The provenance stored in a file (empty if the file carries none)."""
    with _open_parquet(path) as file:
        raw = (file.schema_arrow.metadata or {}).get(PROVENANCE_KEY)
    return _provenance(path, raw)


def _read_table(path: UPath, columns: list[str] | None, use_threads: bool = True) -> pa.Table:
    """The file's `columns` (all if None) as Arrow; a column it lacks or damage is an error."""
    with _open_parquet(path) as file:
        if columns is not None:
            names = file.schema_arrow.names
            unknown = [c for c in columns if c not in names]
            if unknown:
                raise ValueError(f"{path} has no column(s) {unknown}; its columns are {names}")
        try:
            return file.read(columns=columns, use_threads=use_threads)
        except (pa.ArrowInvalid, OSError) as err:
            raise CorruptFileError(
                f"{path} is damaged ({err}). Delete it and materialize that partition again."
            ) from err


def read_frame(path: UPath, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a file back with its dtypes; provenance goes to `frame.attrs["provenance"]`.

    Raises:
        ValueError: `columns` names a column the file does not have (Parquet would silently
            leave it out).
    """
    table = _read_table(path, columns)
    try:
        frame = _to_pandas(table)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:  # pandas' metadata damaged
        raise CorruptFileError(
            f"{path} is damaged ({type(err).__name__}: {err}). Delete it and materialize that "
            "partition again."
        ) from err
    frame.attrs["provenance"] = _provenance(path, (table.schema.metadata or {}).get(PROVENANCE_KEY))
    return frame


def columns_by_file(paths: list[UPath], columns: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """The named columns of each of `paths` in turn, as numpy arrays (one dict per file).

    For numeric columns without missing values (e.g. a version's chunk files' cell ids): no
    frame, no provenance, no copy of a file of one row group; and one file's columns at a time,
    so that a summary of many files works on memory it has just let go of
    (`processing.connectome`), not on a fresh copy of every file at once.

    Raises:
        ValueError: a file lacks a column, or a column has missing values.
    """
    for path in paths:
        table = _read_table(path, columns, use_threads=False)
        part = {}
        for column in columns:
            values = table.column(column)
            if values.null_count:
                raise ValueError(f"{path}: column {column} has {values.null_count} missing values")
            part[column] = values.to_numpy()
        yield part


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """The table as a frame; its row groups joined first, so numeric columns are not copied again.

    A file's row groups arrive as separate chunks, which `to_pandas` would copy into one block
    (7.45M pairs: 0.27 s; joined first, 0.03 s). A column too large to join (a string column
    over 2 GB) is converted chunk by chunk, as before.
    """
    with suppress(pa.ArrowInvalid):
        table = table.combine_chunks()
    return table.to_pandas(split_blocks=True)
