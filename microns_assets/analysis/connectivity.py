"""Sequential ids and sparse connectivity matrices over the units of a version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # imported where a matrix is built: loading definitions stays quick
    import scipy.sparse as sp

PRE, POST = "pre_pt_root_id", "post_pt_root_id"
WEIGHTS = ("n_synapses", "size", "binary")


def unit_index(units: pd.DataFrame) -> pd.Index:
    """The units' root ids in their order; an error when one appears twice."""
    index = pd.Index(units["pt_root_id"].to_numpy(dtype=np.int64), name="pt_root_id")
    if not index.is_unique:
        twice = index[index.duplicated()].unique()
        raise ValueError(
            f"{len(twice)} pt_root_id(s) appear in more than one row of units, e.g. "
            f"{twice[:3].tolist()}: one row per cell is needed (e.g. "
            "units.drop_duplicates('pt_root_id'))"
        )
    return index


def positions(index: pd.Index, ids: pd.Series | np.ndarray) -> np.ndarray:
    """Each id's row in `index`, -1 for ids that are not units."""
    return index.get_indexer(np.asarray(ids, dtype=np.int64))


def remap_all_tables(units: pd.DataFrame, synapses: pd.DataFrame):
    """`units` and `synapses` with sequential ids: 0 .. len(units) - 1 in the order of `units`.

    As microns-combiner's `remap_all_tables`: the units get `id_remapped` (their row number)
    as their first column; the synapses' `pre_pt_root_id`/`post_pt_root_id` become `pre_id` and
    `post_id`. A synapse whose cell is not among `units` gets `<NA>` there (nullable `Int64`;
    the peer gives None). Vectorized: no dict over the ids. Returns `(units, synapses)`, new
    frames; the inputs are not modified.
    """
    index = unit_index(units)
    new_units = units.copy()
    new_units.insert(0, "id_remapped", np.arange(len(units), dtype=np.int64))
    new_synapses = synapses.rename(columns={PRE: "pre_id", POST: "post_id"})
    for column, source in (("pre_id", PRE), ("post_id", POST)):
        position = positions(index, synapses[source])
        remapped = pd.array(position, dtype="Int64")
        remapped[position < 0] = pd.NA
        new_synapses[column] = remapped
    return new_units, new_synapses


def connectivity_matrix(
    units: pd.DataFrame, synapses: pd.DataFrame, weight: str = "n_synapses"
) -> tuple[sp.csr_matrix, pd.Index]:
    """The connectivity among `units`: a sparse matrix, rows pre and columns post.

    Rows and columns follow the order of `units`; the returned index holds their
    `pt_root_id`s. `weight`: `n_synapses` (synapses per pair: the `n_synapses` column of an
    aggregated table, or one per row of an individual one), `size` (summed synapse size) or
    `binary` (1 for a connected pair). Synapses from or onto cells outside `units` are left out.
    """
    matrix, index, _ = connectivity_with_outside(units, synapses, weight)
    return matrix, index


def connectivity_with_outside(
    units: pd.DataFrame, synapses: pd.DataFrame, weight: str = "n_synapses"
) -> tuple[sp.csr_matrix, pd.Index, np.ndarray]:
    """`connectivity_matrix`, and which synapse rows it left out (a partner outside `units`).

    The same test as `synapses_outside`, from the positions the matrix is built with (one
    lookup of each side's ids instead of two).
    """
    if weight not in WEIGHTS:
        raise ValueError(f"unknown weight {weight!r}; use one of {list(WEIGHTS)}")
    if weight == "size":
        if "size" not in synapses.columns:
            raise ValueError(
                "weight='size' sums the `size` column, which these synapses lack (loaded with "
                "`columns=`?): load them with it, or use weight='n_synapses' or 'binary'"
            )
        values = synapses["size"].to_numpy(dtype=np.float64)
    elif weight == "n_synapses" and "n_synapses" in synapses.columns:
        values = synapses["n_synapses"].to_numpy(dtype=np.int64)
    else:
        values = np.ones(len(synapses), dtype=np.int64)
    index = unit_index(units)
    matrix, left_out = pair_matrix(index, synapses[PRE], synapses[POST], values)
    if weight == "binary":
        matrix.data[:] = 1
    return matrix, index, left_out


def pair_matrix(
    index: pd.Index, pre: np.ndarray, post: np.ndarray, values: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """`values` summed per (pre, post) pair among the cells of `index`, and the pairs left out.

    The arrays are one entry per synapse row: pre and post root ids and what each row adds
    (its `n_synapses`, say). Rows and columns follow `index`; the second array says which rows
    had a partner outside it.
    """
    return positions_matrix(len(index), positions(index, pre), positions(index, post), values)


def positions_matrix(
    n: int, pre: np.ndarray, post: np.ndarray, values: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """`pair_matrix` from the rows' `positions` among `n` cells (-1: not one of them)."""
    import scipy.sparse as sp

    inside = (pre >= 0) & (post >= 0)
    if not inside.all():  # (no copies when every synapse is among the units, as by default)
        values, pre, post = values[inside], pre[inside], post[inside]
    matrix = sp.coo_matrix((values, (pre, post)), shape=(n, n)).tocsr()  # duplicates summed
    return matrix, ~inside


def unit_cells(units: pd.DataFrame) -> pd.DataFrame:
    """The cells of `units` a connectome is over: one row per segment, in the order of `units`.

    Rows without a segment (`pt_root_id` missing or 0) are left out; of rows sharing a
    `pt_root_id` (a cell with several functional units) the first is kept.
    """
    roots = units["pt_root_id"]
    keep = roots.notna().to_numpy() & (roots.fillna(0).to_numpy() != 0)
    return units[keep].drop_duplicates("pt_root_id")


def synapses_outside(index: pd.Index, synapses: pd.DataFrame) -> np.ndarray:
    """Whether each synapse row has a partner that is not in `index` (left out of a matrix)."""
    inside = synapses[PRE].isin(index).to_numpy() & synapses[POST].isin(index).to_numpy()
    return ~inside
