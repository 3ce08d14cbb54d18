"""`processing.connectome`: a connectome from synapse files, the same as from their frame."""

import numpy as np
import pandas as pd
import pytest
from upath import UPath

from microns_assets.analysis.connectivity import connectivity_with_outside
from microns_assets.processing import plots
from microns_assets.processing.connectome import build_connectome
from microns_assets.processing.painter import Painter
from microns_assets.storage import write_frame

CELLS = pd.DataFrame(
    {
        "pt_root_id": [30, 10, 20, 40],
        "layer": ["L4", "L2/3", None, "L4"],
        "cell_type": ["23P", None, "BC", "23P"],
    }
)


def _chunks(tmp_path, counted: bool) -> tuple[list[UPath], pd.DataFrame]:
    """Three chunk files (one empty) of random pairs, some with a cell outside `CELLS`."""
    rng = np.random.default_rng(3)
    ids = np.array([10, 20, 30, 40, 99])  # 99 is no unit
    frames = []
    for rows in (300, 0, 200):
        frame = pd.DataFrame(
            {"pre_pt_root_id": rng.choice(ids, rows), "post_pt_root_id": rng.choice(ids, rows)}
        )
        if counted:
            frame = frame.drop_duplicates().assign(n_synapses=lambda f: rng.integers(1, 9, len(f)))
        frame = frame.astype("int64")
        frames.append(frame)
    paths = [UPath(tmp_path) / f"{i:02d}.parquet" for i in range(len(frames))]
    for path, frame in zip(paths, frames, strict=True):
        write_frame(frame, path, {})
    return paths, pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("counted", [True, False])
def test_the_connectome_of_the_files_is_that_of_their_rows(tmp_path, counted):
    paths, rows = _chunks(tmp_path, counted)
    built = build_connectome(paths, CELLS, counted)
    matrix, index, left_out = connectivity_with_outside(CELLS, rows, weight="n_synapses")
    assert (built.matrix != matrix).nnz == 0 and built.index.equals(index)
    weights = rows["n_synapses"] if counted else pd.Series(1, index=rows.index)
    outside = ~(rows["pre_pt_root_id"].isin(CELLS["pt_root_id"])) | ~(
        rows["post_pt_root_id"].isin(CELLS["pt_root_id"])
    )
    assert left_out.tolist() == outside.tolist()
    assert built.outside == weights[outside].sum() > 0
    assert built.inside == weights[~outside].sum() == matrix.sum()
    assert built.inside + built.outside == weights.sum()
    grid = plots.connectome_grid(matrix, CELLS)
    assert np.array_equal(built.grid.grid, grid.grid) and built.grid.labels == grid.labels


def test_the_helper_builds_the_same_connectome(tmp_path):
    paths, _ = _chunks(tmp_path, counted=True)
    here = build_connectome(paths, CELLS, True)
    painter = Painter()
    try:
        painter.warm()
        there = painter.draw("connectome.build_connectome", paths, CELLS, True)
        assert painter.pid() is not None  # it was the helper's
    finally:
        painter.close()
    assert (there.matrix != here.matrix).nnz == 0 and there.index.equals(here.index)
    assert (there.inside, there.outside) == (here.inside, here.outside)
    assert plots.connectome_grid_png(there.grid) == plots.connectome_grid_png(here.grid)
