"""Reading materialized assets from a notebook: `load(asset, version)` returns a DataFrame.

(`load("connectome", v)` returns the sparse matrix and its index.) Belongs here: read-only
access to the Parquet (and `.npz`) files the IO manager wrote, found through the
same layout (`storage.asset_path`) and the same settings (`Settings.from_env`). Not here:
Dagster (importing or calling this module never imports dagster, and needs no Dagster
instance), CAVE access, writing files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from numbers import Integral

import pandas as pd
from upath import UPath

from microns_assets.catalogue import EXTRA_PREFIX, LOADABLE, MATRIX_KEYS, RAW_PREFIX, extra
from microns_assets.emulator.catalog import DATASTACK as SYNTHETIC_DATASTACK
from microns_assets.settings import ENV_DATASTACK, Settings
from microns_assets.storage import Connectome, MissingDataError, asset_path, read_frame
from microns_assets.storage.matrix import SUFFIX as MATRIX_SUFFIX
from microns_assets.storage.matrix import read_connectome

#: What builds the files of a version.
MATERIALIZE_COMMAND = (
    "microns-assets materialize --version {version} --datastack {ds} --data-dir {root}"
)
_TABLE = re.compile(r"^[A-Za-z0-9_]+$")


def _key(asset: str) -> tuple[str, ...]:
    prefix, _, table = asset.partition("/")
    if prefix == EXTRA_PREFIX and _TABLE.match(table):
        return extra(table).key
    if asset not in LOADABLE:
        raise ValueError(
            f"unknown asset {asset!r}; valid names are "
            f"{', '.join(name for name in LOADABLE if '/' not in name)} "
            f"(raw roles also as {RAW_PREFIX}/<role>; extra tables as {EXTRA_PREFIX}/<table>)"
        )
    return LOADABLE[asset].key


def _version(version: int | str) -> int:
    if isinstance(version, Integral) and not isinstance(version, bool):
        return int(version)
    if isinstance(version, str) and version.strip().isdigit():
        return int(version)
    raise ValueError(
        f"version must be a CAVE materialization version number such as 1300, not {version!r}"
    )


def _materialized_elsewhere(data_dir: str, key: tuple[str, ...]) -> str:
    """Where else under `data_dir` this asset exists, as a hint for the error message."""
    try:
        suffix = MATRIX_SUFFIX if key in MATRIX_KEYS else ".parquet"
        found = sorted(UPath(data_dir).glob(f"*/v*/{'/'.join(key)}{suffix}"))
    except OSError:
        return ""
    places = [f"{p.parts[-len(key) - 2]} {p.parts[-len(key) - 1]}" for p in found]
    if not places:
        return ""
    return (
        f" It is materialized there for: {', '.join(places)} (pass datastack= and version=, or "
        f"set {ENV_DATASTACK})."
    )


def load(
    asset: str,
    version: int | str,
    *,
    datastack: str | None = None,
    data_dir: str | os.PathLike | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame | Connectome:
    """One materialized asset of one version, as written by the pipeline.

    Args:
        asset: a name of `catalogue.LOADABLE`: a derived asset (`units`, `synapses`, ...) or a
            raw role (`nucleus`, ...), also as its asset key `cave_raw/<role>`; or an extra
            CAVE table as `cave_extra/<table>`.
        version: CAVE materialization version, an int or a numeric string (`1300`, `"1300"`).
        datastack: default `MICRONS_DATASTACK` (see `microns_assets.settings`).
        data_dir: root of the Parquet files, a path or fsspec URL; default `MICRONS_DATA_DIR`.
        columns: read only these columns (Parquet reads them alone).

    Returns:
        The table with the dtypes CAVE sent; its provenance (datastack, version, CAVE tables,
        package versions, ...) is in `frame.attrs["provenance"]`. For `connectome`: a
        `Connectome` that unpacks as `matrix, index` (a `scipy.sparse.csr_matrix` of synapses
        per pair, rows pre and columns post, and the `pt_root_id` of each row and column), its
        provenance in `.provenance`; `columns` does not apply.

    Raises:
        ValueError: unknown asset, a version that is not a number, or unknown columns.
        MissingDataError: the asset is not materialized for that version (a
            `FileNotFoundError`; the message names the command that builds it).
        CorruptFileError: the file exists but cannot be read.
    """
    key = _key(asset)
    number = _version(version)
    settings = Settings.from_env()
    datastack = datastack or settings.datastack
    root = str(data_dir) if data_dir is not None else settings.data_dir
    matrix = key in MATRIX_KEYS
    if matrix and columns is not None:
        raise ValueError(f"{'/'.join(key)} is a matrix, not a table: it has no columns to pick")
    path = asset_path(
        root, datastack, number, list(key), suffix=MATRIX_SUFFIX if matrix else ".parquet"
    )
    try:
        if matrix:
            return read_connectome(path)
        if isinstance(columns, str):  # one column name, not its letters
            columns = [columns]
        return read_frame(path, columns=list(columns) if columns is not None else None)
    except MissingDataError:
        raise MissingDataError(
            f"{'/'.join(key)} of {datastack} version {number} is not materialized in {root} "
            f"({path} does not exist). Run `"
            f"{MATERIALIZE_COMMAND.format(version=number, ds=datastack, root=root)}"
            f"{' --server embedded' if datastack == SYNTHETIC_DATASTACK else ''}`."
            f"{_materialized_elsewhere(root, key)}"
        ) from None
