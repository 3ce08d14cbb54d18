"""Raw role assets materialized from the emulator into a temp dir and a real temp instance."""

from __future__ import annotations

import json
import subprocess
import sys

import dagster as dg
import pytest
from upath import UPath

from microns_assets.catalogue import ROLE
from microns_assets.config import ROLES, load_versions_config
from microns_assets.emulator import Emulator, Faults
from microns_assets.partitions import VERSION_DIM
from microns_assets.raw.assets import raw_assets, role_key
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.storage import read_frame
from microns_assets_tests.conftest import DELETED_NUCLEI, failure_messages
from microns_assets_tests.materialize.cli_helpers import clean_env


@pytest.fixture
def instance(dagster_instance):
    dagster_instance.add_dynamic_partitions(VERSION_DIM, ["117", "1078", "1300", "1718", "1999"])
    return dagster_instance


def resources(emulator, data_dir, **cave):
    cave = {"http_retries": 6, "backoff_factor_s": 0.01, **cave}
    return {
        "cave": CaveResource(datastack=emulator.datastack, server_address=emulator.url, **cave),
        "io_manager": ParquetIOManager(data_dir=str(data_dir), datastack=emulator.datastack),
    }


def materialize(emulator, instance, data_dir, version, **cave):
    return dg.materialize(
        raw_assets,
        partition_key=str(version),
        resources=resources(emulator, data_dir, **cave),
        instance=instance,
        raise_on_error=False,
    )


