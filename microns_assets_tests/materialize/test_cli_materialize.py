"""`microns-assets materialize` end to end against the emulator: three runs, reuse, bad input."""

from __future__ import annotations

import dagster as dg
import pytest
from upath import UPath

from microns_assets.emulator import Faults
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.storage import read_connectome, read_frame
from microns_assets_tests.materialize.cli_helpers import (
    aggregated_truth,
    assert_equals_truth,
    chunk_materializations,
    clean_env,
    materialize_args,
    run_cli,
    runs_of,
)

#: Requests in flight the first test allows (`MICRONS_CAVE_IN_FLIGHT`).
IN_FLIGHT = 3
CHUNK_PARTITIONS = [f"1300|{c}" for c in CHUNK_KEYS]


@pytest.fixture(scope="module")
def materialized(session_emulator, emulator_cache, tmp_path_factory):
    """One full `materialize` of 1300, with 20 ms latency and 3 requests in flight."""
    home = tmp_path_factory.mktemp("home")
    data = tmp_path_factory.mktemp("data")
    server = session_emulator.server
    assert server.stats.wait_idle(timeout_s=30)  # nothing left in flight by an earlier module
    server.stats.reset()
    server.faults = Faults(latency_ms=20)
    env = {**clean_env(emulator_cache), "MICRONS_CAVE_IN_FLIGHT": str(IN_FLIGHT)}
    try:
        out = run_cli(materialize_args(session_emulator, home, data), env)
    finally:
        server.faults = Faults()
    max_in_flight = server.stats.max_in_flight
    server.stats.reset()
    return out, home, UPath(data) / session_emulator.datastack / "v1300", max_in_flight


def test_materialize_builds_the_whole_graph_in_three_runs(materialized, session_emulator):
    out, home, version_dir, _ = materialized
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = runs_of(home)
    assert len(runs) == 3 and all(r.is_success for r in runs)
    raw, chunks, rollup = runs
    assert raw.tags["dagster/partition"] == rollup.tags["dagster/partition"] == "1300"
    assert {k.to_user_string() for k in raw.asset_selection} >= {"cave_raw/nucleus", "units"}
    assert chunks.tags["dagster/asset_partition_range_start"] == "1300|00"
    assert chunks.tags["dagster/asset_partition_range_end"] == "1300|31"
    materializations = chunk_materializations(home)
    assert sorted(materializations) == CHUNK_PARTITIONS
    assert all(len(m) == 1 and not m[0]["reused"] for m in materializations.values())
    units = read_frame(version_dir / "units.parquet")
    merged = read_frame(version_dir / "synapses.parquet")
    assert_equals_truth(merged, aggregated_truth(session_emulator, units))
    # each chunk's own metadata: its rows, its path
    for partition, [meta] in materializations.items():
        path = UPath(meta["path"])
        assert path.name == f"{partition[-2:]}.parquet"
        assert meta["dagster/row_count"] == len(read_frame(path))
    # the summary names every asset with its rows and path, and how the chunks went
    assert f"{len(merged):,} rows" in out.stdout
    matrix, index = read_connectome(version_dir / "connectome.npz")  # its shape, not "0 rows"
    summary = [line for line in out.stdout.splitlines() if line.strip().startswith("connectome")]
    assert len(summary) == 1
    assert f"{len(index):,} x {len(index):,}, {matrix.nnz:,} pairs" in summary[0]
    assert str(version_dir / "synapses.parquet") in out.stdout
    assert "(3 runs; chunks: 32 downloaded, 0 reused)" in out.stdout
    assert "32/32" in out.stdout  # the progress bar
    assert f"dev --server {session_emulator.url} --datastack minnie65_synthetic" in out.stdout
    # the roll-up took the summary its helper was asked for when the last chunk was stored
    with dg.DagsterInstance.from_config(str(home)) as instance:
        said = [entry.user_message for entry in instance.all_logs(rollup.run_id)]
    assert any("summary was asked for with their last chunk" in m for m in said)


def test_requests_in_flight_never_exceed_the_setting(materialized):
    out, _, _, max_in_flight = materialized
    assert out.returncode == 0
    assert max_in_flight == IN_FLIGHT  # concurrent, and never more than allowed


