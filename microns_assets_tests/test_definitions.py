"""The code location: loads offline and quickly, with the keys, groups and resources we promise."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dagster as dg
import pytest

from microns_assets.config import ROLES
from microns_assets.settings import Settings, SettingsError, poll_minutes_from_env

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: any network call at load would fail


#: Imported only where they are used (a run, a plot, a matrix), never when definitions load.
LAZY_MODULES = ("scipy", "matplotlib", "caveclient", "s3fs", "celery", "boto3")


def test_definitions_load_offline_in_a_fresh_process():
    env = {**os.environ, "MICRONS_CAVE_SERVER": UNREACHABLE}
    # CPU seconds, not wall time: on a loaded 2-core CI machine the same load waits for the
    # CPU (6.5-7.9 s wall measured beside the other test worker). Idle here: 3.4-3.8 s CPU,
    # of which importing dagster is ~1.3 s and pandas ~0.8 s.
    code = (
        "import sys, time; t = time.process_time(); import microns_assets.definitions as d; "
        "d.defs.resolve_asset_graph(); print(time.process_time() - t); "
        f"print(','.join(m for m in {LAZY_MODULES!r} if m in sys.modules))"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    cpu, imported = out.stdout.splitlines()
    assert imported == ""  # no heavy import (or CAVE client) when definitions load
    assert float(cpu) < 6
    assert time.perf_counter() - start < 30  # and nothing waits on the network


def test_dagster_validates_the_code_location():
    env = {**os.environ, "MICRONS_CAVE_SERVER": UNREACHABLE}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "microns_assets.definitions",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]


def test_raw_assets_keys_groups_and_partitions():
    from microns_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    raw = {k for k in graph.get_all_asset_keys() if k.path[0] == "cave_raw"}
    assert raw == {dg.AssetKey(["cave_raw", r]) for r in ROLES}
    for key in raw:
        node = graph.get(key)
        assert node.group_name == "cave_raw"
        assert node.partitions_def.name == "mat_version"
        assert node.pools == {"cave"}


def test_units_assets_depend_on_every_raw_role_and_carry_checks():
    from microns_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in (dg.AssetKey("units"), dg.AssetKey("layer_segments")):
        node = graph.get(key)
        assert node.group_name == "units"
        assert node.partitions_def.name == "mat_version"
        assert node.parent_keys == {dg.AssetKey(["cave_raw", r]) for r in ROLES}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("units", "unique_keys") in checks and (
        "layer_segments",
        "regions_well_formed",
    ) in checks
    assert len(checks) == 25  # 2 per raw role, 6 on units/segments, 3 on chunks, 1 on the roll-up,
    assert ("connectome", "sums_match_synapses") in checks  # and 1 on the connectome
    assert ("synapse_chunks", "matches_server_count") in checks


def test_synapse_assets_partitions_and_lineage():
    from microns_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    chunks = graph.get(dg.AssetKey("synapse_chunks"))
    assert set(chunks.partitions_def.partition_dimension_names) == {"mat_version", "synapse_chunk"}
    assert (
        len(
            chunks.partitions_def.get_partitions_def_for_dimension(
                "synapse_chunk"
            ).get_partition_keys()
        )
        == 32
    )
    assert chunks.parent_keys == {dg.AssetKey("units")}
    assert chunks.pools == {"cave"}
    rollup = graph.get(dg.AssetKey("synapses"))
    assert rollup.partitions_def.name == "mat_version"
    assert rollup.parent_keys == {dg.AssetKey("synapse_chunks"), dg.AssetKey("units")}
    connectome = graph.get(dg.AssetKey("connectome"))  # built by the roll-up's step
    assert connectome.parent_keys == {dg.AssetKey("synapses"), dg.AssetKey("units")}
    assert connectome.partitions_def.name == "mat_version"


def test_settings_defaults_and_embedded_datastack():
    assert Settings.from_env({}).server == "https://global.daf-apis.com"
    assert Settings.from_env({}).datastack == "minnie65_public"
    embedded = Settings.from_env({"MICRONS_CAVE_SERVER": "embedded"})
    assert embedded.datastack == "minnie65_synthetic"
    explicit = Settings.from_env(
        {"MICRONS_DATASTACK": "x", "MICRONS_DATA_DIR": "s3://b/p", "MICRONS_CAVE_SERVER": "u/"}
    )
    assert (explicit.datastack, explicit.data_dir, explicit.server) == ("x", "s3://b/p", "u")


def test_poll_minutes_setting_defaults_and_rejects_what_is_not_whole_minutes():
    assert poll_minutes_from_env({}) == 60
    assert poll_minutes_from_env({"MICRONS_VERSIONS_POLL_MINUTES": " 15 "}) == 15
    for bad in ("0", "-5", "1.5", "hourly", "²"):
        with pytest.raises(SettingsError, match=f"MICRONS_VERSIONS_POLL_MINUTES='{bad}'"):
            poll_minutes_from_env({"MICRONS_VERSIONS_POLL_MINUTES": bad})
    # notebooks read the data settings only: a bad poll value is not their concern
    assert Settings.from_env({"MICRONS_VERSIONS_POLL_MINUTES": "soon"}).datastack


def test_the_version_sensor_polls_as_often_as_the_environment_says():
    code = (
        "from microns_assets.definitions import defs; "
        "print(defs.resolve_sensor_def('cave_versions').minimum_interval_seconds)"
    )
    env = {**os.environ, "MICRONS_CAVE_SERVER": UNREACHABLE}
    run = [sys.executable, "-c", code]
    every_15 = {**env, "MICRONS_VERSIONS_POLL_MINUTES": "15"}
    out = subprocess.run(run, env=every_15, capture_output=True, text=True, check=True)
    assert int(out.stdout) == 15 * 60
    bad = subprocess.run(
        run, env={**env, "MICRONS_VERSIONS_POLL_MINUTES": "soon"}, capture_output=True, text=True
    )
    assert bad.returncode != 0
    assert "MICRONS_VERSIONS_POLL_MINUTES='soon' is not a whole number" in bad.stderr


def test_the_commands_reject_a_bad_poll_setting_without_a_traceback():
    env = {**os.environ, "MICRONS_VERSIONS_POLL_MINUTES": "0"}
    args = [sys.executable, "-m", "microns_assets.cli", "versions", "--server", UNREACHABLE]
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    assert out.returncode == 2
    assert "MICRONS_VERSIONS_POLL_MINUTES='0' is not a whole number" in out.stderr
    assert "Traceback" not in out.stderr
