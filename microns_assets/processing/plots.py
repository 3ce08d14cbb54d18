"""Pictures for the UI: depth profiles, connectivity by class, the connectome.

Cell density along depth with layer boundaries; synapses by cell class; the connectome ordered
by layer and cell type.

Returns PNG bytes. matplotlib is imported on first use, and only its object API (a `Figure`
drawn by the Agg canvas: no pyplot, no display, no global figure registry, nothing to close).
Margins are fixed for the labels we draw, rather than fitted per figure (`tight_layout` draws
every figure twice). No Dagster.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

CLASS_COLOURS = {
    "excitatory_neuron": "#c0392b",
    "inhibitory_neuron": "#2471a3",
    "nonneuron": "#7f8c8d",
}


def _figure(size: tuple[float, float], **margins: float):
    """A figure of `size` inches with one axes, its margins as fractions of the figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    fig.subplots_adjust(**margins)
    return fig, fig.add_subplot()


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def warm() -> None:
    """Import matplotlib and load its fonts: what a first picture spends before drawing."""
    fig, ax = _figure((1.0, 1.0))
    ax.set_title("warm")
    _png(fig)


def _log_colorbar(fig, image, ax, label: str, **options) -> None:
    """A colour bar for a log-scaled image, its decades labelled as plain numbers (1, 1,000).

    matplotlib's default log labels are mathtext (`$10^{2}$`), whose parser costs ~0.1 s per
    picture, and its minor ticks (eight a decade) are artists of their own: another ~0.1 s per
    picture, for marks nobody reads off a heatmap. So: decades only, written out.
    """
    from matplotlib.ticker import FuncFormatter, NullLocator

    bar = fig.colorbar(image, ax=ax, label=label, **options)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    bar.ax.yaxis.set_minor_locator(NullLocator())


#: The columns of the units table that `depth_profile_png` reads.
DEPTH_COLUMNS = ["nucleus_id", "pt_position_y", "classification_system"]


def depth_profile_png(units: pd.DataFrame, segments: pd.DataFrame, bin_um: float = 10.0) -> bytes:
    """Cells per depth bin for each class (depth downwards), layer boundaries drawn across.

    Reads only `DEPTH_COLUMNS` of `units` (a caller sending the table to another process sends
    just those: a tenth of the bytes).
    """
    cells = units.drop_duplicates("nucleus_id")
    depth = cells["pt_position_y"].to_numpy(float)
    edges = np.arange(np.floor(depth.min()), depth.max() + bin_um, bin_um)
    fig, ax = _figure((5.5, 6.5), left=0.14, right=0.97, bottom=0.08, top=0.94)
    for cls, colour in CLASS_COLOURS.items():
        counts, _ = np.histogram(depth[cells["classification_system"].to_numpy() == cls], edges)
        ax.plot(counts, (edges[:-1] + edges[1:]) / 2, color=colour, label=cls.replace("_", " "))
    for _, region in segments.iterrows():
        ax.axhline(region["y_start"], color="black", lw=0.6, ls="--")
        ax.text(ax.get_xlim()[1] * 0.97, (region["y_start"] + region["y_end"]) / 2,
                region["layer"], ha="right", va="center", fontsize=9)  # fmt: skip
    if len(segments):
        ax.axhline(segments["y_end"].iloc[-1], color="black", lw=0.6, ls="--")
    ax.invert_yaxis()
    ax.set_xlabel(f"cells per {bin_um:g} µm bin")
    ax.set_ylabel("depth below pia (µm)")
    ax.set_title(f"{len(cells):,} units by class along cortical depth")
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig)


def connectivity_png(matrix: pd.DataFrame) -> bytes:
    """Heatmap of synapse counts, presynaptic class (rows) by postsynaptic class (columns)."""
    from matplotlib.colors import LogNorm

    values = matrix.to_numpy(dtype=float)
    fig, ax = _figure((6.5, 4.5), left=0.27, right=0.86, bottom=0.22, top=0.92)
    image = ax.imshow(np.where(values > 0, values, np.nan), cmap="viridis",
                      norm=LogNorm(vmin=1, vmax=max(values.max(), 1)))  # fmt: skip
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{int(v):,}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(len(matrix.columns)), [c.replace("_", "\n") for c in matrix.columns])
    ax.set_yticks(range(len(matrix.index)), [c.replace("_", " ") for c in matrix.index])
    ax.set_xlabel("postsynaptic class")
    ax.set_ylabel("presynaptic class")
    ax.set_title("synapses by cell class")
    _log_colorbar(fig, image, ax, "synapses")
    return _png(fig)


