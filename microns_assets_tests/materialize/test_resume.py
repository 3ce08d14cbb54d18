"""A `materialize` that fails or is killed midway, then run again, finishes only what is missing."""

from __future__ import annotations

import signal
import subprocess
import time

import dagster as dg
from upath import UPath

from microns_assets.emulator import Faults
from microns_assets.storage import read_frame
from microns_assets_tests.materialize.cli_helpers import (
    aggregated_truth,
    assert_equals_truth,
    chunk_materializations,
    clean_env,
    materialize_args,
    run_cli,
    runs_of,
)


def wait_for_chunks(folder: UPath, count: int, child: subprocess.Popen, timeout: float = 300):
    """Block until `count` chunk files exist (fail if the command ends or time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.exists() and len(list(folder.glob("[0-9][0-9].parquet"))) >= count:
            return
        assert child.poll() is None, "materialize ended before the chunks appeared"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} chunk files in {folder} after {timeout} s")


def rerun_and_check(
    emulator, emulator_cache, home, data, files_before: set[str]
) -> subprocess.CompletedProcess:
    """A second `materialize` downloads exactly the missing chunks and yields the true table."""
    runs_before = {r.run_id for r in runs_of(home)}
    out = run_cli(materialize_args(emulator, home, data), clean_env(emulator_cache))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    new_runs = [r for r in runs_of(home) if r.run_id not in runs_before]
    assert len(new_runs) == 3
    missing = 32 - len(files_before)
    assert f"chunks: {missing} downloaded, {len(files_before)} reused" in out.stdout
    latest = {p: m[-1] for p, m in chunk_materializations(home).items()}
    assert {p[-2:] for p, m in latest.items() if m["reused"]} == files_before
    version_dir = UPath(data) / emulator.datastack / "v1300"
    units = read_frame(version_dir / "units.parquet")
    assert_equals_truth(
        read_frame(version_dir / "synapses.parquet"), aggregated_truth(emulator, units)
    )
    return out


UNFINISHED = {
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
}


def unfinished_runs(home) -> set[str]:
    """Runs created and not finished."""
    return {r.run_id for r in runs_of(home) if r.status in UNFINISHED}


def chunk_files(folder: UPath) -> set[str]:
    return {p.stem for p in folder.glob("[0-9][0-9].parquet")}


def start_materialize(emulator, emulator_cache, home, data, in_flight: int) -> subprocess.Popen:
    """`materialize` of 1300 in the background, output captured, `in_flight` requests at once."""
    return subprocess.Popen(
        materialize_args(emulator, home, data),
        env={**clean_env(emulator_cache), "MICRONS_CAVE_IN_FLIGHT": str(in_flight)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_failure_midway_names_what_failed_and_a_rerun_finishes(
    session_emulator, emulator_cache, tmp_path
):
    home, data = tmp_path / "home", tmp_path / "data"
    folder = UPath(data) / session_emulator.datastack / "v1300" / "synapse_chunks"
    server = session_emulator.server
    server.faults = Faults(latency_ms=10)
    child = start_materialize(session_emulator, emulator_cache, home, data, 1)
    try:
        wait_for_chunks(folder, 5, child)
        server.token = "a-token-the-command-does-not-have"  # every later request: 401
        stdout, _ = child.communicate(timeout=300)
    finally:
        child.kill()
        server.token = None
        server.faults = Faults()
    assert child.returncode == 1
    done = chunk_files(folder)
    assert 5 <= len(done) < 32
    for chunk in done:  # every file that looks complete is complete
        assert read_frame(folder / f"{chunk}.parquet").attrs["provenance"]["chunk"] == chunk
    failed = [line for line in stdout.splitlines() if line.startswith("FAILED synapse_chunks")]
    assert len(failed) == 1
    assert "(partition 1300|00..1300|31)" in failed[0] and "token" in failed[0].lower()
    assert "only what is missing runs" in stdout
    assert chunk_materializations(home) == {}  # a failed step reports no chunk as complete
    assert len(runs_of(home)) == 2  # no roll-up of an incomplete version
    rerun_and_check(session_emulator, emulator_cache, home, data, done)


def test_a_killed_materialize_leaves_no_partial_chunk_and_resumes(
    session_emulator, emulator_cache, tmp_path
):
    home, data = tmp_path / "home", tmp_path / "data"
    folder = UPath(data) / session_emulator.datastack / "v1300" / "synapse_chunks"
    session_emulator.server.faults = Faults(latency_ms=10)
    child = start_materialize(session_emulator, emulator_cache, home, data, 2)
    try:
        wait_for_chunks(folder, 6, child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        session_emulator.server.faults = Faults()
    files = chunk_files(folder)
    assert 6 <= len(files) < 32
    for chunk in files:  # every file that looks complete is complete
        assert read_frame(folder / f"{chunk}.parquet").attrs["provenance"]["chunk"] == chunk
    killed = unfinished_runs(home)  # the chunk run: nothing in Dagster will ever end it
    assert len(killed) == 1
    out = rerun_and_check(session_emulator, emulator_cache, home, data, files)
    assert unfinished_runs(home) == set()
    for run in runs_of(home):
        assert (run.run_id in killed) == (run.status == dg.DagsterRunStatus.FAILURE), run
    assert "Marked 1 run(s)" in out.stdout


def test_sigterm_ends_materialize_with_its_run_failed_not_running(
    session_emulator, emulator_cache, tmp_path
):
    home, data = tmp_path / "home", tmp_path / "data"
    folder = UPath(data) / session_emulator.datastack / "v1300" / "synapse_chunks"
    session_emulator.server.faults = Faults(latency_ms=10)
    child = start_materialize(session_emulator, emulator_cache, home, data, 1)
    try:
        wait_for_chunks(folder, 3, child)
        child.send_signal(signal.SIGTERM)
        stdout, _ = child.communicate(timeout=120)
    finally:
        child.kill()
        session_emulator.server.faults = Faults()
    assert child.returncode in (1, 130)  # Dagster ends the interrupted run as failed
    assert "only what is missing runs" in stdout
    assert unfinished_runs(home) == set()
    assert runs_of(home)[-1].status == dg.DagsterRunStatus.FAILURE
