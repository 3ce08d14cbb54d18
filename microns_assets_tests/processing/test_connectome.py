"""`processing.connectome`: totals, classes and connectome of synapse files, as of their frame."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from upath import UPath

from microns_assets.analysis.connectivity import connectivity_with_outside
from microns_assets.processing import plots
from microns_assets.processing.connectome import NOT_A_UNIT, summarize_chunks
from microns_assets.processing.painter import Painter
from microns_assets.storage import write_frame

CELLS = pd.DataFrame(
    {
        "pt_root_id": [30, 10, 20, 40],
        "layer": ["L4", "L2/3", None, "L4"],
        "cell_type": ["23P", None, "BC", "23P"],
        "classification_system": ["excitatory", "excitatory", "inhibitory", None],
    }
)


def _chunks(
    tmp_path, counted: bool, sizes: tuple[int, ...] = (300, 0, 200)
) -> tuple[list[UPath], pd.DataFrame]:
    """Chunk files (`sizes` rows; one empty) of random pairs, some with a cell outside `CELLS`."""
    rng = np.random.default_rng(3)
    ids = np.array([10, 20, 30, 40, 99])  # 99 is no unit
    frames = []
    for rows in sizes:
        frame = pd.DataFrame(
            {"pre_pt_root_id": rng.choice(ids, rows), "post_pt_root_id": rng.choice(ids, rows)}
        )
        frame["size"] = rng.integers(1, 900, rows)
        if counted:
            frame = frame.drop_duplicates(["pre_pt_root_id", "post_pt_root_id"])
            frame = frame.assign(n_synapses=lambda f: rng.integers(1, 9, len(f)))
        frame = frame.astype("int64")
        frames.append(frame)
    paths = [UPath(tmp_path) / f"{i:02d}.parquet" for i in range(len(frames))]
    for path, frame in zip(paths, frames, strict=True):
        write_frame(frame, path, {})
    return paths, pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("counted", [True, False])
@pytest.mark.parametrize("sizes", [(300, 0, 200), (3, 0, 400, 30)])  # the second: room grows
def test_the_connectome_of_the_files_is_that_of_their_rows(tmp_path, counted, sizes):
    paths, rows = _chunks(tmp_path, counted, sizes)
    summary = summarize_chunks(paths, CELLS, counted)
    built = summary.connectome
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
    assert built.picture == plots.connectome_png(matrix, CELLS)
    assert summary.totals == {
        "rows": len(rows), "synapses": weights.sum(), "size": rows["size"].sum()
    }  # fmt: skip


@pytest.mark.parametrize("counted", [True, False])
def test_synapses_by_class_are_those_of_a_join_on_the_units(tmp_path, counted):
    """As SQL would count them: pre cells outside the units (or without a class) apart."""
    paths, rows = _chunks(tmp_path, counted)
    sql = duckdb.connect()
    sql.register("rows", rows)
    sql.register("cells", CELLS.astype({"classification_system": "object"}))
    weight = "n_synapses" if counted else "1"
    expected = (
        sql.sql(
            f"""
            SELECT coalesce(pre.classification_system, '{NOT_A_UNIT}') AS pre_class,
                   post.classification_system AS post_class, sum({weight}) AS synapses
            FROM rows AS s
            LEFT JOIN cells AS pre ON s.pre_pt_root_id = pre.pt_root_id
            JOIN cells AS post ON s.post_pt_root_id = post.pt_root_id
            WHERE post.classification_system IS NOT NULL
            GROUP BY ALL
            """
        )
        .df()
        .pivot_table(index="pre_class", columns="post_class", values="synapses", fill_value=0)
        .astype("int64")
    )
    got = summarize_chunks(paths, CELLS, counted).by_class
    assert NOT_A_UNIT in got.index and "inhibitory" in got.columns  # (the data has all kinds)
    pd.testing.assert_frame_equal(got, expected, check_names=False)
    assert got.to_numpy().sum() == expected.to_numpy().sum() > 0


def test_the_helper_builds_the_same_summary(tmp_path):
    paths, _ = _chunks(tmp_path, counted=True)
    summary = summarize_chunks(paths, CELLS, True)
    painter = Painter()
    try:
        painter.warm()
        theirs = painter.draw("connectome.summarize_chunks", paths, CELLS, True)
        assert painter.pid() is not None  # it was the helper's
    finally:
        painter.close()
    assert theirs.totals == summary.totals
    pd.testing.assert_frame_equal(theirs.by_class, summary.by_class)
    assert theirs.class_png == summary.class_png == plots.connectivity_png(summary.by_class)
    here, there = summary.connectome, theirs.connectome
    assert (there.matrix != here.matrix).nnz == 0 and there.index.equals(here.index)
    assert (there.inside, there.outside) == (here.inside, here.outside)
    assert there.picture == here.picture
