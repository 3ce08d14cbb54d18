"""What the roll-up needs of a version's synapse files, read once: totals, classes, connectome.

`summarize_chunks` reads the pairs of a version's synapse files, one after the other (the
chunks the roll-up merges: none of this depends on the rows' order, so it needs no sorted
file), and gives their totals (what the roll-up's check holds the merged file against), the
synapses by pre/post cell class (`_ClassSums`) with its heatmap, and the connectome: a sparse
matrix over the units' cells (`analysis.connectivity`) and its picture
(`plots.connectome_png`). It is pure work on files and frames, so the roll-up asks the helper
process (`processing.painter`) for it and sorts and writes the merged file meanwhile on its
own core. No Dagster imports.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from upath import UPath

from microns_assets.analysis.connectivity import (
    POST,
    PRE,
    positions,
    positions_matrix,
    unit_index,
)
from microns_assets.processing import plots
from microns_assets.storage import columns_by_file, write_frame

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

    One file at a time: only the matrix's entries are kept for all files (`_Entries`), so the
    work reuses the memory each file lets go of. (On a virtual machine that hands free memory
    back to its host, each new megabyte a process touches costs ~6 ms: a copy of every file at
    once, and of each step over it, made the summary at 30000 take 1.7-2.1 s in a fresh helper;
    read one file at a time, 0.9-1.1 s.)
    """
    columns = [PRE, POST, "size", *(["n_synapses"] if counted else [])]
    index = unit_index(cells)
    classes = _ClassSums(cells["classification_system"])
    entries = _Entries(len(paths), np.int32 if len(index) < 2**31 else np.int64)
    totals = {"rows": 0, "synapses": 0, "size": 0}
    outside = 0
    for part in columns_by_file(paths, columns):
        rows = len(part[PRE])
        weights = part["n_synapses"] if counted else np.ones(rows, np.int64)
        totals["rows"] += rows
        totals["synapses"] += int(weights.sum())
        totals["size"] += int(part["size"].sum())
        pre, post = positions(index, part[PRE]), positions(index, part[POST])
        classes.add(pre, post, weights)
        inside = (pre >= 0) & (post >= 0)
        outside += int(weights[~inside].sum())
        entries.add(pre[inside], post[inside], weights[inside], rows)
    matrix, _ = positions_matrix(len(index), *entries.filled())  # (every entry is inside)
    connectome = BuiltConnectome(
        matrix, index, int(matrix.sum()), outside, plots.connectome_png(matrix, cells)
    )
    frame = classes.frame()
    picture = plots.connectivity_png(frame) if frame.size else None
    return ChunkSummary(totals, frame, picture, connectome)


class _Entries:
    """The matrix's entries from the files so far (positions and values), in arrays that grow.

    Positions are of the `position` type (int32 unless the cells are too many for it).

    Room is taken for twice the rows the files so far suggest for all `files`: pages never
    written cost nothing, and a file much larger than those before makes the arrays grow.
    """

    def __init__(self, files: int, position: type[np.integer]) -> None:
        self.files, self.seen, self.rows, self.used = files, 0, 0, 0
        self.arrays = (np.empty(0, position), np.empty(0, position), np.empty(0, np.int64))

    def add(self, pre: np.ndarray, post: np.ndarray, values: np.ndarray, rows: int) -> None:
        """A file's entries inside the matrix (`rows`: all the file's rows, for the estimate)."""
        self.seen, self.rows = self.seen + 1, self.rows + rows
        end = self.used + len(pre)
        if end > len(self.arrays[0]):
            room = max(end, 2 * self.rows * self.files // self.seen)
            grown = tuple(np.empty(room, a.dtype) for a in self.arrays)
            for old, new in zip(self.arrays, grown, strict=True):
                new[: self.used] = old[: self.used]
            self.arrays = grown
        for array, part in zip(self.arrays, (pre, post, values), strict=True):
            array[self.used : end] = part
        self.used = end

    def filled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pre positions, post positions and values of every entry added."""
        return tuple(a[: self.used] for a in self.arrays)


class _ClassSums:
    """Synapses by presynaptic (rows) and postsynaptic (columns) cell class, summed by parts.

    `classes` holds each cell's class, in the order the rows' `pre` and `post` positions refer
    to (-1: not a cell). A presynaptic partner that is not a cell, or has no class, counts as
    `NOT_A_UNIT`; a row whose postsynaptic partner has no class is left out. `frame()`: rows
    and columns are the classes met, sorted; `weights` are what each row adds (its synapses,
    at least 1).
    """

    def __init__(self, classes: pd.Series) -> None:
        codes, self.names = pd.factorize(np.asarray(classes, dtype=object))  # no class: -1
        self.codes = np.append(codes, -1)  # position -1 (not a cell) finds this
        k = len(self.names)
        self.sums = np.zeros((k + 1) * k)  # (float64: exact up to 2**53 synapses)

    def add(self, pre: np.ndarray, post: np.ndarray, weights: np.ndarray) -> None:
        k = len(self.names)
        pre_code, post_code = self.codes[pre], self.codes[post]
        pre_code[pre_code < 0] = k
        key = pre_code * k + post_code
        kept = post_code >= 0
        if not kept.all():
            key, weights = key[kept], weights[kept]
        self.sums += np.bincount(key, weights=weights, minlength=self.sums.size)

    def frame(self) -> pd.DataFrame:
        k = len(self.names)
        sums = self.sums.reshape(k + 1, k)
        frame = pd.DataFrame(
            np.rint(sums).astype(np.int64),
            index=pd.Index([*self.names, NOT_A_UNIT], name="pre_class"),
            columns=pd.Index(list(self.names), name="post_class"),
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
