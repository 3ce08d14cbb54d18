"""Loader for `celltypes.yaml`: the cell types that mark each cortical layer. No Dagster here."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from microns_assets.config.versions import ConfigError

LAYERS: tuple[str, ...] = ("L1", "L2/3", "L4", "L5", "L6", "WM")
DEFAULT_TABLE = "aibs_metamodel_celltypes_v661"


@cache
def load_layer_map(table: str = DEFAULT_TABLE) -> dict[str, tuple[str, ...]]:
    """Layer -> cell types for a cell-type table, in the fixed order of `LAYERS`."""
    raw = yaml.safe_load(
        resources.files("microns_assets.config").joinpath("celltypes.yaml").read_text()
    )
    if table not in raw:
        raise ConfigError(
            f"celltypes.yaml has no layer map for table {table!r}; it has {list(raw)}"
        )
    entry = raw[table]
    unknown = sorted(set(entry) - set(LAYERS))
    if unknown:
        raise ConfigError(f"celltypes.yaml ({table}): unknown layer(s) {unknown}; use {LAYERS}")
    return {layer: tuple(entry.get(layer) or ()) for layer in LAYERS}
