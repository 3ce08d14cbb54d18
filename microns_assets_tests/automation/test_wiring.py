"""What the code location promises about refreshes: names, targets, conditions, default status."""

from __future__ import annotations

import dagster as dg

from microns_assets.config import ROLES

STOPPED_SENSOR = dg.DefaultSensorStatus.STOPPED


def test_sensors_and_schedule_exist_and_start_stopped():
    from microns_assets.definitions import defs

    versions = defs.resolve_sensor_def("cave_versions")
    assert versions.default_status == STOPPED_SENSOR
    assert versions.minimum_interval_seconds == 3600
    assert versions.job_name == "cave_raw_tables"
    carry = defs.resolve_sensor_def("carry_versions_down")
    assert isinstance(carry, dg.AutomationConditionSensorDefinition)
    assert carry.default_status == STOPPED_SENSOR
    refresh = defs.resolve_schedule_def("refresh_newest_version")
    assert refresh.default_status == dg.DefaultScheduleStatus.STOPPED
    assert refresh.job_name == "cave_raw_tables"
    assert refresh.cron_schedule == "0 6 * * 1"


def test_only_derived_assets_carry_an_automation_condition():
    from microns_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    conditioned = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).automation_condition
    }
    assert conditioned == {"units", "layer_segments", "synapse_chunks", "synapses", "connectome"}
    for role in ROLES:
        assert graph.get(dg.AssetKey(["cave_raw", role])).automation_condition is None
    sensor = defs.resolve_sensor_def("carry_versions_down")
    targeted = sensor.asset_selection.resolve(graph)
    assert {k.to_user_string() for k in targeted} >= conditioned