def test_a_second_materialize_reuses_every_chunk(materialized, session_emulator, emulator_cache):
    _out, home, version_dir, _ = materialized
    chunk_dir = version_dir / "synapse_chunks"
    stamps = {p.name: p.stat().st_mtime_ns for p in chunk_dir.glob("*.parquet")}
    again = run_cli(
        materialize_args(session_emulator, home, version_dir.parent.parent),
        clean_env(emulator_cache),
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "(3 runs; chunks: 0 downloaded, 32 reused)" in again.stdout
    latest = {p: m[-1] for p, m in chunk_materializations(home).items()}
    assert all(m["reused"] for m in latest.values())
    assert {p.name: p.stat().st_mtime_ns for p in chunk_dir.glob("*.parquet")} == stamps


def test_only_missing_or_truncated_chunks_are_downloaded_again(
    materialized, session_emulator, emulator_cache
):
    _out, home, version_dir, _ = materialized
    data = version_dir.parent.parent
    chunk_dir = version_dir / "synapse_chunks"
    truncated = chunk_dir / "07.parquet"
    truncated.write_bytes(truncated.read_bytes()[:500])
    (chunk_dir / "09.parquet").unlink()
    again = run_cli(materialize_args(session_emulator, home, data), clean_env(emulator_cache))
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "(3 runs; chunks: 2 downloaded, 30 reused)" in again.stdout
    latest = {p: m[-1] for p, m in chunk_materializations(home).items()}
    assert {p for p, m in latest.items() if not m["reused"]} == {"1300|07", "1300|09"}
    units = read_frame(version_dir / "units.parquet")
    expected = aggregated_truth(session_emulator, units)
    assert_equals_truth(read_frame(version_dir / "synapses.parquet"), expected)


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
    assert "static" in lines["1078"] and lines["1078"].endswith("-")  # from static dumps
    assert "current" in lines["1718"] and lines["1718"].endswith("-")


def assert_refused_before_any_run(out, home, *messages: str) -> None:
    """Exit status 2, one message on stderr (no traceback), and nothing in the instance."""
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    for message in messages:
        assert message in out.stderr
    if (home / "dagster.yaml").exists():
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert instance.get_runs() == []


def test_an_unknown_version_fails_before_any_run(session_emulator, emulator_cache, tmp_path):
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    args[args.index("1300")] = "99999"
    out = run_cli(args, clean_env(emulator_cache))
    assert_refused_before_any_run(out, tmp_path / "home", "Available versions")
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        assert instance.get_dynamic_partitions("mat_version") == []


def test_a_malformed_run_config_is_refused(session_emulator, emulator_cache, tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("resources:\n  cave: {}\n")
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    out = run_cli([*args, "--config", str(bad)], clean_env(emulator_cache))
    assert out.returncode != 0
    assert "must be a Dagster run config with only an `ops:` section" in out.stderr


@pytest.mark.parametrize(
    ("config", "messages"),
    [
        (
            "ops:\n  units_and_layers:\n    config:\n      functional: sometimes\n",
            ["units_and_layers", "functional", "sometimes"],
        ),
        (
            "ops:\n  synapse_chunks:\n    config:\n      pre:\n        layer: [L7]\n",
            ["ops.synapse_chunks.config.pre", "unknown layer ['L7']", "L2/3"],
        ),
        (
            "ops:\n  synapse_chunks:\n    config:\n      mode: everything\n",
            ["synapse_chunks", "mode", "everything"],
        ),
        ("ops:\n  download_it_all:\n    config: {}\n", ["download_it_all"]),
    ],
)
def test_a_bad_run_config_is_refused_before_any_run(
    session_emulator, emulator_cache, tmp_path, config, messages
):
    path = tmp_path / "config.yaml"
    path.write_text(config)
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    out = run_cli([*args, "--config", str(path)], clean_env(emulator_cache))
    assert_refused_before_any_run(out, tmp_path / "home", *messages)


def test_a_malformed_versions_file_is_refused_before_any_run(
    session_emulator, emulator_cache, tmp_path
):
    versions = tmp_path / "versions.yaml"
    versions.write_text("versions:\n  1300:\n    tables: [not, a, mapping]\n")
    env = {**clean_env(emulator_cache), "MICRONS_VERSIONS_FILE": str(versions)}
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data")
    out = run_cli(args, env)
    assert_refused_before_any_run(out, tmp_path / "home", str(versions))
    assert len(out.stderr.strip().splitlines()) <= 3  # one message, not a stack per step


def test_submit_without_a_daemon_says_how_to_start_one(session_emulator, emulator_cache, tmp_path):
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "data", "--submit")
    out = run_cli(args, clean_env(emulator_cache))
    assert_refused_before_any_run(out, tmp_path / "home", "no dagster-daemon", "microns-assets dev")