def by_role(result) -> dict:
    return {
        e.materialization.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


@pytest.mark.parametrize("version", [1300, 1718])
def test_each_role_gets_its_versions_table(emulator, instance, tmp_path, version):
    emulator.server.row_cap = 700  # well below the nucleus table: must split, never truncate
    result = materialize(emulator, instance, tmp_path, version, row_cap=700)
    assert result.success
    meta = by_role(result)
    assert set(meta) == set(ROLES)
    cfg = load_versions_config().get(version)
    for role in ROLES:
        table = cfg.table_for(role)
        path = UPath(tmp_path) / emulator.datastack / f"v{version}" / "cave_raw" / f"{role}.parquet"
        frame = read_frame(path)
        assert meta[role]["path"].value == str(path)
        assert meta[role]["dagster/row_count"].value == len(frame)
        prov = frame.attrs["provenance"]
        assert meta[role]["provenance"].value == prov  # same facts in the UI and in the file
        assert prov["version"] == version and prov["datastack"] == emulator.datastack
        assert prov["synthetic"] is True and prov["packages"]["caveclient"]
        if table is None:
            assert meta[role]["present"].value is False and len(frame) == 0
            assert set(ROLE[role].columns) <= set(frame.columns)
            continue
        truth = emulator.ground_truth(version, table)
        assert meta[role]["cave_table"].value == table == prov["cave_table"]
        assert sorted(frame["id"]) == sorted(truth["id"])  # complete, no duplicates
        assert "dagster/row_count" in meta[role] and "preview" in meta[role]
        assert meta[role]["server_count"].value == len(truth)
    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {(role, name) for role in ROLES for name in ("unique_ids", "complete")}
    assert all(e.passed for e in checks.values())


def test_a_run_lists_the_versions_tables_once_and_counts_each_table_once(
    emulator, instance, tmp_path
):
    emulator.server.stats.reset()
    assert materialize(emulator, instance, tmp_path, 1300).success
    paths = emulator.server.stats.paths
    base = f"/materialize/api/v2/datastack/{emulator.datastack}/version/1300"
    assert paths[f"{base}/tables"] == 1  # not once per role
    assert paths[f"/materialize/api/v3/datastack/{emulator.datastack}/version/1300"] == 1
    present = [r for r in ROLES if load_versions_config().get(1300).table_for(r) is not None]
    queries = sum(n for p, n in paths.items() if p.endswith("/query"))
    assert queries == 2 * len(present) > 0  # each table: its rows and its count, nothing more


def test_a_table_the_server_loses_rows_of_is_never_stored(emulator, instance, tmp_path):
    emulator.server.faults = Faults(lose_rate=0.05, seed=3)  # rows vanish, no error, no Warning
    result = materialize(emulator, instance, tmp_path, 1300)
    assert emulator.server.stats.rows_lost > 0
    assert not result.success
    message = failure_messages(result)
    assert "rows" in message and "the server counts" in message
    assert "Nothing was stored" in message
    stored = {
        e.materialization.asset_key.path[-1]: e.materialization
        for e in result.get_asset_materialization_events()
    }
    folder = UPath(tmp_path) / emulator.datastack / "v1300" / "cave_raw"
    assert len(stored) < len(ROLES)  # the step stopped at the first table that lost rows
    for role in ROLES:  # whatever was stored is complete; nothing else is on disk
        path = folder / f"{role}.parquet"
        assert path.exists() == (role in stored), role
        if role in stored and stored[role].metadata["present"].value:
            table = stored[role].metadata["cave_table"].value
            assert len(read_frame(path)) == len(emulator.ground_truth(1300, table)), role


def test_version_differences_reach_the_files(emulator, instance, tmp_path):
    for version in (1300, 1718):
        assert materialize(emulator, instance, tmp_path, version).success
    base = UPath(tmp_path) / emulator.datastack
    f1300 = read_frame(base / "v1300/cave_raw/functional_properties.parquet")
    f1718 = read_frame(base / "v1718/cave_raw/functional_properties.parquet")
    assert f1300.attrs["provenance"]["cave_table"] == "functional_properties_v3_bcm"
    assert f1718.attrs["provenance"]["cave_table"] == "digital_twin_properties_bcm_coreg_v4"
    assert f1300["pref_ori"].max() <= 3.1416 < f1718["pref_ori"].max()  # radians vs degrees
    assert len(read_frame(base / "v1300/cave_raw/cell_type_corrections.parquet")) == 0
    assert len(read_frame(base / "v1718/cave_raw/cell_type_corrections.parquet")) > 0


def test_int64_root_ids_are_stored_exactly(emulator, instance, tmp_path):
    assert materialize(emulator, instance, tmp_path, 1300).success
    stored = read_frame(UPath(tmp_path) / emulator.datastack / "v1300/cave_raw/nucleus.parquet")
    truth = emulator.ground_truth(1300, "nucleus_detection_v0")
    merged = stored.merge(truth, on="id", suffixes=("", "_truth"))
    assert len(merged) == len(truth)
    assert stored["pt_root_id"].dtype == "Int64"
    assert (merged["pt_root_id"] == merged["pt_root_id_truth"]).all()
    assert merged["pt_root_id"].max() > 2**59  # ids far beyond float64's exact range


def test_survives_faults(emulator, instance, tmp_path):
    emulator.server.faults = Faults(fail_rate=0.2, drop_rate=0.2, seed=3)
    result = materialize(emulator, instance, tmp_path, 1300)
    assert result.success
    assert by_role(result)["nucleus"]["dagster/row_count"].value == emulator.n_nuclei
    assert emulator.server.stats.faults > 0


def test_an_expired_version_is_read_from_its_static_dumps(emulator, instance, tmp_path):
    result = materialize(emulator, instance, tmp_path, 1078)
    assert result.success
    assert emulator.server.stats.queries == 0  # no table query: the API answers 410 for it
    stored = read_frame(
        UPath(tmp_path) / emulator.datastack / "v1078" / "cave_raw" / "cell_types.parquet"
    )
    prov = stored.attrs["provenance"]
    assert prov["source"] == "static" and prov["joined_to"] == "nucleus_detection_v0"
    [meta] = [
        m.metadata
        for m in result.asset_materializations_for_node("download_raw_tables")
        if m.asset_key == role_key("cell_types")
    ]
    assert meta["source"].value == "static" and meta["dump_bytes"].value > 0


def test_a_missing_dump_file_fails_naming_it(emulator, instance, tmp_path, monkeypatch):
    monkeypatch.setenv("MICRONS_STATIC_BASE", f"{emulator.url}/static/elsewhere")
    monkeypatch.setenv("MICRONS_STATIC_DIR", str(tmp_path / "static"))  # nothing downloaded yet
    result = materialize(emulator, instance, tmp_path, 1078)
    assert not result.success
    message = failure_messages(result)
    assert "HTTP 404: the static dump has no such file" in message
    assert "/static/elsewhere/v1078/" in message
    raw = UPath(tmp_path) / emulator.datastack / "v1078" / "cave_raw"
    assert not (raw / "nucleus.parquet").exists()  # only absent roles (empty) may be stored


def test_version_the_server_does_not_list_fails_fast(emulator, instance, tmp_path):
    result = materialize(emulator, instance, tmp_path, 1999)
    assert not result.success
    assert "Available versions" in failure_messages(result)
    assert emulator.server.stats.queries == 0  # nothing was downloaded


def test_a_table_missing_from_an_inherited_map_fails_naming_what_to_add(
    emulator, instance, tmp_path, monkeypatch
):
    """A version newer than the file inherits its newest map; a renamed table is an error."""
    packaged = (UPath(__file__).parents[2] / "microns_assets/config/versions.yaml").read_text()
    without_1822 = packaged[: packaged.index("  1822:\n")]
    assert "1718:" in without_1822 and "1822:" not in without_1822
    renamed = without_1822.replace(
        "proofreading: proofreading_status_and_strategy\n",
        "proofreading: proofreading_status_and_strategy_v2\n",
    )
    assert renamed != without_1822
    instance.add_dynamic_partitions(VERSION_DIM, ["1822"])
    inherited, renamed_file = tmp_path / "inherited.yaml", tmp_path / "renamed.yaml"
    inherited.write_text(without_1822)  # 1822 inherits 1718's map, whose tables it has
    renamed_file.write_text(renamed)

    monkeypatch.setenv("MICRONS_VERSIONS_FILE", str(inherited))
    result = materialize(emulator, instance, tmp_path / "inherited", 1822)
    assert result.success, failure_messages(result)
    assert by_role(result)["proofreading"]["dagster/row_count"].value > 0

    monkeypatch.setenv("MICRONS_VERSIONS_FILE", str(renamed_file))
    result = materialize(emulator, instance, tmp_path / "renamed", 1822)
    assert not result.success
    messages = failure_messages(result)
    assert "v1822 has no table 'proofreading_status_and_strategy_v2' for role 'proofreading'" in (
        messages
    )
    assert "inherits the table map of v1718" in messages
    assert "`proofreading: null`" in messages
    assert "proofreading_status_and_strategy," in messages  # the version's tables, listed
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    raw = UPath(tmp_path) / "renamed" / emulator.datastack / "v1822" / "cave_raw"
    assert not (raw / "proofreading.parquet").exists()


def test_bad_token_fails_without_retries(emulator, instance, tmp_path, monkeypatch):
    emulator.server.token = "right"
    monkeypatch.setenv("CAVE_TOKEN", "wrong")
    result = materialize(emulator, instance, tmp_path, 1300)
    assert not result.success
    assert "CAVE_TOKEN" in failure_messages(result)
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []


def test_token_from_environment_is_used(emulator, instance, tmp_path, monkeypatch):
    emulator.server.token = "right"
    monkeypatch.setenv("CAVE_TOKEN", "right")
    assert materialize(emulator, instance, tmp_path, 117).success


def test_absent_roles_in_an_early_version(emulator, instance, tmp_path):
    result = materialize(emulator, instance, tmp_path, 117)
    assert result.success
    meta = by_role(result)
    assert meta["nucleus"]["present"].value is True
    assert [r for r in ROLES if meta[r]["present"].value is False] == [
        r for r in ROLES if r != "nucleus"
    ]


def _with_retry_policy(tmp_path, monkeypatch, version: int, max_retries: int, delay_s: float):
    """The packaged versions file with a `retry` block for `version`, as MICRONS_VERSIONS_FILE."""
    packaged = (UPath(__file__).parents[2] / "microns_assets/config/versions.yaml").read_text()
    block = f"    retry:\n      max_retries: {max_retries}\n      delay_s: {delay_s}\n"
    custom = packaged.replace(f"  {version}:\n", f"  {version}:\n{block}")
    assert custom != packaged
    versions_file = tmp_path / "versions.yaml"
    versions_file.write_text(custom)
    monkeypatch.setenv("MICRONS_VERSIONS_FILE", str(versions_file))


def test_unavailable_server_is_retried_with_the_versions_policy(
    emulator, instance, tmp_path, monkeypatch
):
    _with_retry_policy(tmp_path, monkeypatch, 1300, max_retries=2, delay_s=0.1)
    emulator.server.faults = Faults(fail_rate=1.0)
    result = dg.materialize(
        raw_assets,
        selection=[role_key("nucleus")],
        partition_key="1300",
        resources=resources(emulator, tmp_path, http_retries=0, call_attempts=1),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retried) == 2  # max_retries of version 1300 in the custom file
    messages = failure_messages(result)
    assert "kept failing" in messages
    # the last failure says the retries are spent, not that another is coming
    assert "The step ran 3 time(s); the version's retry policy allows 2 retries" in messages
    assert "will try again" not in messages
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    warnings = [m for m in logs if m.startswith("CAVE unavailable")]
    assert len(warnings) == 2
    assert "retry 1 of 2" in warnings[0] and "retry 2 of 2" in warnings[1]


#: A run the way the UI's launchpad starts it: the code location's job, in-process executor,
#: with the run config given in argv[1] and the failed steps' errors printed.
RETRYLESS_RUN = """
import json, sys
import dagster as dg
from microns_assets_tests.distributed import celery_job
with dg.DagsterInstance.get() as instance:
    instance.add_dynamic_partitions("mat_version", ["1300"])
    result = dg.execute_job(
        dg.reconstructable(celery_job.raw_tables_job), instance, run_config=json.loads(sys.argv[1]),
        tags={"dagster/partition": "1300"}, asset_selection=[dg.AssetKey(sys.argv[2].split("/"))],
        raise_on_error=False)
    print("SUCCESS" if result.success else "FAILED")
    for event in result.all_events:
        print("EVENT", event.event_type_value)
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            print("ERROR", error.message)
            error = error.cause
    for entry in instance.all_logs(result.run_id):
        print("LOG", entry.user_message)
"""


def test_run_config_without_retries_fails_at_once_and_says_so(emulator, emulator_cache, tmp_path):
    """Retries off in the executor's config: no promise of a retry; the failure says why."""
    emulator.server.faults = Faults(fail_rate=1.0)
    env = {
        **clean_env(emulator_cache),
        "DAGSTER_HOME": str(tmp_path),
        "MICRONS_CAVE_SERVER": emulator.url,
        "MICRONS_DATASTACK": emulator.datastack,
        "MICRONS_DATA_DIR": str(tmp_path / "data"),
    }
    run_config = {
        "execution": {"config": {"retries": {"disabled": {}}}},
        "resources": {"cave": {"config": {"http_retries": 0, "call_attempts": 1}}},
    }
    nucleus = "/".join(role_key("nucleus").path)
    out = subprocess.run(
        [sys.executable, "-c", RETRYLESS_RUN, json.dumps(run_config), nucleus],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "FAILED" in out.stdout
    assert "EVENT STEP_FAILURE" in out.stdout
    assert "EVENT STEP_UP_FOR_RETRY" not in out.stdout
    retries = load_versions_config().get(1300).retry.max_retries
    assert f"retry policy allows {retries} retries, but this run's config disables them" in (
        out.stdout
    )
    assert "kept failing" in out.stdout  # what failed, as before
    assert "RetryRequested but retries are disabled" not in out.stdout  # ours, not Dagster's
    assert "the step runs again" not in out.stdout


def test_an_incomplete_dump_download_is_announced_as_such(
    emulator, emulator_cache, instance, tmp_path, monkeypatch
):
    """An expired version whose dump server cuts every body: the retry names the dump, not CAVE."""
    _with_retry_policy(tmp_path, monkeypatch, 1412, max_retries=1, delay_s=0.01)
    instance.add_dynamic_partitions(VERSION_DIM, ["1412"])
    with Emulator(scale="small", seed=0, cache_dir=emulator_cache) as dumps:
        dumps.server.faults = Faults(drop_rate=1.0)  # every dump body cut halfway
        result = materialize(
            emulator, instance, tmp_path, 1412,
            http_retries=1, static_base=f"{dumps.url}/static/{emulator.datastack}",
            static_dir=str(tmp_path / "dumps"),
        )  # fmt: skip
        assert dumps.server.stats.faults > 0
    assert not result.success
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    warned = [m for m in logs if "the step runs again" in m]
    assert len(warned) == 1 and warned[0].startswith("Static dump download incomplete; ")
    assert "/static/" in warned[0] and "incomplete after 1 attempts" in warned[0]
    assert not [m for m in logs if "CAVE unavailable" in m]
    assert "The step ran 2 time(s)" in failure_messages(result)


def materialize_embedded(instance, data_dir, role: str, datastack: str):
    """Materialize one raw role with the CAVE server set to `embedded`."""
    return dg.materialize(
        raw_assets,
        selection=[role_key(role)],
        partition_key="1300",
        resources={
            "cave": CaveResource(server_address="embedded", datastack=datastack),
            "io_manager": ParquetIOManager(data_dir=str(data_dir), datastack=datastack),
        },
        instance=instance,
        raise_on_error=False,
    )


def test_embedded_server_refuses_a_real_datastack_name(instance, tmp_path):
    result = materialize_embedded(instance, tmp_path, "nucleus", "minnie65_public")
    assert not result.success
    assert "serves only 'minnie65_synthetic'" in failure_messages(result)
    assert not (UPath(tmp_path) / "minnie65_public").exists()


def test_embedded_server_runs_the_emulator_in_process(
    instance, tmp_path, emulator_cache, monkeypatch
):
    monkeypatch.setenv("MICRONS_EMULATOR_CACHE", str(emulator_cache))
    result = materialize_embedded(instance, tmp_path, "cell_types", "minnie65_synthetic")
    assert result.success
    path = UPath(tmp_path) / "minnie65_synthetic/v1300/cave_raw/cell_types.parquet"
    frame = read_frame(path)
    assert len(frame) > 0 and frame.attrs["provenance"]["server_setting"] == "embedded"


def test_orphan_annotations_are_reported_and_the_table_passes_its_checks(
    orphan_emulator, instance, tmp_path
):
    result = materialize(orphan_emulator, instance, tmp_path, 1300)
    assert result.success, failure_messages(result)
    meta = by_role(result)
    cell_types = meta["cell_types"]
    table = cell_types["cave_table"].value
    stored = orphan_emulator.ground_truth(1300, table)
    assert cell_types["server_count"].value == len(stored)
    assert cell_types["orphans_dropped_by_join"].value == DELETED_NUCLEI
    assert cell_types["dagster/row_count"].value == len(stored) - DELETED_NUCLEI
    assert meta["nucleus"]["orphans_dropped_by_join"].value == 0
    complete = {
        e.asset_key.path[-1]: e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "complete"
    }
    assert complete["cell_types"].passed
    assert complete["cell_types"].metadata["orphans_dropped_by_join"].value == DELETED_NUCLEI
    assert f"less {DELETED_NUCLEI} orphan annotations" in complete["cell_types"].description
