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

    Vectorized: each side's root ids become their rank among its distinct ids (a hashed
    factorization), so a pair is one int64 key and a single sort groups and orders the pairs
    (about 2x faster than sorting on the two id columns, 4x faster than a pandas groupby).
    """
    pre, post, size = (_int64(rows, c) for c in (*PAIR, "size"))
    if remove_autapses:
        keep = pre != post
        pre, post, size = pre[keep], post[keep], size[keep]
    pre_rank, pre_ids = pd.factorize(pre, sort=True)
    post_rank, post_ids = pd.factorize(post, sort=True)
    n_post = max(len(post_ids), 1)
    key = pre_rank.astype(np.int64) * n_post + post_rank  # ordered as (pre, post)
    order = np.argsort(key)
    key, size = key[order], size[order]
    new_pair = np.ones(key.size, dtype=bool)
    new_pair[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(new_pair)
    pair = key[starts]
    return pd.DataFrame(
        {
            "pre_pt_root_id": np.asarray(pre_ids, dtype=np.int64)[pair // n_post],
            "post_pt_root_id": np.asarray(post_ids, dtype=np.int64)[pair % n_post],
            "size": np.add.reduceat(size, starts) if starts.size else size,
            "n_synapses": np.diff(np.append(starts, key.size)).astype(np.int64),
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
