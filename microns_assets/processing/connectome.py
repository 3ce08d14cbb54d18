"""What the roll-up needs of a version's synapse files, read once: totals, classes, connectome.

`summarize_chunks` reads the pairs of a version's synapse files (the chunks the roll-up merges:
none of this depends on the rows' order, so it needs no sorted file) and gives their totals
(what the roll-up's check holds the merged file against), the synapses by pre/post cell class
(`by_class`) with its heatmap, and the connectome: a sparse matrix over the units' cells
(`analysis.connectivity`) and its picture (`plots.connectome_png`). It is pure work on files
and frames, so the roll-up asks the helper process (`processing.painter`) for it and sorts and
writes the merged file meanwhile on its own core. No Dagster imports.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from upath import UPath

from microns_assets.analysis.connectivity import POST, PRE, positions, positions_matrix, unit_index
from microns_assets.processing import plots
from microns_assets.storage import read_columns, write_frame

if TYPE_CHECKING:  # imported where a matrix is built: loading definitions stays quick
    import scipy.sparse as sp


@dataclass(frozen=True)
class BuiltConnectome:
    """A connectome, the synapses it counts and leaves out, and its picture."""

    matrix: sp.csr_matrix
    index: pd.Index
    inside: int  # synapses in the matrix
    outside: int  # synapses with a partner outside the cells, left out
    picture: bytes  # PNG: the connectome binned by layer and cell type (`plots.connectome_png`)


#: The class of a presynaptic partner that is not a unit (or is one without a class).
NOT_A_UNIT = "(not a unit)"


@dataclass(frozen=True)
class ChunkSummary:
    """A version's synapse files summed up (see the module docstring).

    `totals`: `rows`, `synapses` and `size` over all files (in aggregate mode a row is a pair);
    `by_class`: synapses by pre (rows) and post (columns) cell class, `class_png` its heatmap
    (None without synapses).
    """

    totals: dict[str, int]
    by_class: pd.DataFrame
    class_png: bytes | None
    connectome: BuiltConnectome


def summarize_chunks(paths: list[UPath], cells: pd.DataFrame, counted: bool) -> ChunkSummary:
    """Totals, synapses by class and the connectome over `cells` of the synapses in `paths`.

    `cells` are the units' cells (`analysis.unit_cells`) with `layer`, `cell_type` and
    `classification_system`; `counted`: the files hold one row per pair with its `n_synapses`
    (aggregate mode), else one row per synapse.
    """
    columns = read_columns(paths, [PRE, POST, "size", *(["n_synapses"] if counted else [])])
    rows = len(columns[PRE])
    weights = columns["n_synapses"] if counted else np.ones(rows, np.int64)
    totals = {"rows": rows, "synapses": int(weights.sum()), "size": int(columns["size"].sum())}
    index = unit_index(cells)
    pre, post = positions(index, columns[PRE]), positions(index, columns[POST])
    classes = by_class(cells["classification_system"], pre, post, weights)
    matrix, left_out = positions_matrix(len(index), pre, post, weights)
    connectome = BuiltConnectome(
        matrix, index, int(matrix.sum()), int(weights[left_out].sum()),
        plots.connectome_png(matrix, cells),
    )  # fmt: skip
    picture = plots.connectivity_png(classes) if classes.size else None
    return ChunkSummary(totals, classes, picture, connectome)


def by_class(
    classes: pd.Series, pre: np.ndarray, post: np.ndarray, weights: np.ndarray
) -> pd.DataFrame:
    """Synapses by presynaptic (rows) and postsynaptic (columns) cell class.

    `classes` holds each cell's class, in the order the rows' `pre` and `post` positions refer
    to (-1: not a cell). A presynaptic partner that is not a cell, or has no class, counts as
    `NOT_A_UNIT`; a row whose postsynaptic partner has no class is left out. Rows and columns
    are the classes met, sorted; `weights` are what each row adds (its synapses, at least 1).
    """
    codes, names = pd.factorize(np.asarray(classes, dtype=object))  # no class: -1
    k = len(names)
    codes = np.append(codes, -1)  # position -1 (not a cell) finds this
    pre_code, post_code = codes[pre], codes[post]
    pre_code[pre_code < 0] = k
    key = pre_code * k + post_code
    kept = post_code >= 0
    if not kept.all():
        key, weights = key[kept], weights[kept]
    sums = np.bincount(key, weights=weights, minlength=(k + 1) * k).reshape(k + 1, k)
    frame = pd.DataFrame(
        np.rint(sums).astype(np.int64),  # (float64: exact up to 2**53 synapses)
        index=pd.Index([*names, NOT_A_UNIT], name="pre_class"),
        columns=pd.Index(list(names), name="post_class"),
    )
    met = sums > 0  # (weights are positive: a pair met has synapses)
    frame = frame.loc[met.any(axis=1), met.any(axis=0)]
    frame = frame.groupby(level=0).sum()  # (a class named like NOT_A_UNIT joins it) sorted
    return frame.sort_index(axis=1)


def warm() -> None:
    """Do once what `summarize_chunks` does, on three made-up cells, for its first-use costs.

    Its first call in a process pays imports and first calls (at 30000, idle: the connectome
    0.72 s and the class heatmap 0.43 s the first time, 0.26 s and 0.13 s after), which the
    roll-up would wait for. `materialize` asks the helper for this while the chunks download.
    """
    cells = pd.DataFrame(
        {
            "pt_root_id": [1, 2, 3],
            "layer": ["L2/3", "L4", None],
            "cell_type": ["23P", None, "BC"],
            "classification_system": ["excitatory_neuron", "excitatory_neuron", None],
        }
    )
    pairs = pd.DataFrame({PRE: [1, 2, 9], POST: [2, 3, 1], "size": [5, 6, 7], "n_synapses": 1})
    with tempfile.TemporaryDirectory(prefix="microns-assets-warm-") as folder:
        path = UPath(folder) / "pairs.parquet"
        write_frame(pairs, path, {})
        summarize_chunks([path], cells, counted=True)
