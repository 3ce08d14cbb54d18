"""Synapse download under a tiny row cap and faults equals the emulator's ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microns_assets.cave.synapses import (
    AGGREGATE_COLUMNS,
    MAX_POST_BATCH,
    DownloadStats,
    _Sizer,
    _SubBatches,
    download_chunks,
    download_synapses,
)
from microns_assets.emulator import Faults
from microns_assets.processing.chunks import chunk_of
from microns_assets.processing.synapses import aggregate, individual
from microns_assets_tests.conftest import connect

SYN = "synapses_pni_2"
LOSSY_SEED = 8


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


def test_the_sizer_asks_for_as_many_cells_as_fill_three_quarters_of_the_cap():
    sizer = _Sizer(500, row_cap=200_000)
    assert sizer.size() == 500  # nothing known yet: the configured batch
    sizer.add(posts=500, rows=100_000)  # 200 rows a cell
    assert sizer.size() == 750  # 150,000 rows
    sizer.add(posts=250, rows=500_000)  # denser than thought: 800 rows a cell over the 750
    assert sizer.size() == 187
    dense = _Sizer(500, row_cap=100)
    dense.add(posts=2, rows=1_000)
    assert dense.size() == 1  # never fewer than one cell
    empty = _Sizer(500, row_cap=200_000)
    empty.add(posts=500, rows=0)
    assert empty.size() == MAX_POST_BATCH  # never more than the most a filter may name


def test_sub_batches_are_sized_to_the_rows_the_answers_bring(emulator, cells):
    # 40 cells bring ~4,500 rows, over a cap of 2,000: the chunks asked for before any answer
    # came are capped and split; later ones are asked in batches that fit under the cap
    emulator.server.row_cap = 2_000
    chunks = {f"{c:02d}": cells[chunk_of(cells) == c] for c in range(12)}
    got = {
        key: stats
        for key, rows, stats in download_chunks(
            connect(emulator, row_cap=2_000), 1300, SYN, chunks, cells, individual=True,
            batch_size=40, workers=2,
        )
        if sorted(rows["id"]) == sorted(truth(emulator, chunks[key], cells)["id"])  # all there
    }  # fmt: skip
    assert sorted(got) == sorted(chunks)
    first, last = got["00"], got["11"]
    assert first.batches == int(np.ceil(chunks["00"].size / 40)) and first.capped > 0
    assert last.batches >= 2 * first.batches  # ~13 cells a batch once the density is known
    early = sum(got[k].capped for k in ("00", "01", "02"))
    late = sum(got[k].capped for k in sorted(got)[-6:])
    assert late < early / 3


def _download_all(emulator, cells, row_cap: int, **options) -> list:
    """Six chunks of 20 post cells, pre side every cell of `cells` (not sent at first)."""
    chunks = {f"c{i}": cells[i * 20 : (i + 1) * 20] for i in range(6)}
    got = list(
        download_chunks(
            connect(emulator, row_cap=row_cap), 1300, SYN, chunks, cells, individual=True,
            send_pre=False, batch_size=20, workers=1, **options,
        )
    )  # fmt: skip
    for key, rows, stats in got:  # each complete, whichever way, and held against its count
        expected = truth(emulator, chunks[key], cells)
        assert sorted(rows["id"]) == sorted(expected["id"]), key
        assert stats.server_rows == stats.rows
    return got


def test_dense_answers_send_the_pre_list_for_the_chunks_after(emulator, cells):
    emulator.server.row_cap = 400  # 20 cells bring more than 3/4 of it: dense
    got = _download_all(emulator, cells, 400)
    assert not any(stats.recounted for _, _, stats in got)  # (a lossless server)
    sent = [stats.pre_sent for _, _, stats in got]
    # the first chunks are planned before any answer is in; once one is, the rest send it
    assert sent[0] is False and sent[-1] is True
    assert sent == sorted(sent)  # for good: never back to local filtering
    for _, rows, stats in got:
        if stats.pre_sent:  # the server filtered: every row that came is kept
            assert stats.rows == len(rows)
        else:  # rows from other pre cells came and were dropped here
            assert stats.rows > len(rows)


def test_sparse_answers_keep_filtering_locally(emulator, cells):
    got = _download_all(emulator, cells, 200_000)  # 20 cells bring far less than the cap
    assert not any(stats.pre_sent for _, _, stats in got)
    assert all(stats.rows > len(rows) for _, rows, stats in got)


def test_a_pre_list_longer_than_the_dense_limit_is_never_sent(emulator, cells, monkeypatch):
    monkeypatch.setattr("microns_assets.cave.synapses.DENSE_PRE_FILTER", cells.size - 1)
    emulator.server.row_cap = 400
    got = _download_all(emulator, cells, 400)
    assert not any(stats.pre_sent for _, _, stats in got)


def test_dense_means_the_seeds_batch_brings_more_than_the_target():
    sizer = _Sizer(first=20, row_cap=4_000)  # target 3,000 rows
    assert not sizer.dense()  # nothing known yet
    sizer.add(100, 500)  # 5 rows a cell: 500 cells bring 2,500
    assert not sizer.dense()
    sizer.add(100, 1_000)  # 7.5 rows a cell: 3,750
    assert sizer.dense()  # whatever `first` (the configured batch) is


def test_a_restarted_sizer_starts_at_the_old_rate_and_learns_the_new_one():
    old = _Sizer(first=500, row_cap=4_000)
    old.add(100, 2_000)  # 20 rows a cell: 150 cells a sub-batch
    new = old.restarted()
    assert new.size() == old.size() == 150  # safe at first: the old, higher rate
    for _ in range(9):
        new.add(150, 1_500)  # answers of the new kind: 10 rows a cell
    assert 270 <= new.size() <= 300  # mostly the new rate (300 cells at 10 rows a cell)
    assert old.size() == 150  # the old one is left as it was


def test_dense_chunks_that_send_the_list_are_settled_against_their_own_counts(emulator, cells):
    emulator.server.row_cap = 400
    chunks = {f"c{i:02d}": cells[i * 10 : (i + 1) * 10] for i in range(12)}
    got = {}
    for key, rows, stats in download_chunks(
        connect(emulator, row_cap=400), 1300, SYN, chunks, cells, individual=True,
        send_pre=False, batch_size=10, workers=1,
    ):  # fmt: skip
        assert sorted(rows["id"]) == sorted(truth(emulator, chunks[key], cells)["id"]), key
        assert stats.server_rows == stats.rows
        got[key] = stats
        if len(got) == 1:  # from the chunks that send the list on, rows go missing unsaid
            emulator.server.faults = Faults(lose_rate=3e-4, seed=LOSSY_SEED)
    assert not got["c00"].pre_sent and got["c11"].pre_sent
    assert any(stats.recounted for stats in got.values() if stats.pre_sent)
    assert emulator.server.stats.rows_lost > 0


def test_a_capped_batch_is_cut_to_the_size_the_answers_since_say(emulator, cells):
    emulator.server.row_cap = 2_000
    post = cells[chunk_of(cells) == 0][:40]  # ~4,500 rows: capped
    conn = connect(emulator, row_cap=2_000)
    batches = _SubBatches(conn, 1300, SYN, cells.tolist(), AGGREGATE_COLUMNS, 1)
    expected = sorted(truth(emulator, post, cells)["id"])
    assert len(expected) > 2_000

    halved = DownloadStats()
    pieces = batches.fetch(post, halved)  # no answers known: halves, while capped
    assert sorted(pd.concat(pieces)["id"]) == expected

    sizer = _Sizer(first=40, row_cap=2_000)
    sizer.add(100, 15_000)  # answers since: 150 rows a cell, so 10 cells bring 3/4 of the cap
    cut = DownloadStats()
    pieces = batches.fetch(post, cut, sizer)
    assert sorted(pd.concat(pieces)["id"]) == expected  # the same rows, none twice
    assert cut.capped == 1 and cut.queries == 1 + 4  # four pieces of 10 cells, none capped
    assert halved.capped > cut.capped and halved.queries > cut.queries
