"""The `cave_versions` sensor against the emulator and a real instance, tick by tick."""

from __future__ import annotations

import json
import threading
import time

import dagster as dg
import pytest
from upath import UPath

from microns_assets.cave.deadline import THREAD_PREFIX
from microns_assets.cave.errors import CaveUnavailableError, UnknownVersionError
from microns_assets.emulator import Faults
from microns_assets.partitions import VERSION_DIM
from microns_assets.resources import CaveResource
from microns_assets.storage import read_frame
from microns_assets_tests.automation.helpers import (
    added_keys,
    emulator_cave,
    location,
    run_request,
    sensor_context,
    sensor_tick,
)
from microns_assets_tests.conftest import connect, wait_until
from microns_assets_tests.webui.expected import ROLES  # written out from docs/assets.md

# The synthetic datastack mirrors minnie65_public: these are current, those expired.
CURRENT = ["117", "943", "1300", "1621", "1718", "1822"]
EXPIRED = [1078, 1181, 1412, 1507]


@pytest.fixture
def defs(emulator, tmp_path):
    return location(emulator_cave(emulator), tmp_path)


def test_first_tick_adds_every_current_version_and_downloads_only_the_newest(
    emulator, dagster_instance, defs
):
    data = sensor_tick(defs, dagster_instance, None)
    assert added_keys(data) == CURRENT
    assert [(r.job_name, r.partition_key) for r in data.run_requests] == [
        ("cave_raw_tables", "1822")
    ]
    assert sorted(dagster_instance.get_dynamic_partitions(VERSION_DIM), key=int) == CURRENT
    assert json.loads(data.cursor)["expired"] == EXPIRED


def test_a_newly_published_version_is_added_and_downloaded(
    emulator, dagster_instance, defs, tmp_path
):
    emulator.server.unpublished = {1822}
    first = sensor_tick(defs, dagster_instance, None)
    assert added_keys(first) == CURRENT[:-1]
    assert [r.partition_key for r in first.run_requests] == ["1718"]

    quiet = sensor_tick(defs, dagster_instance, first.cursor)
    assert quiet.run_requests == [] and quiet.dynamic_partitions_requests == []
    assert "No new version" in quiet.skip_message

    emulator.server.unpublished = set()  # CAVE publishes 1822
    new = sensor_tick(defs, dagster_instance, quiet.cursor)
    assert added_keys(new) == ["1822"]
    [request] = new.run_requests
    assert (request.job_name, request.partition_key) == ("cave_raw_tables", "1822")
    assert "1822" in dagster_instance.get_dynamic_partitions(VERSION_DIM)

    result = run_request(defs, dagster_instance, request)
    assert result.success
    raw = UPath(tmp_path) / emulator.datastack / "v1822" / "cave_raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{r}.parquet" for r in ROLES)
    assert sensor_tick(defs, dagster_instance, new.cursor).run_requests == []


def test_expired_versions_are_recorded_never_added_or_run_nor_removed(
    emulator, dagster_instance, defs, tmp_path
):
    dagster_instance.add_dynamic_partitions(VERSION_DIM, ["1078"])  # added by hand earlier
    first = sensor_tick(defs, dagster_instance, None)
    touched = set(added_keys(first)) | {r.partition_key for r in first.run_requests}
    assert not touched & {str(v) for v in EXPIRED}
    assert json.loads(first.cursor)["expired"] == EXPIRED
    assert "1078" in dagster_instance.get_dynamic_partitions(VERSION_DIM)  # not removed

    later = sensor_tick(defs, dagster_instance, first.cursor)
    assert later.run_requests == []
    assert "expired (recorded, not added): 1078, 1181, 1412, 1507" in later.skip_message

    # Materializing the expired version by hand reads its static dumps: no table query.
    job = defs.resolve_job_def("cave_raw_tables")
    result = job.execute_in_process(instance=dagster_instance, partition_key="1078")
    assert result.success
    assert emulator.server.stats.queries == 0
    raw = UPath(tmp_path) / emulator.datastack / "v1078" / "cave_raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{r}.parquet" for r in ROLES)
    nucleus = read_frame(raw / "nucleus.parquet")
    assert nucleus.attrs["provenance"]["source"] == "static"
    assert nucleus["pt_root_id"].tolist() == (
        emulator.ground_truth(1078, "nucleus_detection_v0")["pt_root_id"].tolist()
    )


