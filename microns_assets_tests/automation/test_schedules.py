"""The weekly refresh schedule, evaluated against a real instance."""

from __future__ import annotations

import dagster as dg

from microns_assets.partitions import VERSION_DIM
from microns_assets.resources import CaveResource
from microns_assets_tests.automation.helpers import location


def refresh_tick(instance: dg.DagsterInstance, tmp_path):
    cave = CaveResource(datastack="minnie65_synthetic", server_address="http://127.0.0.1:9")
    defs = location(cave, tmp_path)  # nothing listens there: a tick must not call CAVE
    context = dg.build_schedule_context(
        instance=instance, instance_ref=instance.get_ref(), repository_def=defs.get_repository_def()
    )
    return defs.resolve_schedule_def("refresh_newest_version").evaluate_tick(context)


def test_skips_with_a_reason_when_no_version_is_known(dagster_instance, tmp_path):
    tick = refresh_tick(dagster_instance, tmp_path)
    assert tick.run_requests == []
    assert "No mat_version partition yet: start the cave_versions sensor" in tick.skip_message


def test_refreshes_the_numerically_newest_version(dagster_instance, tmp_path):
    dagster_instance.add_dynamic_partitions(VERSION_DIM, ["943", "1300", "scratch", "117"])
    [request] = refresh_tick(dagster_instance, tmp_path).run_requests
    assert request.partition_key == "1300"  # not the last added, not the string maximum
    assert request.job_name == "cave_raw_tables"
    assert request.tags["microns/trigger"] == "weekly_refresh"
    assert request.tags["dagster/partition"] == "1300"
