"""Layer segmentation on hand-placed cells: bins, the L1 rule, dominance, regions, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microns_assets.config.celltypes import load_layer_map
from microns_assets.processing import layers

MAP = load_layer_map()


def seg(cells: list[tuple[float, str]], threshold: int):
    depth = np.array([d for d, _ in cells], dtype=float)
    types = np.array([t for _, t in cells], dtype=object)
    return layers.segment(depth, types, MAP, threshold), depth


def test_bins_l1_rule_dominance_unknown_and_the_deepest_unit():
    cells = [
        (0.0, "NGC"), (5.0, "MC"),                      # bin 0-10: before L2/3 -> L1
        (11.0, "23P"), (12.0, "23P"), (19.0, "23P"),    # bin 10-20: 3 >= threshold -> L2/3
        (21.0, "4P"), (25.0, "4P"), (29.0, "23P"),      # bin 20-30: L4 dominant
        (35.0, "astrocyte"),                            # bin 30-40: no layer type -> Unknown
        (45.0, "oligo"), (50.0, "6P-IT"), (48.0, "6P-CT"),  # bin 40-50: L6 2 vs WM 1
    ]  # fmt: skip
    (regions, bins), depth = seg(cells, threshold=3)
    assert bins["y_start"].tolist() == [0, 10, 20, 30, 40]
    assert bins["dominant_layer"].tolist() == ["L1", "L2/3", "L4", "Unknown", "L6"]
    assert bins["L2/3_cells"].tolist() == [0, 3, 1, 0, 0]
    # the unit at exactly the deepest depth (50) is counted in the last bin
    assert bins["L6_cells"].tolist() == [0, 0, 0, 0, 2]
    assert regions["layer"].tolist() == ["L1", "L2/3", "L4", "L6"]
    assert regions["y_start"].tolist() == [0, 10, 20, 40]
    assert regions["y_end"].tolist() == [10, 20, 40, 50]  # Unknown bin extends L4
    assert regions["height"].tolist() == [10, 10, 20, 10]
    assert regions["region_index"].tolist() == [0, 0, 0, 0]
    labels = layers.label_units(depth, regions)
    assert labels.tolist() == [
        "L1", "L1", "L2/3", "L2/3", "L2/3", "L4", "L4", "L4", "L4", "L6", "L6", "L6",
    ]  # fmt: skip


def test_bins_are_the_seeds_linspace_not_exact_10um():
    edges = layers.bin_edges(np.array([3.0, 28.0]), 10.0)
    assert np.allclose(edges, [3.0, 3 + 25 / 3, 3 + 50 / 3, 28.0])


def test_l1_lasts_until_the_threshold_is_reached():
    cells = [(0.0, "23P"), (15.0, "23P"), (16.0, "23P"), (25.0, "4P"), (26.0, "4P"), (30.0, "23P")]
    (regions, bins), _ = seg(cells, threshold=2)
    assert bins["dominant_layer"].tolist() == ["L1", "L2/3", "L4"]
    (regions, bins), _ = seg(cells, threshold=5)  # never reached: everything is L1
    assert bins["dominant_layer"].tolist() == ["L1", "L1", "L1"]
    assert regions[["layer", "y_start", "y_end"]].values.tolist() == [["L1", 0.0, 30.0]]


def test_ties_go_to_the_shallower_layer_and_repeated_layers_get_region_indices():
    cells = [
        (0.0, "23P"),                      # bin 0: L2/3 at threshold 1
        (15.0, "4P"), (16.0, "5P-IT"),     # bin 1: tie L4/L5 -> L4
        (25.0, "5P-IT"),                   # bin 2: L5
        (35.0, "4P"), (40.0, "4P"),        # bin 3: L4 again -> region_index 1
    ]  # fmt: skip
    (regions, bins), _ = seg(cells, threshold=1)
    assert bins["dominant_layer"].tolist() == ["L2/3", "L4", "L5", "L4"]
    assert regions["layer"].tolist() == ["L2/3", "L4", "L5", "L4"]
    assert regions["region_index"].tolist() == [0, 0, 0, 1]


def test_wm_bins_extend_the_region_above_them():
    cells = [(0.0, "23P"), (15.0, "6P-IT"), (25.0, "oligo"), (27.0, "OPC"), (35.0, "6P-CT")]
    (regions, bins), _ = seg(cells, threshold=1)
    assert bins["dominant_layer"].tolist() == ["L2/3", "L6", "WM", "L6"]
    assert regions[["layer", "y_start", "y_end"]].values.tolist() == [
        ["L2/3", 0.0, 8.75],
        ["L6", 8.75, 35.0],
    ]


@pytest.mark.parametrize(
    ("units", "expected"), [(0, 1), (1_700, 10), (50_000, 300), (144_000, 300)]
)
def test_automatic_threshold(units, expected):
    assert layers.auto_l23_threshold(units) == expected


def test_no_regions_labels_nothing():
    empty = layers.regions(np.array([0.0, 10.0]), np.array(["Unknown"], dtype=object))
    assert len(empty) == 0
    assert layers.label_units(np.array([1.0]), empty).isna().all()
    assert isinstance(empty["layer"].dtype, pd.StringDtype)
