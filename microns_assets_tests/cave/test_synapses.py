"""Synapse download under a tiny row cap and faults equals the emulator's ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microns_assets.cave.synapses import download_synapses
from microns_assets.emulator import Faults
from microns_assets.processing.chunks import chunk_of
from microns_assets.processing.synapses import aggregate, individual
from microns_assets_tests.conftest import connect

SYN = "synapses_pni_2"


@pytest.fixture(scope="module")
def cells(session_emulator):
    """Root ids of the typed nuclei of v1300 (a stand-in for the units table)."""
    nuc = session_emulator.ground_truth(1300, "nucleus_detection_v0")
    typed = session_emulator.ground_truth(1300, "aibs_metamodel_celltypes_v661")["target_id"]
    roots = nuc.loc[nuc["id"].isin(typed), "pt_root_id"].to_numpy(np.int64)
    roots = roots[roots > 0]
    return np.unique(roots[pd.Series(roots).duplicated(keep=False).to_numpy() == False])  # noqa: E712


def truth(emulator, post: np.ndarray, pre: np.ndarray) -> pd.DataFrame:
    syn = emulator.ground_truth(1300, SYN)
    return syn[syn["post_pt_root_id"].isin(post) & syn["pre_pt_root_id"].isin(pre)]


@pytest.mark.parametrize("send_pre", [True, False])
def test_chunk_under_a_tiny_cap_equals_ground_truth(emulator, cells, send_pre):
    emulator.server.row_cap = 100  # single post cells exceed it: ids must be split too
    post = cells[chunk_of(cells) == 3]
    rows, stats = download_synapses(
        connect(emulator, row_cap=100), 1300, SYN, post, cells, individual=True,
        send_pre=send_pre, batch_size=40,
    )  # fmt: skip
    expected = truth(emulator, post, cells)
    assert len(expected) > 1_000  # far above the cap
    assert sorted(rows["id"]) == sorted(expected["id"])
    assert stats.capped > 0 and stats.splits_by_id > 0
    assert stats.batches == int(np.ceil(post.size / 40))


def test_aggregate_and_individual_shapes_match_ground_truth(emulator, cells):
    emulator.server.row_cap = 1_000
    emulator.server.faults = Faults(fail_rate=0.2, drop_rate=0.2, seed=9)
    post = cells[chunk_of(cells) == 5]
    pre = cells[::3]
    rows, _ = download_synapses(
        connect(emulator, row_cap=1_000), 1300, SYN, post, pre, individual=True
    )
    expected = truth(emulator, post, pre)
    pairs = aggregate(rows)
    want = expected.groupby(["pre_pt_root_id", "post_pt_root_id"])["size"].agg(["sum", "count"])
    assert len(pairs) == len(want)
    assert pairs["size"].tolist() == want["sum"].tolist()
    assert pairs["n_synapses"].tolist() == want["count"].tolist()
    assert pairs["n_synapses"].sum() == len(expected)
    one_by_one = individual(rows)
    assert one_by_one["id"].is_unique and len(one_by_one) == len(expected)
    assert one_by_one["ctr_y_um"].between(-100, 1_100).all()  # µm below pia, not voxels
    assert emulator.server.stats.faults > 0


def test_autapses_can_be_removed():
    rows = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "pre_pt_root_id": [5, 5, 6],
            "post_pt_root_id": [5, 7, 7],
            "size": [10, 20, 30],
        }
    )
    assert len(aggregate(rows)) == 3
    kept = aggregate(rows, remove_autapses=True)
    assert kept[["pre_pt_root_id", "post_pt_root_id"]].values.tolist() == [[5, 7], [6, 7]]
    assert kept["size"].tolist() == [20, 30]


def test_no_post_cells_gives_an_empty_typed_frame(emulator, cells):
    rows, stats = download_synapses(
        connect(emulator), 1300, SYN, np.array([], dtype=np.int64), cells, individual=False
    )
    assert len(rows) == 0 and stats.queries == 0
    assert list(aggregate(rows).columns) == [
        "pre_pt_root_id",
        "post_pt_root_id",
        "size",
        "n_synapses",
    ]
