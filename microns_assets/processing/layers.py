"""Layer segmentation along cortical depth, as microns-combiner 0.4.0 does it, vectorized.

The depth range of the units is cut into equal bins of about `bin_um` (the seed's `linspace`
between the shallowest and deepest unit). Bins are L1 until the first bin holding at least
`l23_threshold` L2/3 cells, which is L2/3; every later bin takes the layer whose cell types are
most numerous in it (ties go to the shallower layer; no typed cell: `Unknown`). Runs of equal
bins become regions; `Unknown` and `WM` bins never start a region, they extend the one above.
Each unit then gets the layer of the region containing its depth.

One fix over the seed: the deepest unit sits exactly on the last bin's upper edge, which the seed
treats as open, so it was counted in no bin and got no layer. Here the last bin is closed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from microns_assets.catalogue import LAYER_SEGMENTS
from microns_assets.config.celltypes import LAYERS

SEED_L23_THRESHOLD = 300
#: Unit count from which the automatic threshold equals the seed's 300 (MICrONS-size data).
AUTO_THRESHOLD_FULL_AT = 50_000
UNKNOWN = "Unknown"
_SKIPPED = {UNKNOWN, "WM"}


def auto_l23_threshold(n_units: int) -> int:
    """The seed's 300 at MICrONS scale, scaled down with cell density on smaller data."""
    return max(1, round(SEED_L23_THRESHOLD * min(1.0, n_units / AUTO_THRESHOLD_FULL_AT)))


def bin_edges(depth: np.ndarray, bin_um: float) -> np.ndarray:
    """Edges of the depth bins: `ceil(range / bin_um)` equal bins from min to max depth."""
    lo, hi = float(depth.min()), float(depth.max())
    n = max(1, int(np.ceil((hi - lo) / bin_um)))
    return np.linspace(lo, hi, n + 1)


def _bin_of(depth: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(edges, depth, side="right") - 1, 0, len(edges) - 2)


def bin_layers(
    depth: np.ndarray,
    cell_type: np.ndarray,
    edges: np.ndarray,
    layer_map: dict[str, tuple[str, ...]],
    l23_threshold: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Per bin: cell counts per layer (bins x layers) and the bin's dominant layer."""
    n_bins = len(edges) - 1
    type_layer = {t: i for i, layer in enumerate(LAYERS) for t in layer_map[layer]}
    layer_idx = pd.Series(cell_type).map(type_layer).to_numpy(dtype=float, na_value=np.nan)
    typed = ~np.isnan(layer_idx)
    flat = _bin_of(depth[typed], edges) * len(LAYERS) + layer_idx[typed].astype(int)
    counts = np.bincount(flat, minlength=n_bins * len(LAYERS)).reshape(n_bins, len(LAYERS))

    labels = np.array(LAYERS, dtype=object)[counts.argmax(axis=1)]
    labels[counts.sum(axis=1) == 0] = UNKNOWN
    reached = np.flatnonzero(counts[:, LAYERS.index("L2/3")] >= l23_threshold)
    first = reached[0] if reached.size else n_bins
    labels[:first] = "L1"
    if first < n_bins:
        labels[first] = "L2/3"
    return counts, labels


def regions(edges: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Merge runs of bins into regions: `layer, region_index, y_start, y_end, height`."""
    kept = np.flatnonzero(~np.isin(labels, list(_SKIPPED)))
    if kept.size == 0:
        columns = LAYER_SEGMENTS.columns
        return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in columns.items()})
    starts = kept[np.r_[True, labels[kept[1:]] != labels[kept[:-1]]]]
    y_start = edges[starts]
    y_end = np.r_[edges[starts[1:]], edges[-1]]
    layer = pd.Series(labels[starts], dtype="string")
    return pd.DataFrame(
        {
            "layer": layer,
            "region_index": layer.groupby(layer).cumcount().astype("int64"),
            "y_start": y_start,
            "y_end": y_end,
            "height": y_end - y_start,
        }
    )


def label_units(depth: np.ndarray, segments: pd.DataFrame) -> pd.Series:
    """The layer of each depth: the region whose [start, end) holds it (last region closed)."""
    out = pd.Series(pd.NA, index=range(len(depth)), dtype="string")
    if len(segments) == 0:
        return out
    starts = segments["y_start"].to_numpy()
    region = np.searchsorted(starts, depth, side="right") - 1
    last_end = segments["y_end"].iloc[-1]
    inside = (region >= 0) & (depth <= last_end)
    out[inside] = segments["layer"].to_numpy()[region[inside]]
    return out


def segment(
    depth: np.ndarray,
    cell_type: np.ndarray,
    layer_map: dict[str, tuple[str, ...]],
    l23_threshold: int,
    bin_um: float = 10.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Layer regions of the given cells, and the per-bin table they were derived from."""
    edges = bin_edges(depth, bin_um)
    counts, labels = bin_layers(depth, cell_type, edges, layer_map, l23_threshold)
    bins = pd.DataFrame(counts, columns=[f"{layer}_cells" for layer in LAYERS])
    bins.insert(0, "y_start", edges[:-1])
    bins.insert(1, "y_end", edges[1:])
    bins["dominant_layer"] = labels
    return regions(edges, labels), bins