def block_sums(matrix, position: np.ndarray, bins: int, piece: int = 1 << 17) -> np.ndarray:
    """A sparse square matrix summed into `bins` x `bins` blocks, its rows and columns placed.

    Row/column i goes to place `position[i]` (a permutation), and places are cut into `bins`
    equal runs. np.bincount: ~10x faster than np.add.at on millions of pairs. The entries are
    taken in runs of whole rows, about `piece` at a time: no copy of the whole matrix (on a
    virtual machine that hands free memory back to its host, new memory is what costs).
    """
    n = max(len(position), 1)
    csr = matrix.tocsr()  # (the matrix itself when it is one)
    block = np.asarray(position, dtype=np.int64) * bins // n
    sums = np.zeros(bins * bins)
    rows_per_piece = max(1, piece * csr.shape[0] // max(csr.nnz, 1))
    for first in range(0, csr.shape[0], rows_per_piece):
        bounds = csr.indptr[first : first + rows_per_piece + 1]
        low, high = int(bounds[0]), int(bounds[-1])
        if low == high:
            continue
        pre = np.repeat(block[first : first + len(bounds) - 1], np.diff(bounds))
        key = pre * bins + block[csr.indices[low:high]]
        sums += np.bincount(key, weights=csr.data[low:high], minlength=bins * bins)
    return sums.reshape(bins, bins)


@dataclass(frozen=True)
class ConnectomeGrid:
    """What the connectome picture shows: synapses summed in blocks, and where lines go.

    Small (at most `pixels` x `pixels`): what is drawn, whatever the matrix's size.
    """

    grid: np.ndarray  # summed synapses per block, pre (rows) x post (columns)
    layer_lines: np.ndarray  # block coordinates of layer boundaries
    kind_lines: np.ndarray  # ... and of cell-type boundaries within a layer
    ticks: np.ndarray  # block coordinates of the layer labels
    labels: list[str]
    units: int
    pairs: int


def connectome_grid(matrix, cells: pd.DataFrame, pixels: int = 400) -> ConnectomeGrid:
    """The connectome (a sparse matrix over `cells`' rows) binned for its picture.

    Cells are ordered by layer, then cell type (`(none)` for a missing one), and binned into at
    most `pixels` x `pixels` blocks of summed synapses.
    """
    layer = cells["layer"].astype("string").fillna("(none)").to_numpy(dtype=object)
    kind = cells["cell_type"].astype("string").fillna("(none)").to_numpy(dtype=object)
    order = np.lexsort((kind, layer))  # stable: by layer, then cell type
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    n = max(len(order), 1)
    bins = min(pixels, n)
    sorted_layer, sorted_kind = layer[order], kind[order]
    layer_starts = np.flatnonzero(sorted_layer[1:] != sorted_layer[:-1]) + 1
    kind_starts = np.flatnonzero(sorted_kind[1:] != sorted_kind[:-1]) + 1
    ticks, labels = np.empty(0), []  # an empty connectome: no layers to name
    if len(order):
        edges = np.concatenate(([0], layer_starts, [len(order)]))
        ticks = ((edges[:-1] + edges[1:]) / 2) * bins / n - 0.5
        labels = [str(sorted_layer[e]) for e in edges[:-1]]
    return ConnectomeGrid(
        grid=block_sums(matrix, position, bins),
        layer_lines=layer_starts * bins / n - 0.5,
        kind_lines=kind_starts * bins / n - 0.5,
        ticks=ticks,
        labels=labels,
        units=len(order),
        pairs=int(matrix.nnz),
    )


def connectome_grid_png(blocks: ConnectomeGrid) -> bytes:
    """The connectome picture of `connectome_grid`'s blocks, on a log colour scale.

    Solid lines separate layers, thin ones cell types within a layer.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LogNorm

    grid = blocks.grid
    fig, ax = _figure((6.5, 6.0), left=0.14, right=0.93, bottom=0.1, top=0.92)
    image = ax.imshow(np.where(grid > 0, grid, np.nan), cmap="magma_r", interpolation="nearest",
                      norm=LogNorm(vmin=1, vmax=max(grid.max(initial=0), 1)))  # fmt: skip
    for lines, colour, width in ((blocks.kind_lines, "grey", 0.3), (blocks.layer_lines, "k", 0.8)):
        # across the whole axes, as axhline/axvline, but one collection for all lines of a kind
        for transform, segment in (
            (ax.get_yaxis_transform(), lambda at: [(0, at), (1, at)]),
            (ax.get_xaxis_transform(), lambda at: [(at, 0), (at, 1)]),
        ):
            ax.add_collection(
                LineCollection([segment(at) for at in lines], colors=colour, linewidths=width,
                               transform=transform),
                autolim=False,
            )  # fmt: skip
    ax.set_xticks(blocks.ticks, blocks.labels, fontsize=8, rotation=90)
    ax.set_yticks(blocks.ticks, blocks.labels, fontsize=8)
    ax.set_xlabel("postsynaptic cell (by layer, then cell type)")
    ax.set_ylabel("presynaptic cell")
    ax.set_title(f"{blocks.units:,} units, {blocks.pairs:,} connected pairs", fontsize=10)
    _log_colorbar(fig, image, ax, "synapses per block", shrink=0.8)
    return _png(fig)


def connectome_png(matrix, cells: pd.DataFrame, pixels: int = 400) -> bytes:
    """The connectome (synapses per pair, a sparse matrix over `cells`' rows) as a picture."""
    return connectome_grid_png(connectome_grid(matrix, cells, pixels))
