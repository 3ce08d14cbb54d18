"""Extra CAVE tables as `cave_extra/<table>`: chosen by setting or file, downloaded verified."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from upath import UPath

import microns_assets
from microns_assets.analysis import merge_table
from microns_assets.cave.complete import fetch_verified
from microns_assets.config.versions import load_versions_config, parse_versions_config
from microns_assets.emulator.catalog import (
    ALT_POINTS,
    COLUMN_TYPES,
    EXTRA_TABLES,
    NUCLEUS,
    SYNAPSES,
    TARGET_PREDICTIONS,
    TARGET_STRUCTURE,
)
from microns_assets.extra_tables import CACHE_NAME, extra_tables, requested_extra_tables
from microns_assets.materialize.summary import version_summary
from microns_assets.partitions import VERSION_DIM
from microns_assets.raw.extra import build_extra_assets, extra_key
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.settings import Settings, SettingsError
from microns_assets_tests.conftest import connect, failure_messages

CONFIG = load_versions_config()


def _materialize(emulator, instance, data_dir, version: int):
    instance.add_dynamic_partitions(VERSION_DIM, [str(version)])
    return dg.materialize(
        build_extra_assets(EXTRA_TABLES),
        partition_key=str(version),
        resources={
            "cave": CaveResource(datastack=emulator.datastack, server_address=emulator.url),
            "io_manager": ParquetIOManager(data_dir=str(data_dir), datastack=emulator.datastack),
        },
        instance=instance,
        raise_on_error=False,
    )


def _metadata(result) -> dict[str, dict]:
    return {
        e.materialization.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def test_extra_tables_equal_their_server_counts_one_of_them_over_twice_the_cap(
    emulator, dagster_instance, tmp_path
):
    cap = emulator.server.row_cap
    result = _materialize(emulator, dagster_instance, tmp_path, 1300)
    assert result.success, failure_messages(result)
    meta = _metadata(result)
    assert set(meta) == set(EXTRA_TABLES)
    for table in EXTRA_TABLES:
        truth = emulator.ground_truth(1300, table)
        stored = microns_assets.load(
            f"cave_extra/{table}", 1300, datastack=emulator.datastack, data_dir=tmp_path
        )
        assert len(stored) == len(truth) == meta[table]["server_count"].value
        assert sorted(stored["id"]) == sorted(truth["id"])
        assert stored.attrs["provenance"]["cave_table"] == table
    big = meta[TARGET_STRUCTURE]
    assert big["server_count"].value > 2 * cap  # over twice the server's row cap ...
    assert big["capped_queries_split"].value >= 1 and big["queries"].value >= 3  # ... split
    # the reference table comes joined with the nucleus table, as the server sends it
    types = microns_assets.load(
        f"cave_extra/{COLUMN_TYPES}", 1300, datastack=emulator.datastack, data_dir=tmp_path
    )
    nuclei = emulator.ground_truth(1300, NUCLEUS).set_index("id")
    assert (types["id_ref"] == types["target_id"]).all()
    expected_roots = nuclei.loc[types["target_id"].to_numpy(np.int64), "pt_root_id"]
    assert types["pt_root_id"].tolist() == expected_roots.tolist()
    # 64-bit root ids of the plain table exactly as the server holds them
    points = microns_assets.load(
        f"cave_extra/{ALT_POINTS}", 1300, datastack=emulator.datastack, data_dir=tmp_path
    )
    truth = emulator.ground_truth(1300, ALT_POINTS).set_index("id")
    assert points["pt_root_id"].dtype == "Int64"
    assert (points.set_index("id")["pt_root_id"] == truth["pt_root_id"]).all()
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2 * len(EXTRA_TABLES) and all(c.passed for c in checks)


def test_a_table_the_version_lacks_is_observed_and_not_stored(emulator, dagster_instance, tmp_path):
    result = _materialize(emulator, dagster_instance, tmp_path, 943)  # before the per-synapse table
    assert result.success, failure_messages(result)
    assert set(_metadata(result)) == {COLUMN_TYPES, ALT_POINTS}
    observed = dagster_instance.fetch_observations(extra_key(TARGET_STRUCTURE), limit=5).records
    assert [r.partition_key for r in observed] == ["943"]
    assert observed[0].asset_observation.metadata["present"].value is False
    assert (
        not (UPath(tmp_path) / emulator.datastack / "v943" / "cave_extra")
        .joinpath(f"{TARGET_STRUCTURE}.parquet")
        .exists()
    )
    with pytest.raises(FileNotFoundError, match="cave_extra/synapse_target_structure"):
        microns_assets.load(
            f"cave_extra/{TARGET_STRUCTURE}", 943, datastack=emulator.datastack, data_dir=tmp_path
        )
    # the command's summary lists it as not stored, saying why, beside the stored ones
    cave = CaveResource(datastack=emulator.datastack, server_address=emulator.url)
    defs = dg.Definitions(assets=build_extra_assets(EXTRA_TABLES), resources={"cave": cave})
    summary = version_summary(dagster_instance, "943", defs.resolve_asset_graph())
    assert summary[f"cave_extra/{TARGET_STRUCTURE}"] == (
        "not stored",
        f"{TARGET_STRUCTURE} is not a table of v943: nothing stored for it",
        0,
    )
    assert summary[f"cave_extra/{COLUMN_TYPES}"][0].endswith(" rows")


def test_the_setting_overrides_the_file_and_is_checked():
    text = (
        "extra_tables: [baylor_log_reg_cell_type_coarse_v1]\n"
        "versions:\n  1300:\n    tables: {nucleus: nucleus_detection_v0, cell_types: null, "
        "cell_type_corrections: null, proofreading: null, brain_areas: null, "
        "coregistration: null, functional_properties: null}\n"
    )
    config = parse_versions_config(text, "test.yaml")
    assert requested_extra_tables(config, {}) == ("baylor_log_reg_cell_type_coarse_v1",)
    env = {"MICRONS_EXTRA_TABLES": " b_table, a_table ,b_table"}
    assert requested_extra_tables(config, env) == ("b_table", "a_table")
    settings = Settings("https://unused.example.org", "minnie65_public", "/unused")
    assert extra_tables(config, settings, env) == ("a_table", "b_table")
    with pytest.raises(SettingsError, match="not table names: 'bad-name'"):
        requested_extra_tables(config, {"MICRONS_EXTRA_TABLES": "ok,bad-name"})
    with pytest.raises(SettingsError, match=r"\['nucleus_detection_v0'\] back a role already"):
        extra_tables(config, settings, {"MICRONS_EXTRA_TABLES": "nucleus_detection_v0"})


def test_all_lists_the_server_once_then_reads_its_cache(emulator, tmp_path):
    settings = Settings(emulator.url, emulator.datastack, str(tmp_path))
    env = {"MICRONS_EXTRA_TABLES": "all"}
    first = extra_tables(CONFIG, settings, env)
    assert first == tuple(sorted(EXTRA_TABLES))  # no role table, not the synapse table
    cache = json.loads((tmp_path / emulator.datastack / CACHE_NAME).read_text())
    assert cache["server"] == emulator.url and cache["synapse_table"] == "synapses_pni_2"
    requests = emulator.server.stats.requests
    assert extra_tables(CONFIG, settings, env) == first
    assert emulator.server.stats.requests == requests  # answered from the cache
    embedded = Settings("embedded", emulator.datastack, str(tmp_path / "other"))
    assert extra_tables(CONFIG, embedded, env) == first  # the emulator's catalog, not started
    assert not (tmp_path / "other").exists()


def test_merge_table_joins_reference_and_plain_tables_onto_units():
    units = pd.DataFrame(
        {
            "nucleus_id": pd.array([10, 11, 12, 13], dtype="Int64"),
            "pt_root_id": pd.array([900, 901, 0, 903], dtype="Int64"),
            "layer": ["L2/3", "L4", "L5", "L6"],
        }
    )
    reference = pd.DataFrame(
        {"target_id": pd.array([12, 10], dtype="Int64"), "mtype": ["L5a", "L2a"]}
    )
    merged = merge_table(units, reference, ["mtype"])
    assert merged["mtype"].tolist()[::2] == ["L2a", "L5a"] and merged["mtype"][1:4:2].isna().all()
    assert merged["nucleus_id"].tolist() == [10, 11, 12, 13]  # every unit, in order
    plain = pd.DataFrame({"pt_root_id": pd.array([903], dtype="Int64"), "tag": ["soma"]})
    inner = merge_table(units, plain, "tag", on="pt_root_id", how="inner")
    assert inner["nucleus_id"].tolist() == [13] and inner["tag"].tolist() == ["soma"]
    twice = pd.concat([reference, reference])
    with pytest.raises(ValueError, match=r"appear more than once.*drop_duplicates"):
        merge_table(units, twice, ["mtype"])
    with pytest.raises(ValueError, match="exist in units already"):
        merge_table(units, reference.assign(layer="x"), ["layer"])
    with pytest.raises(ValueError, match="no column"):
        merge_table(units, reference, ["nope"])


def test_extra_tables_of_an_expired_version_come_from_its_dumps(
    emulator, dagster_instance, tmp_path
):
    result = _materialize(emulator, dagster_instance, tmp_path, 1181)  # expired, before 1300
    assert result.success, failure_messages(result)
    assert emulator.server.stats.queries == 0  # no query: the API answers 410 for 1181
    meta = _metadata(result)
    assert set(meta) == {COLUMN_TYPES, ALT_POINTS}
    for table in (COLUMN_TYPES, ALT_POINTS):
        stored = microns_assets.load(
            f"cave_extra/{table}", 1181, datastack=emulator.datastack, data_dir=tmp_path
        )
        assert sorted(stored["id"]) == sorted(emulator.ground_truth(1181, table)["id"])
        assert stored.attrs["provenance"]["source"] == "static"
        assert meta[table]["source"].value == "static"
    assert "pt_root_id" in microns_assets.load(  # the reference table, joined locally
        f"cave_extra/{COLUMN_TYPES}", 1181, datastack=emulator.datastack, data_dir=tmp_path
    )
    # the per-synapse tables appeared in 1300: its dump has no such files, so they are absent
    observed = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    assert {e.asset_key for e in observed} == {
        extra_key(TARGET_STRUCTURE),
        extra_key(TARGET_PREDICTIONS),
    }


def _observations(result) -> dict[str, dict]:
    return {
        e.asset_key.path[-1]: e.event_specific_data.asset_observation.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    }


def test_an_expired_reference_to_the_synapse_table_is_joined_to_synapses(
    emulator, dagster_instance, tmp_path
):
    result = _materialize(emulator, dagster_instance, tmp_path, 1412)  # expired
    assert result.success, failure_messages(result)
    assert set(_metadata(result)) == set(EXTRA_TABLES) and not _observations(result)
    stored = microns_assets.load(
        f"cave_extra/{TARGET_PREDICTIONS}", 1412, datastack=emulator.datastack, data_dir=tmp_path
    )
    assert stored.attrs["provenance"]["joined_to"] == SYNAPSES
    emulator.server.revived.add(1412)  # the live API's answer for the version, to compare with
    live = fetch_verified(connect(emulator), 1412, TARGET_PREDICTIONS)[0].frame
    by_id = {"by": "id", "ignore_index": True}
    pd.testing.assert_frame_equal(stored.sort_values(**by_id), live.sort_values(**by_id))


def test_an_expired_reference_table_whose_target_no_current_version_names_is_not_stored(
    emulator, dagster_instance, tmp_path
):
    emulator.server.unpublished = {1300, 1621, 1718, 1822}  # no current version lists it
    result = _materialize(emulator, dagster_instance, tmp_path, 1412)
    assert result.success, failure_messages(result)
    assert set(_metadata(result)) == set(EXTRA_TABLES) - {TARGET_PREDICTIONS}
    note = _observations(result)[TARGET_PREDICTIONS]
    assert note["present"].value is False
    assert "no current version of CAVE names the table it references" in note["note"].value
    assert not any((UPath(tmp_path) / emulator.datastack / "v1412").rglob(f"{TARGET_PREDICTIONS}*"))
