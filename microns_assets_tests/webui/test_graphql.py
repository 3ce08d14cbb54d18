"""The web UI's GraphQL API serves our code location and the materialized version 1300."""

from __future__ import annotations

import base64
import json

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from upath import UPath

from microns_assets.storage import read_connectome
from microns_assets_tests.webui import expected
from microns_assets_tests.webui.server import graphql

ASSETS = """
{ assetNodes {
    assetKey { path } groupName isPartitioned
    dependencyKeys { path } dependedByKeys { path }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
    partitionStats { numMaterialized numPartitions numFailed }
    assetPartitionStatuses { __typename
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions }
      ... on MultiPartitionStatuses { primaryDimensionName ranges {
          primaryDimStartKey primaryDimEndKey secondaryDim { __typename
            ... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } }
} }
"""

MATERIALIZATIONS = """
query ($key: AssetKeyInput!, $partitions: [String!], $limit: Int) {
  assetNodeOrError(assetKey: $key) { __typename ... on AssetNode {
    assetMaterializations(partitions: $partitions, limit: $limit) { partition metadataEntries {
      __typename label
      ... on IntMetadataEntry { intRepr }
      ... on BoolMetadataEntry { boolValue }
      ... on TextMetadataEntry { text }
      ... on PathMetadataEntry { path }
      ... on MarkdownMetadataEntry { mdStr } } } } } }
"""

CHECK_EXECUTIONS = """
query ($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 500) {
    status partition
    evaluation { success targetMaterialization { runId storageId } }
    run { tags { key value } } } }
"""
BACKFILL_RUNS = """
query ($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status runs(limit: 100) { runId status tags { key value }
    assetSelection { path } } } } }
"""

RESOURCES = """
{ allTopLevelResourceDetailsOrError(repositorySelector:
    {repositoryLocationName: "microns_assets", repositoryName: "__repository__"}) {
  __typename ... on ResourceDetailsList { results { name configuredValues { key value } } }
  ... on PythonError { message } } }
"""

VALUE_FIELDS = ("intRepr", "boolValue", "text", "path", "mdStr")


def key_of(asset_key: dict) -> str:
    return "/".join(asset_key["path"])


@pytest.fixture(scope="module")
def nodes(webserver) -> dict[str, dict]:
    return {key_of(n["assetKey"]): n for n in graphql(webserver.url, ASSETS)["assetNodes"]}


def materializations(url: str, key: str, partitions=None, limit=None) -> list[dict]:
    """Latest-first materializations of `key`, each metadata entry as {label: value}."""
    variables = {"key": {"path": key.split("/")}, "partitions": partitions, "limit": limit}
    node = graphql(url, MATERIALIZATIONS, variables)["assetNodeOrError"]
    assert node["__typename"] == "AssetNode", node
    out = []
    for event in node["assetMaterializations"]:
        meta = {}
        for entry in event["metadataEntries"]:
            value = next((entry[f] for f in VALUE_FIELDS if f in entry), None)
            meta[entry["label"]] = (
                int(value) if entry["__typename"] == "IntMetadataEntry" else value
            )
        out.append({"partition": event["partition"], "meta": meta})
    return out


def latest(url: str, key: str) -> dict:
    events = materializations(url, key, partitions=["1300"], limit=1)
    assert len(events) == 1, f"{key}: no materialization of partition 1300 in the UI"
    return events[0]["meta"]


def png_of(markdown: str) -> bytes:
    """The PNG embedded as a data URL in a markdown image."""
    assert markdown.startswith("!["), markdown[:80]
    return base64.b64decode(markdown.split("data:image/png;base64,", 1)[1].rstrip(")"))


def test_every_asset_and_check_is_served_in_its_group(nodes):
    from microns_assets.definitions import defs

    assert sorted(nodes) == sorted(expected.KEYS)
    assert {k: n["groupName"] for k, n in nodes.items()} == expected.GROUPS
    assert {k for k, n in nodes.items() if not n["isPartitioned"]} == set(expected.UNPARTITIONED)
    in_process = {}
    for check in defs.resolve_asset_graph().asset_check_keys:
        in_process.setdefault(check.asset_key.to_user_string(), set()).add(check.name)
    for key, node in nodes.items():
        served = {c["name"] for c in node["assetChecksOrError"]["checks"]}
        assert served == in_process.get(key, set()), key  # nothing lost on the way to the UI
        assert served >= expected.CHECKS.get(key, set()), key


def partitions_of_1300(key: str) -> set[str]:
    if key != "synapse_chunks":
        return {"1300"}
    return {
        str(dg.MultiPartitionKey({"mat_version": "1300", "synapse_chunk": c}))
        for c in expected.CHUNKS
    }


