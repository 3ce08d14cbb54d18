"""A `materialize` that fails or is killed midway, then run again, finishes only what is missing."""

from __future__ import annotations

import os
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
    clean_env,
    materialize_args,
    materialized_chunks,
    run_cli,
    runs_by_job,
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
    emulator, emulator_cache, home, data, done_before: set[str]
) -> subprocess.CompletedProcess:
    """A second `materialize` runs exactly the missing chunks and yields the true table."""
    runs_before = runs_by_job(home)
    out = run_cli(materialize_args(emulator, home, data), clean_env(emulator_cache))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs_after = runs_by_job(home)
    assert len(runs_after["raw_tables_and_units"]) == len(runs_before["raw_tables_and_units"])
    new = {r.run_id for r in runs_after["synapse_chunk_download"]} - {
        r.run_id for r in runs_before["synapse_chunk_download"]
    }
    rerun = {
        r.tags["dagster/partition"].split("|")[1]
        for r in runs_after["synapse_chunk_download"]
        if r.run_id in new
    }
    assert len(new) == len(rerun) == 32 - len(done_before)
    assert not rerun & done_before
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
    """Runs created and not finished (a worker killed between creating and starting one too)."""
    runs = runs_by_job(home).values()
    return {r.run_id for job in runs for r in job if r.status in UNFINISHED}


def test_a_failure_midway_names_what_failed_and_a_rerun_finishes(
    session_emulator, emulator_cache, tmp_path
):
    home, data = tmp_path / "home", tmp_path / "data"
    server = session_emulator.server
    server.faults = Faults(latency_ms=10)
    child = subprocess.Popen(
        materialize_args(session_emulator, home, data, "--jobs", "1"),
        env=clean_env(emulator_cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_chunks(
            UPath(data) / session_emulator.datastack / "v1300" / "synapse_chunks", 5, child
        )
        server.token = "a-token-the-command-does-not-have"  # every later request: 401
        stdout, _ = child.communicate(timeout=300)
    finally:
        child.kill()
        server.token = None
        server.faults = Faults()
    assert child.returncode == 1
    done = materialized_chunks(home)
    assert 5 <= len(done) < 32
    failed_lines = [
        line for line in stdout.splitlines() if line.startswith("FAILED synapse_chunks")
    ]
    assert len(failed_lines) == 32 - len(done)
    assert all("(partition 1300|" in line and "token" in line.lower() for line in failed_lines)
    assert "only what is missing runs" in stdout
    assert "synapses_rollup" not in runs_by_job(home)  # no roll-up of an incomplete version
    rerun_and_check(session_emulator, emulator_cache, home, data, done)


def test_a_killed_materialize_leaves_no_partial_chunk_and_resumes(
    session_emulator, emulator_cache, tmp_path
):
    home, data = tmp_path / "home", tmp_path / "data"
    folder = UPath(data) / session_emulator.datastack / "v1300" / "synapse_chunks"
    child = subprocess.Popen(
        materialize_args(session_emulator, home, data, "--jobs", "2"),
        env=clean_env(emulator_cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: driver and workers die together
    )
    try:
        wait_for_chunks(folder, 6, child)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    files = sorted(folder.glob("[0-9][0-9].parquet"))
    assert 6 <= len(files) < 32
    for path in files:  # every file that looks complete is complete
        assert read_frame(path).attrs["provenance"]["chunk"] == path.stem
    done = materialized_chunks(home)
    assert done <= {p.stem for p in files}
    killed = unfinished_runs(home)  # runs of the killed workers: nothing will ever end them
    out = rerun_and_check(session_emulator, emulator_cache, home, data, done)
    assert unfinished_runs(home) == set()
    for job in runs_by_job(home).values():
        for run in job:
            assert (run.run_id in killed) == (run.status == dg.DagsterRunStatus.FAILURE), run
    if killed:
        assert f"Marked {len(killed)} run(s)" in out.stderr + out.stdout
