"""Parquet files with provenance, on any `universal_pathlib` path. No Dagster imports."""

from microns_assets.storage.parquet import (
    CorruptFileError,
    MissingDataError,
    asset_path,
    read_frame,
    read_provenance,
    write_frame,
)

__all__ = [
    "CorruptFileError",
    "MissingDataError",
    "asset_path",
    "read_frame",
    "read_provenance",
    "write_frame",
]