def test_materialize_all_is_a_handful_of_runs_and_gives_the_true_synapses(
    webserver, session_emulator
):
    """The UI's "Materialize all" for 1300, run by the daemon: completed, at most 4 runs."""
    done = webserver.materialized
    assert done.status == "COMPLETED_SUCCESS"
    data = graphql(webserver.url, BACKFILL_RUNS, {"id": done.backfill_id})
    runs = data["partitionBackfillOrError"]["runs"]
    assert 3 <= len(runs) <= 4 and all(r["status"] == "SUCCESS" for r in runs), runs
    chunk_runs = [r for r in runs if {"path": ["synapse_chunks"]} in r["assetSelection"]]
    [chunk_run] = chunk_runs  # every chunk of the version in one partition-range run
    tags = {t["key"]: t["value"] for t in chunk_run["tags"]}
    assert tags["dagster/asset_partition_range_start"] == "1300|00"
    assert tags["dagster/asset_partition_range_end"] == "1300|31"
    events = materializations(webserver.url, "synapse_chunks", limit=1000)
    of_1300 = [e["partition"] for e in events if e["partition"].startswith("1300|")]
    assert sorted(of_1300) == sorted(partitions_of_1300("synapse_chunks"))
    merged = pq.read_table(done.version_dir / "synapses.parquet").to_pandas()
    units = pq.read_table(done.version_dir / "units.parquet").to_pandas()
    roots = units["pt_root_id"].to_numpy(np.int64)
    truth = session_emulator.ground_truth(1300, "synapses_pni_2")
    truth = truth[truth["pre_pt_root_id"].isin(roots) & truth["post_pt_root_id"].isin(roots)]
    expected_pairs = truth.groupby(["pre_pt_root_id", "post_pt_root_id"])["size"].agg(
        ["sum", "count"]
    )
    assert len(merged) == len(expected_pairs) > 10_000
    assert merged["n_synapses"].sum() == len(truth)
    assert merged["size"].sum() == expected_pairs["sum"].sum()
    assert merged["pre_pt_root_id"].tolist() == expected_pairs.index.get_level_values(0).tolist()


def test_every_check_passed_on_every_partition_it_checks(webserver, nodes):
    """Each check's latest execution per partition succeeded, for every partition of 1300.

    The chunk checks are partitioned: each chunk partition has its own execution, tied to that
    partition's materialization; the other checks' executions take their run's partition.
    """
    for key, node in nodes.items():
        for name in (c["name"] for c in node["assetChecksOrError"]["checks"]):
            variables = {"key": {"path": key.split("/")}, "check": name}
            executions = graphql(webserver.url, CHECK_EXECUTIONS, variables)
            latest = {}
            for execution in executions["assetCheckExecutions"]:  # newest first
                tags = {t["key"]: t["value"] for t in execution["run"]["tags"]}
                partition = execution["partition"] or tags.get("dagster/partition")
                if partition.split("|")[0] == "1300":  # not 1718, which test_submit checks
                    latest.setdefault(partition, execution)
            assert set(latest) == partitions_of_1300(key), (key, name)
            for partition, execution in latest.items():
                assert execution["status"] == "SUCCEEDED", (key, name, partition, execution)
                assert execution["evaluation"]["success"], (key, name, partition)
                assert execution["evaluation"]["targetMaterialization"], (key, name, partition)


def test_code_location_resources_point_at_the_emulator_and_data_dir(webserver):
    data = graphql(webserver.url, RESOURCES)["allTopLevelResourceDetailsOrError"]
    assert data["__typename"] == "ResourceDetailsList", data
    config = {
        r["name"]: {v["key"]: json.loads(v["value"]) for v in r["configuredValues"]}
        for r in data["results"]
    }
    done = webserver.materialized
    assert config["cave"]["server_address"] == done.server
    assert config["cave"]["datastack"] == config["io_manager"]["datastack"] == done.datastack
    assert config["io_manager"]["data_dir"] == str(done.data_dir)


def test_lineage_raw_to_units_to_chunks_to_synapses(nodes):
    upstream = {(key_of(d), key) for key, n in nodes.items() for d in n["dependencyKeys"]}
    downstream = {(key, key_of(d)) for key, n in nodes.items() for d in n["dependedByKeys"]}
    assert upstream == expected.EDGES
    assert downstream == expected.EDGES


