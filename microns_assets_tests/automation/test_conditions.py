"""Automation over ticks: a version CAVE publishes flows from raw tables to `synapses` unclicked.

Each tick is `dg.evaluate_automation_conditions` on the real code location (with test resources);
what it requests is executed with `dg.materialize` against the emulator before the next tick, as
the daemon would launch it.
"""

from __future__ import annotations

import dagster as dg
import pytest
from upath import UPath

from microns_assets.partitions import VERSION_DIM
from microns_assets.storage import read_frame
from microns_assets_tests.automation.helpers import (
    emulator_cave,
    location,
    run_request,
    sensor_tick,
)
from microns_assets_tests.conftest import failure_messages

UNITS = {dg.AssetKey("units"), dg.AssetKey("layer_segments")}
CHUNKS = dg.AssetKey("synapse_chunks")
ROLLUP = dg.AssetKey("synapses")
CONNECTOME = dg.AssetKey("connectome")  # built by the roll-up's step: requested with it
ALL_CHUNKS = [f"{i:02d}" for i in range(32)]
SEEN_BEFORE = ["117", "943", "1300", "1621"]


def chunk(version: str, number: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({VERSION_DIM: version, "synapse_chunk": number})


class Flow:
    """The code location, the instance, and the automation cursor between ticks."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs, self.instance, self.cursor = defs, instance, None

    def tick(self) -> dict[dg.AssetKey, set]:
        """Evaluate every automation condition once; the partitions requested, by asset."""
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.cursor
        )
        self.cursor = result.cursor
        keys = self.defs.resolve_asset_graph().get_all_asset_keys()
        return {
            k: set(result.get_requested_partitions(k)) for k in keys if result.get_num_requested(k)
        }

    def materialize(self, keys: set[dg.AssetKey], partition_key) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            self.defs.assets,
            selection=dg.AssetSelection.assets(*keys),
            partition_key=partition_key,
            resources=self.defs.resources,
            instance=self.instance,
            raise_on_error=False,
        )


@pytest.fixture
def flow(emulator, dagster_instance, tmp_path) -> Flow:
    """CAVE has not published 1718 (nor 1822) yet; the sensor has seen every other version."""
    emulator.server.unpublished = {1718, 1822}
    dagster_instance.add_dynamic_partitions(VERSION_DIM, SEEN_BEFORE)
    return Flow(location(emulator_cave(emulator), tmp_path), dagster_instance)


def test_a_new_version_flows_down_and_the_rollup_waits_for_every_chunk(emulator, flow, tmp_path):
    assert flow.tick() == {}  # automation on, no raw tables anywhere: nothing to build

    emulator.server.unpublished = {1822}  # CAVE publishes 1718; the sensor downloads it
    cursor = '{"known": [117, 943, 1300, 1621], "expired": [1078, 1181, 1412, 1507]}'
    [raw_run] = sensor_tick(flow.defs, flow.instance, cursor).run_requests
    assert run_request(flow.defs, flow.instance, raw_run).success

    # Tick by tick, one stage at a time: each waits until its inputs exist and passed checks.
    assert flow.tick() == {dg.AssetKey("units"): {"1718"}, dg.AssetKey("layer_segments"): {"1718"}}
    assert flow.materialize(UNITS, "1718").success
    assert flow.tick() == {CHUNKS: {chunk("1718", c) for c in ALL_CHUNKS}}
    for number in ALL_CHUNKS[:-1]:
        assert flow.materialize({CHUNKS}, chunk("1718", number)).success
    emulator.server.token = "required"  # the last chunk's run fails (401: not retried)
    failed = flow.materialize({CHUNKS}, chunk("1718", "31"))
    assert not failed.success and "CAVE_TOKEN" in failure_messages(failed)
    emulator.server.token = None

    assert flow.tick() == {}  # no partial roll-up; a failed chunk is not retried by automation

    assert flow.materialize({CHUNKS}, chunk("1718", "31")).success  # re-run by hand
    # now, and only now, the roll-up (and the connectome its step builds)
    assert flow.tick() == {ROLLUP: {"1718"}, CONNECTOME: {"1718"}}
    assert flow.materialize({ROLLUP, CONNECTOME}, "1718").success
    assert flow.tick() == {}  # settled: nothing is requested again

    base = UPath(tmp_path) / emulator.datastack / "v1718"
    chunk_files = sorted((base / "synapse_chunks").glob("*.parquet"))
    assert len(chunk_files) == 32
    chunk_rows = sum(len(read_frame(p)) for p in chunk_files)
    merged = read_frame(base / "synapses.parquet")
    assert len(merged) == chunk_rows > 0
    assert merged.attrs["provenance"]["chunks"] == 32


def test_units_failing_a_blocking_check_are_not_carried_down(emulator, flow):
    assert flow.tick() == {}
    emulator.server.unpublished = {1822}
    flow.instance.add_dynamic_partitions(VERSION_DIM, ["1718"])  # added by hand this time
    raw = flow.defs.resolve_job_def("cave_raw_tables")
    assert raw.execute_in_process(instance=flow.instance, partition_key="1718").success
    assert flow.tick() == {dg.AssetKey("units"): {"1718"}, dg.AssetKey("layer_segments"): {"1718"}}
    assert flow.materialize(UNITS, "1718").success

    # The blocking check fails when run again on its own (here: reported from outside a run).
    flow.instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("units"),
            check_name="unique_keys",
            passed=False,
            blocking=True,
            partition="1718",
        )
    )
    assert flow.tick() == {}  # plain eager() would download the chunks of bad units here

    assert flow.materialize(UNITS, "1718").success  # rebuilt; its checks pass again
    assert flow.tick() == {CHUNKS: {chunk("1718", c) for c in ALL_CHUNKS}}
