"""Pictures for the UI: cell density along depth with layer boundaries; connectivity by class.

Returns PNG bytes. matplotlib is imported on first use, and only its object API (a `Figure`
drawn by the Agg canvas: no pyplot, no display, no global figure registry, nothing to close).
Margins are fixed for the labels we draw, rather than fitted per figure (`tight_layout` draws
every figure twice). No Dagster.
"""

from __future__ import annotations

import io

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


def depth_profile_png(units: pd.DataFrame, segments: pd.DataFrame, bin_um: float = 10.0) -> bytes:
    """Cells per depth bin for each class (depth downwards), layer boundaries drawn across."""
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
    fig, ax = _figure((6.5, 4.5), left=0.27, right=0.98, bottom=0.22, top=0.92)
    image = ax.imshow(np.where(values > 0, values, np.nan), cmap="viridis",
                      norm=LogNorm(vmin=1, vmax=max(values.max(), 1)))  # fmt: skip
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{int(v):,}", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(len(matrix.columns)), [c.replace("_", "\n") for c in matrix.columns])
    ax.set_yticks(range(len(matrix.index)), [c.replace("_", " ") for c in matrix.index])
    ax.set_xlabel("postsynaptic class")
    ax.set_ylabel("presynaptic class")
    ax.set_title("synapses by cell class")
    fig.colorbar(image, ax=ax, label="synapses")
    return _png(fig)
