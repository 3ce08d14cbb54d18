"""Shaping downloaded synapse rows: the seed's aggregate pairs, or individual synapses in µm.

Aggregate (the seed's `drop_synapses_duplicates=True`): one row per (pre, post) pair with the
summed `size` and the number of synapses `n_synapses` (new). Individual: every synapse with its
`id`, `size` and centre position in µm (standard frame). Both sorted by (pre, post). No Dagster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from microns_assets.processing.coordinates import voxels_to_microns

PAIR = ["pre_pt_root_id", "post_pt_root_id"]
CENTRE = [f"ctr_pt_position_{a}" for a in "xyz"]


def aggregate(rows: pd.DataFrame, remove_autapses: bool = False) -> pd.DataFrame:
    """One row per (pre, post) pair: summed size and synapse count, sorted by the pair.

    Vectorized (one sort and a segmented sum), about twice as fast as a pandas groupby.
    """
    pre, post, size = (_int64(rows, c) for c in (*PAIR, "size"))
    if remove_autapses:
        keep = pre != post
        pre, post, size = pre[keep], post[keep], size[keep]
    order = np.lexsort((post, pre))
    pre, post, size = pre[order], post[order], size[order]
    new_pair = np.ones(pre.size, dtype=bool)
    new_pair[1:] = (pre[1:] != pre[:-1]) | (post[1:] != post[:-1])
    starts = np.flatnonzero(new_pair)
    return pd.DataFrame(
        {
            "pre_pt_root_id": pre[starts],
            "post_pt_root_id": post[starts],
            "size": np.add.reduceat(size, starts) if starts.size else size,
            "n_synapses": np.diff(np.append(starts, pre.size)).astype(np.int64),
        }
    )


def _int64(rows: pd.DataFrame, column: str) -> np.ndarray:
    """A column as int64; a missing value is an error (a synapse always has both and a size)."""
    values = rows[column]
    if values.isna().any():
        raise ValueError(f"{int(values.isna().sum())} synapse rows have no {column}")
    return values.to_numpy(dtype=np.int64)


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
