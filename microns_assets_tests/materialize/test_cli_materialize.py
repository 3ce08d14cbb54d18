"""`microns-assets materialize` end to end against the emulator: results, skipping, the pool."""

from __future__ import annotations

import dagster as dg
import pytest
from upath import UPath

from microns_assets.emulator import Faults
from microns_assets.materialize.plan import Planner
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.storage import read_frame
from microns_assets_tests.materialize.cli_helpers import (
    aggregated_truth,
    assert_equals_truth,
    clean_env,
    materialize_args,
    run_cli,
    runs_by_job,
)

#: Instance config of the first test: at most one CAVE step at a time, across all runs.
ONE_CAVE_STEP = "concurrency:\n  pools:\n    default_limit: 1\n"


@pytest.fixture(scope="module")
def materialized(session_emulator, emulator_cache, tmp_path_factory):
    """One full `materialize` of 1300 with 3 workers, under a `cave` pool limit of 1."""
    home = tmp_path_factory.mktemp("home")
    (home / "dagster.yaml").write_text(ONE_CAVE_STEP)
    data = tmp_path_factory.mktemp("data")
    server = session_emulator.server
    server.stats.reset()
    server.faults = Faults(latency_ms=20)
    try:
        out = run_cli(
            materialize_args(session_emulator, home, data, "--jobs", "3"),
            clean_env(emulator_cache),
        )
    finally:
        server.faults = Faults()
    max_in_flight = server.stats.max_in_flight
    server.stats.reset()
    return out, home, UPath(data) / session_emulator.datastack / "v1300", max_in_flight


def test_materialize_builds_the_whole_graph(materialized, session_emulator):
    out, home, version_dir, _ = materialized
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = runs_by_job(home)
    assert len(runs["raw_tables_and_units"]) == 1
    assert len(runs["synapses_rollup"]) == 1
    chunk_runs = runs["synapse_chunk_download"]
    assert sorted(r.tags["dagster/partition"] for r in chunk_runs) == [
        f"1300|{c}" for c in CHUNK_KEYS
    ]
    assert all(r.is_success for rs in runs.values() for r in rs)
    units = read_frame(version_dir / "units.parquet")
    merged = read_frame(version_dir / "synapses.parquet")
    assert_equals_truth(merged, aggregated_truth(session_emulator, units))
    # the summary names every asset with its rows and path
    assert f"{len(merged):,} rows" in out.stdout
    assert str(version_dir / "synapses.parquet") in out.stdout
    assert f"dev --server {session_emulator.url} --datastack minnie65_synthetic" in out.stdout


def test_the_cave_pool_bounds_concurrent_requests(materialized):
    out, _, _, max_in_flight = materialized
    assert out.returncode == 0
    # --jobs 3 asked for three chunk runs at once; the instance's `cave` pool allows one
    assert "The instance's `cave` pool allows 1 CAVE step(s) at once: --jobs 1" in out.stderr
    assert max_in_flight == 1  # the emulator never saw two requests at once


def test_a_second_materialize_skips_what_is_current(materialized, session_emulator, emulator_cache):
    _out, home, version_dir, _ = materialized
    before = {job: len(runs) for job, runs in runs_by_job(home).items()}
    again = run_cli(
        materialize_args(session_emulator, home, version_dir.parent.parent),
        clean_env(emulator_cache),
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert {job: len(runs) for job, runs in runs_by_job(home).items()} == before
    assert again.stdout.count("up to date, skipped") == 3


def test_planner_redoes_what_changed(materialized):
    _, home, version_dir, _ = materialized
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert Planner(instance, "1300").stale_units_stage() == []
        assert Planner(instance, "1300").stale_chunks() == []
        assert not Planner(instance, "1300").rollup_stale()
        other = {"ops": {"synapse_chunks": {"config": {"remove_autapses": True}}}}
        assert Planner(instance, "1300", other).stale_chunks() == list(CHUNK_KEYS)
        assert Planner(instance, "1300", other).stale_units_stage() == []
        assert len(Planner(instance, "1300", force=True).stale_units_stage()) == 9
        moved = version_dir / "synapse_chunks" / "07.parquet"
        aside = moved.with_name("07.aside")
        moved.rename(aside)
        try:
            assert Planner(instance, "1300").stale_chunks() == ["07"]
        finally:
            aside.rename(moved)


def test_versions_lists_current_expired_and_local(materialized, session_emulator, emulator_cache):
    _, home, version_dir, _ = materialized
    args = [
        *materialize_args(session_emulator, home, version_dir.parent.parent)[:3],
        "versions",
        "--server",
        session_emulator.url,
        "--datastack",
        session_emulator.datastack,
        "--data-dir",
        str(version_dir.parent.parent),
        "--dagster-home",
        str(home),
    ]
    out = run_cli(args, clean_env(emulator_cache))
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[2:]}
    assert "current" in lines["1300"] and " never " in lines["1300"]  # the server sends null
    assert "raw 7/7, units, layer_segments, chunks 32/32, synapses" in lines["1300"]
    assert "expired" in lines["1078"] and lines["1078"].endswith("-")
    assert "current" in lines["1718"] and lines["1718"].endswith("-")


@pytest.mark.parametrize(
    ("version", "message"),
    [("99999", "Available versions"), ("1078", "has expired")],
)
def test_an_unknown_or_expired_version_fails_before_any_run(
    session_emulator, emulator_cache, tmp_path, version, message
):
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    args[args.index("1300")] = version
    out = run_cli(args, clean_env(emulator_cache))
    assert out.returncode == 2
    assert message in out.stderr
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert instance.get_runs() == []
        assert instance.get_dynamic_partitions("mat_version") == []


def test_a_malformed_run_config_is_refused(session_emulator, emulator_cache, tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("resources:\n  cave: {}\n")
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    out = run_cli([*args, "--config", str(bad)], clean_env(emulator_cache))
    assert out.returncode != 0
    assert "must be a Dagster run config with only an `ops:` section" in out.stderr


def test_an_invalid_op_config_fails_with_dagsters_message(
    session_emulator, emulator_cache, tmp_path
):
    config = tmp_path / "config.yaml"
    config.write_text("ops:\n  units_and_layers:\n    config:\n      functional: sometimes\n")
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    out = run_cli([*args, "--config", str(config)], clean_env(emulator_cache))
    assert out.returncode == 1
    failed = [line for line in out.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "(partition 1300)" in failed[0]
    assert "sometimes" in failed[0] and "functional" in failed[0]
    assert "synapse chunks" not in out.stderr  # nothing after the failed stage ran