def test_every_partition_of_both_versions_is_materialized(nodes):
    """1300 by the UI's backfill, 1718 by `materialize --submit` (test_submit.py)."""
    for key in expected.VERSIONED:
        status = nodes[key]["assetPartitionStatuses"]
        assert status["__typename"] == "DefaultPartitionStatuses", key
        assert sorted(status["materializedPartitions"]) == ["1300", "1718"], key
        assert status["failedPartitions"] == [], key
        assert nodes[key]["partitionStats"]["numMaterialized"] == 2, key

    chunks = nodes["synapse_chunks"]
    status = chunks["assetPartitionStatuses"]
    assert status["__typename"] == "MultiPartitionStatuses"
    assert status["primaryDimensionName"] == "mat_version"
    [versions] = status["ranges"]  # both versions, every chunk of each
    assert (versions["primaryDimStartKey"], versions["primaryDimEndKey"]) == ("1300", "1718")
    assert sorted(versions["secondaryDim"]["materializedPartitions"]) == list(expected.CHUNKS)
    assert versions["secondaryDim"]["failedPartitions"] == []
    stats = chunks["partitionStats"]
    assert stats["numMaterialized"] == stats["numPartitions"] == 2 * expected.N_CHUNKS


@pytest.mark.parametrize("key", expected.TABLES)
def test_row_count_and_path_match_the_parquet_file(webserver, key):
    meta = latest(webserver.url, key)
    path = webserver.materialized.version_dir / f"{key}.parquet"
    assert meta["path"] == str(path)
    assert meta["dagster/row_count"] == pq.read_metadata(path).num_rows
    assert meta["preview"].startswith("|") or meta["dagster/row_count"] == 0


def test_raw_row_counts_equal_the_emulator_tables(webserver, session_emulator):
    for key in expected.RAW:
        meta = latest(webserver.url, key)
        if key in expected.ABSENT_IN_1300:
            assert meta["present"] is False and meta["dagster/row_count"] == 0, key
            continue
        assert meta["present"] is True, key
        truth = session_emulator.ground_truth(1300, meta["cave_table"])
        assert meta["dagster/row_count"] == len(truth) > 0, key


def test_units_metadata_has_counts_and_depth_profile(webserver):
    meta = latest(webserver.url, "units")
    units = pq.read_table(webserver.materialized.version_dir / "units.parquet")
    nuclei = len(np.unique(units["nucleus_id"].to_numpy()))
    assert meta["unique_nuclei"] == nuclei > 1000
    assert "L2/3" in meta["units_by_layer_and_class"]
    assert png_of(meta["depth_profile"]).startswith(b"\x89PNG\r\n\x1a\n")
    segments = latest(webserver.url, "layer_segments")
    assert segments["layers"].split(", ")[:2] == ["L1", "L2/3"]


def test_every_chunk_and_the_rollup_carry_consistent_counts(webserver, session_emulator):
    events = materializations(webserver.url, "synapse_chunks", limit=100)
    by_partition = {e["partition"]: e["meta"] for e in events if e["partition"][:5] == "1300|"}
    keys = {
        str(dg.MultiPartitionKey({"mat_version": "1300", "synapse_chunk": c})): c
        for c in expected.CHUNKS
    }
    assert set(by_partition) == set(keys)
    for partition, chunk in keys.items():
        path = webserver.materialized.version_dir / "synapse_chunks" / f"{chunk}.parquet"
        assert by_partition[partition]["path"] == str(path)
        assert by_partition[partition]["dagster/row_count"] == pq.read_metadata(path).num_rows

    rollup = latest(webserver.url, "synapses")
    assert rollup["dagster/row_count"] == sum(m["dagster/row_count"] for m in by_partition.values())
    assert rollup["total_synapses"] == sum(m["synapses"] for m in by_partition.values())
    units = pq.read_table(webserver.materialized.version_dir / "units.parquet")
    roots = units["pt_root_id"].to_numpy()
    truth = session_emulator.ground_truth(1300, "synapses_pni_2")
    between_units = truth["pre_pt_root_id"].isin(roots) & truth["post_pt_root_id"].isin(roots)
    assert rollup["total_synapses"] == int(between_units.sum()) > 10_000
    assert "excitatory_neuron" in rollup["synapses_by_class"]
    assert png_of(rollup["connectivity"]).startswith(b"\x89PNG\r\n\x1a\n")


def test_the_connectome_holds_the_rollups_synapses_and_shows_its_picture(webserver):
    meta = latest(webserver.url, "connectome")
    path = webserver.materialized.version_dir / "connectome.npz"
    assert meta["path"] == str(path)
    matrix, index = read_connectome(UPath(path))
    rollup = latest(webserver.url, "synapses")
    assert meta["synapses"] == matrix.sum() == rollup["total_synapses"]  # all among units
    assert meta["connected_pairs"] == matrix.nnz == rollup["dagster/row_count"]
    assert meta["units"] == len(index)
    assert png_of(meta["picture"]).startswith(b"\x89PNG\r\n\x1a\n")
