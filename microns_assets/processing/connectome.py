"""A version's connectome from its synapse files: the matrix, what it leaves out, its picture.

`build_connectome` reads the pairs of a version's synapse files (the chunks the roll-up merges:
the matrix does not depend on the rows' order, so it needs no sorted file), sums them into a
sparse matrix over the units' cells (`analysis.connectivity`) and bins it for its picture
(`plots.connectome_grid`, drawn by `plots.connectome_grid_png`). It is pure work on files and
frames, so the roll-up asks the helper process (`processing.painter`) for it and sorts and
writes the merged file meanwhile on its own core. No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from upath import UPath

from microns_assets.analysis.connectivity import POST, PRE, pair_matrix, unit_index
from microns_assets.processing import plots
from microns_assets.storage import read_columns

if TYPE_CHECKING:  # imported where a matrix is built: loading definitions stays quick
    import scipy.sparse as sp


@dataclass(frozen=True)
class BuiltConnectome:
    """A connectome, the synapses it counts and leaves out, and its blocks for a picture."""

    matrix: sp.csr_matrix
    index: pd.Index
    inside: int  # synapses in the matrix
    outside: int  # synapses with a partner outside the cells, left out
    grid: plots.ConnectomeGrid


def build_connectome(paths: list[UPath], cells: pd.DataFrame, counted: bool) -> BuiltConnectome:
    """The connectome over `cells` (`analysis.unit_cells`) of the synapses in `paths`.

    `counted`: the files hold one row per pair with its `n_synapses` (aggregate mode), else one
    row per synapse.
    """
    synapses = read_columns(paths, [PRE, POST, *(["n_synapses"] if counted else [])])
    weights = synapses["n_synapses"] if counted else np.ones(len(synapses[PRE]), np.int64)
    index = unit_index(cells)
    matrix, left_out = pair_matrix(index, synapses[PRE], synapses[POST], weights)
    grid = plots.connectome_grid(matrix, cells)
    return BuiltConnectome(matrix, index, int(matrix.sum()), int(weights[left_out].sum()), grid)
