"""Parquet files (and the connectome's `.npz`) with provenance, on any `universal_pathlib` path.

No Dagster imports.
"""

from microns_assets.storage.matrix import Connectome, read_connectome, write_connectome
from microns_assets.storage.parquet import (
    CorruptFileError,
    MissingDataError,
    asset_path,
    columns_by_file,
    is_local,
    read_frame,
    read_head,
    read_provenance,
    write_frame,
)

__all__ = [
    "Connectome",
    "CorruptFileError",
    "MissingDataError",
    "asset_path",
    "columns_by_file",
    "is_local",
    "read_connectome",
    "read_frame",
    "read_head",
    "read_provenance",
    "write_connectome",
    "write_frame",
]