def test_an_unpublished_version_is_unknown_to_caveclient(emulator):
    emulator.server.unpublished = {1718}
    conn = connect(emulator)
    assert conn.versions(expired=True) == [117, 943, 1078, 1181, 1300, 1412, 1507, 1621, 1822]
    with pytest.raises(UnknownVersionError, match="1718"):
        conn.check_version(1718)


def test_unreachable_cave_fails_the_tick_and_keeps_the_cursor(dagster_instance, tmp_path):
    cave = CaveResource(datastack="minnie65_synthetic", server_address="http://127.0.0.1:9")
    defs = location(cave, tmp_path)  # nothing listens there
    with pytest.raises(CaveUnavailableError, match="Check the server address"):
        sensor_tick(defs, dagster_instance, '{"known": [117], "expired": []}')
    assert dagster_instance.get_dynamic_partitions(VERSION_DIM) == []


def test_a_failing_cave_fails_the_tick_well_within_its_60_s(emulator, dagster_instance, tmp_path):
    """Runs retry a 503 for minutes (defaults: 6 HTTP retries, 4 attempts); a tick must not."""
    emulator.server.faults = Faults(fail_rate=1.0)
    cave = CaveResource(datastack=emulator.datastack, server_address=emulator.url)
    defs = location(cave, tmp_path)
    start = time.monotonic()
    with pytest.raises(CaveUnavailableError, match="503"):
        sensor_tick(defs, dagster_instance, None)
    assert time.monotonic() - start < 30
    # 3 attempts to connect, 2 requests each; the run policy would make 12 of 7 requests each
    assert emulator.server.stats.faults <= 6
    assert dagster_instance.get_dynamic_partitions(VERSION_DIM) == []


def _emulator_threads() -> int:
    return sum(t.name == "cave-emulator" and t.is_alive() for t in threading.enumerate())


def test_embedded_emulator_lives_for_one_tick(
    dagster_instance, tmp_path, emulator_cache, monkeypatch
):
    monkeypatch.setenv("MICRONS_EMULATOR_CACHE", str(emulator_cache))
    defs = location(
        CaveResource(server_address="embedded", datastack="minnie65_synthetic"), tmp_path
    )
    sensor = defs.resolve_sensor_def("cave_versions")
    before = _emulator_threads()
    with sensor_context(defs, dagster_instance) as context:
        data = sensor.evaluate_tick(context)
        assert _emulator_threads() == before + 1  # started for this tick
    assert added_keys(data) == CURRENT
    wait_until(lambda: _emulator_threads() <= before, seconds=5)
    assert _emulator_threads() == before  # stopped when the tick ended


def test_the_tick_connection_never_loosens_the_resources_own_settings(emulator):
    from microns_assets.resources.cave import TICK_HTTP

    cave = CaveResource(
        datastack=emulator.datastack,
        server_address=emulator.url,
        http_retries=0,
        connect_timeout_s=1.0,
        read_timeout_s=600.0,
        call_attempts=5,
    )
    with dg.build_resources({"cave": cave}) as resources:
        tick = resources.cave.tick_connection().settings
    assert tick.http.retries == 0 and tick.http.connect_timeout_s == 1.0  # the user's, smaller
    assert tick.http.read_timeout_s == TICK_HTTP.read_timeout_s  # the tick's, smaller
    assert tick.call_attempts == 1 and tick.server_address == emulator.url


def test_a_slow_cave_ends_the_tick_at_its_budget(emulator, dagster_instance, tmp_path, monkeypatch):
    from microns_assets.automation import versions_sensor

    monkeypatch.setattr(versions_sensor, "TICK_BUDGET_S", 0.5)  # instead of 45 s
    emulator.server.faults = Faults(latency_ms=1_500)  # slow, never failing: no timeout fires
    defs = location(
        CaveResource(datastack=emulator.datastack, server_address=emulator.url), tmp_path
    )
    start = time.monotonic()
    try:
        with pytest.raises(
            CaveUnavailableError, match=r"no answer within 0\.5 s, the tick's budget"
        ):
            sensor_tick(defs, dagster_instance, None)
        assert time.monotonic() - start < 4  # less than the 3 answers building a client needs
    finally:  # the abandoned listing goes on in the background: let it finish
        wait_until(lambda: not _deadline_threads(), seconds=30, interval=0.2)
    assert not _deadline_threads()
    assert dagster_instance.get_dynamic_partitions(VERSION_DIM) == []


def _deadline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
