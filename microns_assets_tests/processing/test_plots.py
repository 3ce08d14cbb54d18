"""`processing.plots`: block sums, pictures being PNGs, the depth profile from its columns."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from microns_assets.processing.plots import (
    DEPTH_COLUMNS,
    block_sums,
    connectome_png,
    depth_profile_png,
)


def _brute_force(dense: np.ndarray, position: np.ndarray, bins: int) -> np.ndarray:
    n = len(position)
    grid = np.zeros((bins, bins))
    for i in range(n):
        for j in range(n):
            grid[position[i] * bins // n, position[j] * bins // n] += dense[i, j]
    return grid


@pytest.mark.parametrize("piece", [1, 7, 1 << 17])  # entries a run of rows takes, about
def test_block_sums_place_every_synapse_in_its_block(piece):
    rng = np.random.default_rng(7)
    for n, bins in ((50, 7), (40, 40), (33, 5)):
        dense = rng.integers(0, 4, (n, n)) * (rng.random((n, n)) < 0.2)
        dense[rng.choice(n, 5, replace=False)] = 0  # rows without synapses
        position = rng.permutation(n)
        for matrix in (sp.csr_matrix(dense), sp.coo_matrix(dense)):
            got = block_sums(matrix, position, bins, piece)
            assert got.shape == (bins, bins)
            np.testing.assert_array_equal(got, _brute_force(dense, position, bins))
            assert got.sum() == dense.sum() > 0


def test_connectome_png_is_a_png_and_survives_an_empty_matrix():
    cells = pd.DataFrame({"layer": ["L2/3", "L4", None], "cell_type": ["23P", None, "BC"]})
    matrix = sp.csr_matrix(np.array([[0, 2, 0], [1, 0, 0], [0, 0, 3]]))
    assert connectome_png(matrix, cells).startswith(b"\x89PNG\r\n\x1a\n")
    empty = cells.iloc[:0]
    assert connectome_png(sp.csr_matrix((0, 0)), empty).startswith(b"\x89PNG")


def test_log_colour_bars_show_decades_in_plain_numbers_and_no_minor_ticks():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm

    from microns_assets.processing.plots import _figure, _log_colorbar

    fig, ax = _figure((4, 4))
    values = np.array([[1.0, 30.0], [500.0, 2e6]])
    image = ax.imshow(values, norm=LogNorm(vmin=1, vmax=2e6))
    _log_colorbar(fig, image, ax, "synapses")
    FigureCanvasAgg(fig).draw()
    bar = fig.axes[-1].yaxis
    low, high = bar.get_view_interval()

    def shown(minor: bool) -> list[str]:
        ticks = zip(bar.get_ticklocs(minor=minor), bar.get_ticklabels(minor=minor), strict=True)
        return [label.get_text() for at, label in ticks if low <= at <= high and label.get_text()]

    major = shown(False)
    # decades, written out: no mathtext ("$10^{2}$"), no "1e+05"
    assert major == ["1", "10", "100", "1,000", "10,000", "100,000", "1,000,000"]
    assert list(bar.get_ticklocs(minor=True)) == []  # no minor ticks (each an artist)


def test_depth_profile_from_its_columns_alone_is_the_same_picture():
    rng = np.random.default_rng(3)
    n = 400
    units = pd.DataFrame(
        {
            "nucleus_id": np.repeat(np.arange(n // 2), 2),  # two units (scans) per nucleus
            "pt_root_id": rng.integers(1, 10**9, n),
            "pt_position_x": rng.random(n) * 500,
            "pt_position_y": np.repeat(rng.random(n // 2) * 800, 2),
            "classification_system": np.repeat(
                rng.choice(["excitatory_neuron", "inhibitory_neuron", "nonneuron"], n // 2), 2
            ),
            "cell_type": rng.choice(["23P", "BC", None], n),
            "layer": rng.choice(["L2/3", "L4"], n),
        }
    )
    segments = pd.DataFrame(
        {"layer": ["L1", "L2/3"], "y_start": [0.0, 100.0], "y_end": [100.0, 800.0]}
    )
    whole = depth_profile_png(units, segments)
    assert whole.startswith(b"\x89PNG\r\n\x1a\n")
    assert depth_profile_png(units[DEPTH_COLUMNS], segments) == whole
    # and the columns matter: another depth gives another picture
    moved = units.assign(pt_position_y=units["pt_position_y"] * 0.5)
    assert depth_profile_png(moved[DEPTH_COLUMNS], segments) != whole
