"""`build_units`: the units table and layer segments from a version's raw tables.

Reproduces microns-combiner 0.4.0's `process_nucleus_data` step by step (same joins, join types,
filling, filtering order and column order), vectorized. Deliberate fixes, each listed in
docs/differences.md:

- the deepest unit gets a layer (see `layers.py`);
- corrections also apply when a unit has several functional rows (`all`/`match` modes; the seed's
  `DataFrame.update` fails on the repeated index), and a nucleus corrected twice takes its
  latest correction (highest `id`);
- layer segmentation counts each unit once, even when `all`/`match` repeat it per scan;
- `best_only` breaks ties of `cc_abs` by table order (a stable sort), not by chance.

No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from microns_assets.config.celltypes import DEFAULT_TABLE, load_layer_map
from microns_assets.processing import inputs, layers
from microns_assets.processing.coordinates import voxels_to_microns
from microns_assets.processing.inputs import InputTableError

FUNCTIONAL_MODES = ("none", "match", "all", "best_only")
POSITIONS = ["pt_position_x", "pt_position_y", "pt_position_z"]
_FUNC_COLUMNS = ["session", "scan_idx", "unit_id", "pref_ori", "pref_dir", "gOSI", "gDSI", "cc_abs"]


def to_microns(frame: pd.DataFrame) -> pd.DataFrame:
    """Positions from voxels to µm in the MICrONS standard frame (pia at y = 0), in place."""
    voxels = frame[POSITIONS].to_numpy(dtype=float)
    frame[POSITIONS] = voxels_to_microns(voxels)
    return frame


def _join(units: pd.DataFrame, other: pd.DataFrame, columns: list[str], how: str) -> pd.DataFrame:
    """The seed's `_merge_columns` on nucleus id: `other[columns]` by `target_id`."""
    right = other[[*columns, "target_id"]]
    merged = units.merge(right, left_on="nucleus_id", right_on="target_id", how=how)
    return merged.drop(columns="target_id")


def _strings(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    for c in columns:
        frame[c] = frame[c].astype("string")
    return frame


def _functional(units: pd.DataFrame, table: pd.DataFrame, mode: str) -> pd.DataFrame:
    if mode == "best_only":
        table = table.sort_values("cc_abs", ascending=False, kind="stable")
        table = table.drop_duplicates(subset="target_id", keep="first")
        table = table[["target_id", "pt_root_id", *_FUNC_COLUMNS]]
    elif mode == "all":
        table = table[["target_id", "pt_root_id", *_FUNC_COLUMNS]]
        table = table.rename(columns={"unit_id": "functional_unit_id"})
    else:  # match: the coregistration table
        table = table[["target_id", "pt_root_id", "session", "scan_idx", "unit_id"]]
        table = table.rename(columns={"unit_id": "functional_unit_id"})
    table = table[table["pt_root_id"] != 0].drop(columns="pt_root_id").copy()
    table["tuning_type"] = "matched"
    merged = _join(units, table, [c for c in table.columns if c != "target_id"], "left")
    merged["tuning_type"] = merged["tuning_type"].fillna("not_matched")
    return merged


def _corrections(units: pd.DataFrame, corrections: pd.DataFrame) -> pd.DataFrame:
    order = corrections["id"] if "id" in corrections else np.arange(len(corrections))
    latest = corrections.assign(_order=order).sort_values("_order", kind="stable")
    latest = latest.drop_duplicates("target_id", keep="last").set_index("target_id")
    for column in ("classification_system", "cell_type"):
        fixed = units["nucleus_id"].map(latest[column])
        units[column] = fixed.where(fixed.notna(), units[column]).astype("string")
    return units


def build_units(
    tables: Mapping[str, pd.DataFrame | None],
    *,
    version: int,
    functional: str = "none",
    l23_threshold: int | None = None,
    bin_um: float = 10.0,
    cell_type_table: str = DEFAULT_TABLE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The units table and layer segments of one version.

    Args:
        tables: role -> DataFrame as caveclient returns it (reference tables joined).
            `nucleus`, `cell_types` and `brain_areas` are required; `proofreading`,
            `cell_type_corrections`, `coregistration` and `functional_properties` optional.
        version: the materialization version (named in errors).
        functional: `none`, `match` (coregistration ids), `all` (every scan) or `best_only`
            (the scan with the highest `cc_abs`).
        l23_threshold: L2/3 cells a depth bin needs to end L1; None scales the seed's 300
            with the number of units (`layers.auto_l23_threshold`).
        bin_um: depth bin size in µm.
        cell_type_table: which layer map of `celltypes.yaml` to use.

    Returns:
        `(units, layer_segments)`.
    """
    if functional not in FUNCTIONAL_MODES:
        raise ValueError(f"functional must be one of {FUNCTIONAL_MODES}, not {functional!r}")
    why = f" (version {version})"
    nucleus = inputs.table(tables, "nucleus", required=True, non_empty=True, why=why)
    cell_types = inputs.table(tables, "cell_types", required=True, non_empty=True, why=why)
    areas = inputs.table(tables, "brain_areas", required=True, non_empty=True, why=why)
    proofreading = inputs.table(tables, "proofreading", required=False)
    corrections = inputs.table(tables, "cell_type_corrections", required=False)
    func_role = {"match": "coregistration"}.get(functional, "functional_properties")
    func_table = None
    if functional != "none":
        func_table = inputs.table(
            tables, func_role, required=True, non_empty=True, why=f" for functional={functional!r}"
        )

    units = nucleus.rename(columns={"id": "nucleus_id"})[["nucleus_id", "pt_root_id", *POSITIONS]]
    units = _join(units, cell_types, ["classification_system", "cell_type"], "inner")
    units = _join(units, areas, ["tag"], "inner").rename(columns={"tag": "brain_area"})
    strategies = ["strategy_axon", "strategy_dendrite"]
    if proofreading is None:
        units[strategies] = "none"
    else:
        units = units.merge(proofreading[["pt_root_id", *strategies]], on="pt_root_id", how="left")
        units[strategies] = units[strategies].astype("string").fillna("none")
    units = to_microns(units)
    units = units[units["pt_root_id"].fillna(0) > 0]  # a missing root counts as 0
    units = units.drop_duplicates(subset="pt_root_id", keep=False)
    if func_table is None:
        units = units.assign(tuning_type="not_matched")
    else:
        units = _functional(units, func_table, functional)
    if corrections is not None:
        units = _corrections(units, corrections)
    units = _strings(
        units.reset_index(drop=True),
        ["classification_system", "cell_type", "brain_area", *strategies, "tuning_type"],
    )

    if units.empty:
        raise InputTableError(
            f"no units: of the nucleus table's {len(nucleus)} rows none has a cell type, a brain "
            "area and a root id of its own (the cell type and brain area tables' target_id must "
            "be the nucleus table's ids). Check that the versions file names this version's "
            "tables for those roles."
        )
    cells = units.drop_duplicates("nucleus_id")
    threshold = (
        l23_threshold if l23_threshold is not None else layers.auto_l23_threshold(len(cells))
    )
    segments, _ = layers.segment(
        cells["pt_position_y"].to_numpy(),
        cells["cell_type"].to_numpy(dtype=object, na_value=None),
        load_layer_map(cell_type_table),
        threshold,
        bin_um,
    )
    units["layer"] = layers.label_units(units["pt_position_y"].to_numpy(), segments).to_numpy()
    units.attrs["l23_threshold"] = threshold
    return units, segments
