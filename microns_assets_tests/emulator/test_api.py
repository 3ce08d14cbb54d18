"""Every emulator endpoint, driven through the real caveclient over a loopback socket."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import requests
from caveclient import CAVEclient

NUC = "nucleus_detection_v0"
CT = "aibs_metamodel_celltypes_v661"


@pytest.fixture
def client(emulator) -> CAVEclient:
    c = CAVEclient(emulator.datastack, server_address=emulator.url, write_server_cache=False)
    c.version = 1300
    return c


def test_datastack_info_points_back_at_the_emulator(client, emulator):
    info = client.info.get_datastack_info()
    assert info["local_server"] == emulator.url
    assert info["synapse_table"] == "synapses_pni_2"
    assert info["soma_table"] == NUC
    assert [info[f"viewer_resolution_{a}"] for a in "xyz"] == [4.0, 4.0, 40.0]
    assert "SYNTHETIC" in info["description"]


def test_versions_current_and_expired(client):
    current = client.materialize.get_versions()
    everything = client.materialize.get_versions(expired=True)
    assert sorted(current) == [117, 943, 1300, 1621, 1718, 1822]
    assert sorted(set(everything) - set(current)) == [1078, 1181, 1412, 1507]


def test_version_setter_validates_like_caveclient(client):
    client.version = 1718
    assert client.timestamp.year == 2025
    with pytest.raises(ValueError, match="not available"):
        client.version = 1234
    with pytest.raises(TypeError):
        client.version = np.int64(1300)


def test_versions_metadata_timestamps_parse(client):
    meta = client.materialize.get_versions_metadata(expired=True)
    by_version = {m["version"]: m for m in meta}
    assert by_version[1300]["time_stamp"].isoformat().startswith("2025-01-13T10:10:00")
    assert by_version[1078]["valid"] is False
    assert by_version[1300]["valid"] is True


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        (117, [NUC, "synapses_pni_2"], [CT, "functional_properties_v3_bcm"]),
        (1300, ["functional_properties_v3_bcm", CT], ["digital_twin_properties_bcm_coreg_v4"]),
        (1718, ["digital_twin_properties_bcm_coreg_v4", f"{CT}_corrections"], []),
    ],
)
def test_tables_per_version(client, version, present, absent):
    tables = client.materialize.get_tables(version=version)
    assert set(present) <= set(tables)
    assert not set(absent) & set(tables)


def test_table_metadata_names_the_reference_table(client):
    assert client.materialize.get_table_metadata(CT)["reference_table"] == NUC
    meta = client.materialize.get_table_metadata(NUC)
    assert meta["reference_table"] is None
    assert meta["voxel_resolution"] == [4.0, 4.0, 40.0]


def test_plain_query_matches_ground_truth_with_server_dtypes(client, emulator):
    df = client.materialize.query_table(NUC, split_positions=True)
    truth = emulator.ground_truth(1300, NUC)
    assert len(df) == len(truth) == emulator.n_nuclei
    assert df["pt_root_id"].dtype == "Int64"
    assert df["pt_position_x"].dtype == "Int32"
    assert df["volume"].dtype == "Float32"
    assert df["valid"].dtype == "boolean"
    assert str(df["created"].dtype) == "datetime64[ns, UTC]"
    assert df["bb_start_position_x"].isna().all()
    merged = df.merge(truth, on="id", suffixes=("", "_t"))
    assert (merged["pt_root_id"] == merged["pt_root_id_t"]).all()
    assert (merged["pt_position_y"] == merged["pt_position_y_t"]).all()


def test_reference_table_join_like_the_server(client, emulator):
    df = client.materialize.query_table(CT, split_positions=True)
    nucleus = emulator.ground_truth(1300, NUC).set_index("id")
    types = emulator.ground_truth(1300, CT)
    assert len(df) == len(types)
    assert {"id", "id_ref", "target_id", "created_ref", "valid_ref", "pt_root_id"} <= set(df)
    assert "superceded_id" not in df and "superceded_id_ref" not in df
    assert (df["id_ref"] == df["target_id"]).all()
    expected_roots = nucleus.loc[df["target_id"].to_numpy(), "pt_root_id"].to_numpy()
    assert (df["pt_root_id"].to_numpy() == expected_roots).all()
    assert df["cell_type"].dtype == "string"


def test_filter_in_and_not_in(client, emulator):
    truth = emulator.ground_truth(1300, NUC)
    roots = truth["pt_root_id"][truth["pt_root_id"] > 0].iloc[:37].tolist()
    got = client.materialize.query_table(NUC, filter_in_dict={"pt_root_id": roots})
    assert sorted(got["pt_root_id"]) == sorted(truth["pt_root_id"][truth["pt_root_id"].isin(roots)])
    ids = truth["id"].iloc[:100].tolist()
    rest = client.materialize.query_table(NUC, filter_out_dict={"id": ids})
    assert len(rest) == len(truth) - 100
    assert not rest["id"].isin(ids).any()


def test_filter_equal_on_reference_table(client, emulator):
    got = client.materialize.query_table(CT, filter_equal_dict={"cell_type": "23P"})
    truth = emulator.ground_truth(1300, CT)
    assert len(got) == int((truth["cell_type"] == "23P").sum()) > 0
    assert (got["cell_type"] == "23P").all()


def test_filter_in_on_joined_root_id(client, emulator):
    nucleus = emulator.ground_truth(1300, NUC)
    roots = nucleus["pt_root_id"][nucleus["pt_root_id"] > 0].iloc[:50].tolist()
    got = client.materialize.query_table(CT, filter_in_dict={"pt_root_id": roots})
    assert len(got) > 0
    assert got["pt_root_id"].isin(roots).all()


def test_select_columns_brings_supervoxel_with_root(client):
    got = client.materialize.query_table(
        "synapses_pni_2", select_columns=["post_pt_root_id", "size"], limit=50
    )
    assert list(got.columns) == ["size", "post_pt_supervoxel_id", "post_pt_root_id"]


def test_select_a_point_column_by_its_name(client):
    got = client.materialize.query_table(
        "synapses_pni_2", select_columns=["id", "ctr_pt_position"], limit=5, split_positions=True
    )
    assert list(got.columns) == [
        "id",
        "ctr_pt_position_x",
        "ctr_pt_position_y",
        "ctr_pt_position_z",
    ]


def test_limit_and_offset_page_the_table(client, emulator):
    first = client.materialize.query_table(NUC, limit=40)
    second = client.materialize.query_table(NUC, limit=40, offset=40)
    assert len(first) == len(second) == 40
    assert not set(first["id"]) & set(second["id"])


def test_row_cap_cuts_results_and_sends_the_warning_header(emulator):
    emulator.server.row_cap = 123
    url = (
        f"{emulator.url}/materialize/api/v3/datastack/{emulator.datastack}/version/1300/"
        f"table/{NUC}/query?return_pyarrow=True&arrow_format=True&split_positions=True"
    )
    r = requests.post(url, json={}, timeout=30)
    assert r.headers["Warning"] == '201 - "Limited query to 123 rows'
    assert r.headers["Content-Type"] == "data.arrow"
    import pyarrow as pa

    assert pa.ipc.open_stream(r.content).read_all().num_rows == 123
    small = requests.post(url, json={"filter_in_dict": {NUC: {"id": [1]}}}, timeout=30)
    assert "Warning" not in small.headers


def test_row_cap_through_caveclient_is_silent_truncation(emulator, caplog):
    emulator.server.row_cap = 500
    c = CAVEclient(emulator.datastack, server_address=emulator.url, write_server_cache=False)
    with caplog.at_level("WARNING", logger="caveclient"):
        df = c.materialize.query_table(NUC, materialization_version=1300)
    assert len(df) == 500 < emulator.n_nuclei
    assert any("Limited query to 500 rows" in r.getMessage() for r in caplog.records)


def test_annotation_count(client, emulator):
    assert client.materialize.get_annotation_count("synapses_pni_2") == len(
        emulator.tables(1300).get("synapses_pni_2")
    )


def test_expired_version_and_unknown_table_are_refused(client):
    with pytest.raises(requests.HTTPError, match="410"):
        client.materialize.query_table(NUC, materialization_version=1078)
    with pytest.raises(requests.HTTPError, match="404"):
        client.materialize.query_table("no_such_table")


def test_roots_change_between_versions(emulator):
    early = emulator.ground_truth(943, NUC).set_index("id")["pt_root_id"]
    late = emulator.ground_truth(1718, NUC).set_index("id")["pt_root_id"]
    changed = (early != late).mean()
    assert 0.02 < changed < 0.5
    assert pd.Index(early.index).equals(pd.Index(late.index))


def test_latency_is_added_to_every_request(emulator):
    from microns_assets.emulator import Faults

    emulator.server.faults = Faults(latency_ms=250)
    start = time.perf_counter()
    requests.get(f"{emulator.url}/info/version", timeout=10).raise_for_status()
    assert time.perf_counter() - start >= 0.25


def test_queries_are_served_concurrently(emulator):
    from microns_assets.emulator import Faults

    emulator.server.faults = Faults(latency_ms=300)
    url = (
        f"{emulator.url}/materialize/api/v3/datastack/{emulator.datastack}/version/1300/"
        f"table/{NUC}/query"
    )
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: requests.post(url, json={"limit": 5}, timeout=30), range(4)))
    assert emulator.server.stats.queries == 4
    assert emulator.server.stats.max_in_flight >= 2  # answered side by side, not in turn
