"""Shaping downloaded synapse rows: the seed's aggregate pairs, or individual synapses in µm.

Aggregate (the seed's `drop_synapses_duplicates=True`): one row per (pre, post) pair with the
summed `size` and the number of synapses `n_synapses` (new). Individual: every synapse with its
`id`, `size` and centre position in µm (standard frame). Both sorted by (pre, post). No Dagster.
"""

from __future__ import annotations

import pandas as pd

from microns_assets.processing.coordinates import voxels_to_microns

PAIR = ["pre_pt_root_id", "post_pt_root_id"]
CENTRE = [f"ctr_pt_position_{a}" for a in "xyz"]


def aggregate(rows: pd.DataFrame, remove_autapses: bool = False) -> pd.DataFrame:
    """One row per (pre, post) pair: summed size and synapse count, sorted by the pair."""
    if remove_autapses:
        rows = rows[rows["pre_pt_root_id"] != rows["post_pt_root_id"]]
    pairs = rows.groupby(PAIR, sort=True).agg(size=("size", "sum"), n_synapses=("size", "size"))
    pairs = pairs.reset_index()
    return pairs.astype(
        {
            "pre_pt_root_id": "int64",
            "post_pt_root_id": "int64",
            "size": "int64",
            "n_synapses": "int64",
        }
    )


def individual(rows: pd.DataFrame, remove_autapses: bool = False) -> pd.DataFrame:
    """Every synapse: id, pair, size, centre position in µm; sorted by (pre, post, id)."""
    if remove_autapses:
        rows = rows[rows["pre_pt_root_id"] != rows["post_pt_root_id"]]
    out = rows[["id", *PAIR, "size"]].astype(
        {"id": "int64", "pre_pt_root_id": "int64", "post_pt_root_id": "int64", "size": "int64"}
    )
    voxels = rows[CENTRE].to_numpy(dtype=float)
    microns = voxels_to_microns(voxels)
    for axis, name in enumerate("xyz"):
        out[f"ctr_{name}_um"] = microns[:, axis]
    return out.sort_values([*PAIR, "id"], kind="stable").reset_index(drop=True)
