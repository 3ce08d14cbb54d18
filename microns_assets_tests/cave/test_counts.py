"""Server-side counts of filtered queries (`count=true`), and the lossy-server fault they catch."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import requests

from microns_assets.cave import Filters, fetch_verified
from microns_assets.cave.errors import RowsLostError
from microns_assets.cave.synapses import MAX_PRE_FILTER, download_chunks, download_synapses
from microns_assets.emulator import Faults
from microns_assets_tests.conftest import connect

SYN = "synapses_pni_2"
REF = "aibs_metamodel_celltypes_v661"


@pytest.fixture(scope="module")
def syn(session_emulator):
    return session_emulator.ground_truth(1300, SYN)


@pytest.fixture(scope="module")
def posts(syn) -> list[int]:
    """60 post cells with many synapses, so their rows exceed a small row cap."""
    return syn["post_pt_root_id"].value_counts().index[:60].astype("int64").tolist()


LOSSY_SEED = 2  # a seed under which some answers lose rows, and retries recover


def query_url(emulator, table: str = SYN) -> str:
    return (
        f"{emulator.url}/materialize/api/v3/datastack/{emulator.datastack}/version/1300/"
        f"table/{table}/query"
    )


def test_count_answer_is_one_uncapped_arrow_row(emulator, syn):
    emulator.server.row_cap = 1_000
    body = {"limit": 10, "filter_greater_equal_dict": {SYN: {"size": 500}}}
    r = requests.post(query_url(emulator), params={"count": "True"}, json=body, timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "data.arrow"
    assert "Warning" not in r.headers  # neither the cap nor `limit` applies to a count
    frame = pa.ipc.open_stream(r.content).read_pandas()
    assert list(frame.columns) == ["count"] and frame["count"].dtype == "int64"
    assert frame["count"].tolist() == [int((syn["size"] >= 500).sum())]
    assert frame["count"].iloc[0] > 1_000


def test_count_flag_false_answers_rows_and_a_bad_flag_is_rejected(emulator):
    url = query_url(emulator)
    rows = requests.post(url, params={"count": "false"}, json={"limit": 7}, timeout=30)
    assert len(pa.ipc.open_stream(rows.content).read_pandas()) == 7
    bad = requests.post(url, params={"count": "maybe"}, json={}, timeout=30)
    assert bad.status_code == 400 and "count" in bad.json()["message"]


def test_count_rows_equals_ground_truth_for_each_filter(emulator, syn, posts):
    emulator.server.row_cap = 1_000
    conn = connect(emulator, row_cap=1_000)
    pre = syn["pre_pt_root_id"].drop_duplicates().iloc[::4].astype("int64").tolist()
    in_post = syn["post_pt_root_id"].isin(posts)
    cases = [
        (Filters(), np.ones(len(syn), bool)),
        (Filters(isin={"post_pt_root_id": posts}), in_post),
        (
            Filters(isin={"post_pt_root_id": posts, "pre_pt_root_id": pre}),
            in_post & syn["pre_pt_root_id"].isin(pre),
        ),
        (Filters(greater_equal={"id": 1_000}, less={"id": 5_000}), syn["id"].between(1_000, 4_999)),
        (
            Filters(isin={"post_pt_root_id": posts}).in_range("id", 1_000, 5_000),
            in_post & syn["id"].between(1_000, 4_999),
        ),
    ]
    for filters, truth in cases:
        assert conn.count_rows(1300, SYN, filters) == int(np.sum(truth)), filters
    assert in_post.sum() > 1_000  # above the cap: the count is not cut


def test_the_emulator_counts_excluding_and_equality_filters_too(emulator, syn, posts):
    """Filters the pipeline never sends, counted by the server through caveclient itself."""
    mat = connect(emulator).materialize
    in_post = syn["post_pt_root_id"].isin(posts)
    cases = [
        ({"filter_out_dict": {"post_pt_root_id": posts}}, ~in_post),
        ({"filter_equal_dict": {"post_pt_root_id": posts[0]}}, syn["post_pt_root_id"] == posts[0]),
    ]
    for filters, truth in cases:
        frame = mat.query_table(
            SYN, **filters, get_counts=True, materialization_version=1300, log_warning=False
        )
        assert frame["count"].tolist() == [int(np.sum(truth))], filters


def test_count_rows_of_a_reference_table_counts_its_own_rows(emulator):
    conn = connect(emulator)
    table = emulator.ground_truth(1300, REF)
    assert conn.count_rows(1300, REF) == len(table)
    some = table["target_id"].iloc[:25].astype("int64").tolist()
    assert conn.count_rows(1300, REF, Filters(isin={"target_id": some})) == 25


def test_count_rows_survives_503s_and_cut_bodies(emulator, syn, posts):
    emulator.server.faults = Faults(fail_rate=0.3, drop_rate=0.3, seed=5)
    conn = connect(emulator)
    for i in range(6):
        batch = posts[i * 10 : (i + 1) * 10]
        truth = int(syn["post_pt_root_id"].isin(batch).sum())
        assert conn.count_rows(1300, SYN, Filters(isin={"post_pt_root_id": batch})) == truth
    assert emulator.server.stats.faults > 0


def test_lossy_server_drops_rows_from_answers_but_not_from_counts(emulator, syn, posts):
    emulator.server.faults = Faults(lose_rate=0.05, seed=3)
    conn = connect(emulator)
    filters = Filters(isin={"post_pt_root_id": posts[:20]})
    truth = int(syn["post_pt_root_id"].isin(posts[:20]).sum())
    result = conn.query(1300, SYN, filters)
    lost = emulator.server.stats.rows_lost
    assert lost > 0 and len(result.frame) == truth - lost
    assert not result.truncated  # nothing says rows are missing
    assert conn.count_rows(1300, SYN, filters) == truth


def test_download_counts_each_chunk_once(emulator, syn, posts):
    emulator.server.row_cap = 1_000
    pre = syn["pre_pt_root_id"].drop_duplicates().iloc[::10].to_numpy(np.int64)
    assert pre.size <= MAX_PRE_FILTER  # sent as a filter, so counted with it
    rows, stats = download_synapses(
        connect(emulator, row_cap=1_000), 1300, SYN, np.array(posts), pre, individual=True,
        batch_size=25,
    )  # fmt: skip
    truth = syn[syn["post_pt_root_id"].isin(posts) & syn["pre_pt_root_id"].isin(pre)]
    assert stats.capped > 0  # split queries are counted once, with the whole chunk
    assert stats.count_queries == 1 and stats.batches == 3
    assert stats.server_rows == stats.rows == len(truth) == len(rows)
    assert emulator.server.stats.queries == stats.queries + stats.count_queries


def test_download_counts_rows_before_local_pre_filter(emulator, syn, posts):
    pre = syn["pre_pt_root_id"].drop_duplicates().iloc[::3].to_numpy(np.int64)
    rows, stats = download_synapses(
        connect(emulator), 1300, SYN, np.array(posts), pre, individual=True, send_pre=False
    )
    onto_posts = int(syn["post_pt_root_id"].isin(posts).sum())
    assert stats.server_rows == stats.rows == onto_posts  # pre cells not sent, so not counted
    assert len(rows) < stats.rows  # pre cells filtered locally, after the comparison point


def test_a_batch_that_lost_rows_is_downloaded_again(emulator, syn, posts):
    # rare silent losses: some answers lose a row, the next attempt of that batch does not
    emulator.server.faults = Faults(lose_rate=2e-5, seed=LOSSY_SEED)
    rows, stats = download_synapses(
        connect(emulator), 1300, SYN, np.array(posts), None, individual=True, batch_size=20
    )
    assert emulator.server.stats.rows_lost > 0
    assert stats.recounted > 0
    truth = syn[syn["post_pt_root_id"].isin(posts)]
    assert sorted(rows["id"]) == sorted(truth["id"])  # exactly the server's rows, none lost
    # the chunk did not add up, so each of its 3 sub-batches was counted, and only those
    # that missed their count were downloaded again
    assert stats.count_queries == 1 + 3
    assert stats.queries == 3 + stats.recounted < 3 * 2
    assert emulator.server.stats.queries == stats.queries + stats.count_queries


def test_chunks_are_counted_once_each_beside_their_sub_batches(emulator, syn, posts):
    chunks = {"a": np.array(posts[:30]), "b": np.array(posts[30:]), "none": np.array([], int)}
    found = {
        key: (rows, stats)
        for key, rows, stats in download_chunks(
            connect(emulator), 1300, SYN, chunks, None, individual=True, batch_size=10
        )
    }
    assert set(found) == set(chunks)
    for key, post in chunks.items():
        rows, stats = found[key]
        truth = syn[syn["post_pt_root_id"].isin(post)]
        assert sorted(rows["id"]) == sorted(truth["id"])
        assert stats.server_rows == stats.rows == len(truth)
        assert stats.queries == stats.batches  # (nothing capped)
        assert stats.count_queries == (1 if len(post) else 0)
    # "a" is planned before any answer (`batch_size` cells a sub-batch); "b" once an answer (its
    # count comes first) says how few rows a cell brings here: fewer, larger sub-batches
    assert found["a"][1].batches == 3 and found["b"][1].batches < 3
    total = sum(s.queries + s.count_queries for _, s in found.values())
    batches = found["a"][1].batches + found["b"][1].batches
    assert emulator.server.stats.queries == total == batches + 2


def test_download_without_verification_sends_no_counts(emulator, posts):
    _, stats = download_synapses(
        connect(emulator), 1300, SYN, np.array(posts), None, individual=False, verify_counts=False
    )
    assert stats.server_rows is None and stats.count_queries == 0
    assert emulator.server.stats.queries == stats.queries > 0


@pytest.mark.parametrize("attempts", [1, 2])
def test_a_batch_is_tried_as_often_as_the_connection_says(emulator, posts, attempts):
    # every answer loses rows: each try of the one batch is a miss, and the error says how many
    emulator.server.faults = Faults(lose_rate=0.5, seed=LOSSY_SEED)
    conn = connect(emulator, call_attempts=attempts)
    with pytest.raises(RowsLostError, match=f"in each of {attempts} attempts"):
        download_synapses(conn, 1300, SYN, np.array(posts[:5]), None, individual=False)
    assert emulator.server.stats.queries == 1 + attempts  # one count, then each try


@pytest.mark.parametrize("name", ["call_attempts", "row_cap", "max_in_flight"])
def test_settings_below_one_are_refused_by_name(emulator, name):
    with pytest.raises(ValueError, match=f"{name} must be at least 1, not 0"):
        connect(emulator, **{name: 0})


def test_a_tables_count_is_asked_while_its_rows_download(emulator):
    conn = connect(emulator)
    _ = conn.client  # built before the server slows down
    emulator.server.faults = Faults(latency_ms=100)
    emulator.server.stats.reset()
    result, count = fetch_verified(conn, 1300, "nucleus_detection_v0")
    assert len(result.frame) == count.table_rows > 0
    assert emulator.server.stats.max_in_flight == 2  # the count beside the download
