"""Synapse chunks and their roll-up, materialized from the emulator under a tiny row cap."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from microns_assets.emulator import Faults
from microns_assets.partitions import VERSION_DIM
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.resources import CaveResource
from microns_assets.storage import read_connectome, read_frame, write_frame
from microns_assets_tests.conftest import failure_messages
from microns_assets_tests.synapses.conftest import ALL, CAP


def run(workspace, asset: str, key, config: dict | None = None, resources=None, tags=None):
    instance, default_resources, _ = workspace
    run_config = {"ops": {asset: {"config": config}}} if config is not None else None
    return dg.materialize(
        ALL,
        selection=dg.AssetSelection.assets(asset).required_multi_asset_neighbors(),
        partition_key=key,
        resources=resources or default_resources,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
        tags=tags,
    )


def chunk_key(chunk: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({VERSION_DIM: "1300", "synapse_chunk": chunk})


#: A run over every chunk partition of 1300, as a backfill (or `materialize`) makes it.
ALL_CHUNKS = {
    "dagster/asset_partition_range_start": "1300|00",
    "dagster/asset_partition_range_end": "1300|31",
}


def download_all(workspace, config: dict, resources=None) -> list:
    result = run(workspace, "synapse_chunks", None, config, resources, ALL_CHUNKS)
    assert result.success, failure_messages(result)
    return [result]


def truth(emulator, pre: np.ndarray, post: np.ndarray) -> pd.DataFrame:
    syn = emulator.ground_truth(1300, "synapses_pni_2")
    return syn[syn["pre_pt_root_id"].isin(pre) & syn["post_pt_root_id"].isin(post)]


def test_default_selection_aggregated_equals_ground_truth(workspace, session_emulator):
    session_emulator.server.row_cap = CAP
    session_emulator.server.faults = Faults(fail_rate=0.2, drop_rate=0.2, seed=21)
    try:
        results = download_all(workspace, {})
        rollup = run(workspace, "synapses", "1300")
    finally:
        session_emulator.server.row_cap = 200_000
        session_emulator.server.faults = Faults()
    assert rollup.success
    checks = [e for r in [*results, rollup] for e in r.get_asset_check_evaluations()]
    assert checks and all(e.passed for e in checks)
    capped = sum(
        e.materialization.metadata["capped_queries_split"].value
        for r in results
        for e in r.get_asset_materialization_events()
    )
    assert capped > 0  # the cap really cut answers, and they were split
    sent = [
        e.materialization.metadata["pre_cells_sent"].value
        for r in results
        for e in r.get_asset_materialization_events()
    ]
    assert False in sent and True in sent  # answers under the cap are dense: the list goes

    units = read_frame(workspace[2] / "units.parquet")["pt_root_id"].to_numpy(np.int64)
    expected = (
        truth(session_emulator, units, units)
        .groupby(["pre_pt_root_id", "post_pt_root_id"])["size"]
        .agg(["sum", "count"])
        .reset_index()
    )
    merged = read_frame(workspace[2] / "synapses.parquet")
    assert len(merged) == len(expected) > 10_000
    assert merged["pre_pt_root_id"].tolist() == expected["pre_pt_root_id"].tolist()  # sorted
    assert merged["post_pt_root_id"].tolist() == expected["post_pt_root_id"].tolist()
    assert merged["size"].tolist() == expected["sum"].tolist()
    assert merged["n_synapses"].tolist() == expected["count"].tolist()
    # chunks are written fast (and read once), the merged file small
    chunk_file = next((workspace[2] / "synapse_chunks").glob("*.parquet"))
    assert _codecs(chunk_file) == {"LZ4"} and _codecs(workspace[2] / "synapses.parquet") == {"ZSTD"}
    events = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in rollup.get_asset_materialization_events()
    }
    meta = events["synapses"]
    assert meta["total_synapses"].value == expected["count"].sum()
    assert "excitatory_neuron" in meta["synapses_by_class"].value
    # drawn while the file was written, attached after it
    assert meta["connectivity"].value.startswith("![synapses by cell class](data:image/png")
    # the same step built the connectome: every synapse among the units, one entry per pair
    matrix, index = read_connectome(workspace[2] / "connectome.npz")
    assert set(index) == set(units) and matrix.sum() == expected["count"].sum()
    assert matrix.nnz == len(expected)
    rows = index.get_indexer(expected["pre_pt_root_id"])
    columns = index.get_indexer(expected["post_pt_root_id"])
    assert np.asarray(matrix[rows, columns]).ravel().tolist() == expected["count"].tolist()
    connectome = events["connectome"]
    assert connectome["connected_pairs"].value == len(expected)
    assert connectome["picture"].value.startswith("![connectome by layer and type](data:image/png")
    passed = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in checks}
    assert passed[("connectome", "sums_match_synapses")]


def test_individual_synapses_of_a_selection(workspace, session_emulator):
    config = {
        "mode": "individual",
        "pre": {"layer": ["L2/3", "L4"]},
        "post": {"sample": 150, "sample_seed": 4},
        "remove_autapses": True,
    }
    download_all(workspace, config)
    assert run(workspace, "synapses", "1300").success
    units = read_frame(workspace[2] / "units.parquet")
    pre = units.loc[units["layer"].isin(["L2/3", "L4"]), "pt_root_id"].to_numpy(np.int64)
    post = np.sort(
        np.random.default_rng(4).choice(np.unique(units["pt_root_id"]), 150, replace=False)
    )
    expected = truth(session_emulator, pre, post)
    expected = expected[expected["pre_pt_root_id"] != expected["post_pt_root_id"]]
    merged = read_frame(workspace[2] / "synapses.parquet")
    assert sorted(merged["id"]) == sorted(expected["id"])
    assert merged["ctr_y_um"].between(-100, 1_100).all()
    prov = merged.attrs["provenance"]
    assert prov["selection"]["post"] == {"sample": 150, "sample_seed": 4}
    assert prov["selection"]["mode"] == "individual"
    # the connectome counts one synapse per row of an individual table
    matrix, index = read_connectome(workspace[2] / "connectome.npz")
    pairs = expected.groupby(["pre_pt_root_id", "post_pt_root_id"]).size().reset_index()
    inside = pairs["pre_pt_root_id"].isin(index) & pairs["post_pt_root_id"].isin(index)
    rows = index.get_indexer(pairs.loc[inside, "pre_pt_root_id"])
    columns = index.get_indexer(pairs.loc[inside, "post_pt_root_id"])
    assert matrix.nnz == inside.sum() > 0
    assert np.asarray(matrix[rows, columns]).ravel().tolist() == pairs.loc[inside, 0].tolist()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"pre": {"layer": ["L7"]}}, "unknown layer"),
        ({"post": {"layer": ["L1"], "classification_system": ["excitatory_neuron"],
                   "cell_type": ["23P"], "brain_area": ["LM"]}}, "matches no unit"),
    ],
)  # fmt: skip
def test_bad_selection_fails_clearly(workspace, config, message):
    result = run(workspace, "synapse_chunks", chunk_key("00"), config)
    assert not result.success
    assert message in failure_messages(result)


def test_rollup_refuses_mixed_selections_and_names_missing_chunks(workspace):
    download_all(workspace, {})
    assert run(workspace, "synapse_chunks", chunk_key("05"), {"mode": "individual"}).success
    result = run(workspace, "synapses", "1300")
    assert not result.success
    assert "different selections" in failure_messages(result)

    assert run(workspace, "synapse_chunks", chunk_key("05"), {}).success
    (workspace[2] / "synapse_chunks" / "07.parquet").unlink()
    result = run(workspace, "synapses", "1300")
    assert not result.success
    assert "['07']" in failure_messages(result)


def test_rollup_refuses_chunks_made_from_another_units_table(workspace):
    """Units changed, only one chunk redone: the roll-up names the 31 left from before."""
    _, _, vdir = workspace
    download_all(workspace, {})
    units_path = vdir / "units.parquet"
    original = read_frame(units_path)
    fewer = original.sample(frac=0.7, random_state=1)
    try:
        write_frame(fewer, units_path, original.attrs["provenance"])
        assert run(workspace, "synapse_chunks", chunk_key("00"), {}).success
        merged_path = vdir / "synapses.parquet"
        before = merged_path.read_bytes() if merged_path.exists() else None
        result = run(workspace, "synapses", "1300")
        assert not result.success
        messages = failure_messages(result)
        assert "31 chunk file(s) were not made from this version's current units table" in messages
        assert "01: another pre_cells_sha, post_cells_sha" in messages
        assert "00: another" not in messages  # redone from the units as they are now
        assert (merged_path.read_bytes() if merged_path.exists() else None) == before

        download_all(workspace, {})  # as the message says: the 31 are redone
        assert run(workspace, "synapses", "1300").success
        merged = read_frame(vdir / "synapses.parquet")
        cells = set(fewer["pt_root_id"])
        assert len(merged) > 0
        assert merged["pre_pt_root_id"].isin(cells).all()
        assert merged["post_pt_root_id"].isin(cells).all()
    finally:
        write_frame(original, units_path, original.attrs["provenance"])
        download_all(workspace, {})


def test_one_run_stores_every_chunk_with_its_own_metadata_and_checks(workspace, emulator):
    emulator.server.stats.reset()  # not the workspace's own downloads
    emulator.server.faults = Faults(latency_ms=15)
    _, resources, version_dir = workspace
    cave = resources["cave"]
    three = CaveResource(
        datastack=cave.datastack,
        server_address=cave.server_address,
        row_cap=cave.row_cap,
        backoff_factor_s=cave.backoff_factor_s,
        max_in_flight=3,
    )
    slow = {**resources, "cave": three}
    [result] = download_all(workspace, {"remove_autapses": True}, slow)
    assert emulator.server.stats.max_in_flight == 3  # concurrent, never above the setting
    asked = [p for p, n in emulator.server.stats.paths.items() if "/table/" in p and n]
    assert asked and not [p for p in asked if p.endswith("/metadata")]  # (a synapse table joins
    # nothing: no query waits for the table's metadata first)
    events = [e.materialization for e in result.get_asset_materialization_events()]
    assert sorted(e.partition for e in events) == [f"1300|{c}" for c in CHUNK_KEYS]
    for event in events:
        chunk = event.partition[-2:]
        stored = read_frame(version_dir / "synapse_chunks" / f"{chunk}.parquet")
        assert event.metadata["path"].value.endswith(f"{chunk}.parquet")
        assert event.metadata["dagster/row_count"].value == len(stored)
        assert event.metadata["reused"].value is False
        assert stored.attrs["provenance"]["chunk"] == chunk
    evaluations = result.get_asset_check_evaluations()
    by_check: dict[str, set[str]] = {}
    for evaluation in evaluations:
        assert evaluation.passed and evaluation.target_materialization_data is not None
        by_check.setdefault(evaluation.check_name, set()).add(evaluation.partition)
    partitions = {e.partition for e in events}
    assert by_check == dict.fromkeys(
        ("no_duplicates", "within_selection", "matches_server_count"), partitions
    )


def test_complete_chunks_are_reused_and_broken_ones_downloaded_again(workspace, emulator):
    _, _, version_dir = workspace
    download_all(workspace, {})
    folder = version_dir / "synapse_chunks"
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")}
    emulator.server.stats.reset()
    [again] = download_all(workspace, {})
    assert emulator.server.stats.queries == 0  # nothing downloaded
    events = [e.materialization for e in again.get_asset_materialization_events()]
    assert len(events) == 32 and all(e.metadata["reused"].value for e in events)
    assert all(e.passed for e in again.get_asset_check_evaluations())  # checked again on reuse
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("*.parquet")} == stamps

    truncated = folder / "03.parquet"
    truncated.write_bytes(truncated.read_bytes()[:500])
    (folder / "11.parquet").unlink()
    [third] = download_all(workspace, {})
    redone = {
        e.materialization.partition
        for e in third.get_asset_materialization_events()
        if not e.materialization.metadata["reused"].value
    }
    assert redone == {"1300|03", "1300|11"}

    # a complete file from the same inputs that fails a blocking check is downloaded again
    doubled = folder / "05.parquet"
    frame = read_frame(doubled)
    twice = pd.concat([frame, frame], ignore_index=True)
    write_frame(twice, doubled, {**frame.attrs["provenance"], "rows": len(twice)})
    [fourth] = download_all(workspace, {})
    redone = {
        e.materialization.partition
        for e in fourth.get_asset_materialization_events()
        if not e.materialization.metadata["reused"].value
    }
    assert redone == {"1300|05"}
    assert read_frame(doubled).equals(frame)
    [forced] = download_all(workspace, {"force": True})
    assert not any(
        e.materialization.metadata["reused"].value
        for e in forced.get_asset_materialization_events()
    )


def test_a_failed_chunk_run_reports_nothing_and_the_rollup_waits(workspace, emulator):
    _, _, version_dir = workspace
    download_all(workspace, {})
    (version_dir / "synapse_chunks" / "13.parquet").unlink()
    emulator.server.faults = Faults(lose_rate=0.01, seed=5)  # every answer loses rows, silently
    result = run(workspace, "synapse_chunks", None, {}, tags=ALL_CHUNKS)
    assert not result.success
    assert "Nothing was stored" in failure_messages(result)
    assert result.get_asset_materialization_events() == []  # no chunk reported complete
    emulator.server.faults = Faults()
    rollup = run(workspace, "synapses", "1300")
    assert not rollup.success
    assert "['13']" in failure_messages(rollup)


def _codecs(path) -> set[str]:
    """The compression codecs of a Parquet file's columns (pyarrow calls LZ4_RAW "LZ4")."""
    meta = pq.ParquetFile(path).metadata
    return {
        meta.row_group(g).column(c).compression
        for g in range(meta.num_row_groups)
        for c in range(meta.num_columns)
    }
