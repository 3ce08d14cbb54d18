"""Running `microns-assets` as a user does: a child process, a clean environment, real files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd


def clean_env(emulator_cache: Path) -> dict[str, str]:
    """The environment without our settings, with the tests' private emulator cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICRONS_", "DAGSTER_"))}
    env["MICRONS_EMULATOR_CACHE"] = str(emulator_cache)
    return env


def materialize_args(emulator, home: Path, data: Path, *extra: str) -> list[str]:
    """`microns-assets materialize` of 1300 against the test emulator."""
    return [
        sys.executable,
        "-m",
        "microns_assets.cli",
        "materialize",
        "--version",
        "1300",
        "--server",
        emulator.url,
        "--datastack",
        emulator.datastack,
        "--data-dir",
        str(data),
        "--dagster-home",
        str(home),
        *extra,
    ]


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the command to completion, output captured."""
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def runs_by_job(home: Path) -> dict[str, list[dg.DagsterRun]]:
    """The runs recorded in the instance at `home`, by job name."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs: dict[str, list[dg.DagsterRun]] = {}
        for run in instance.get_runs():
            runs.setdefault(run.job_name, []).append(run)
        return runs


def materialized_chunks(home: Path) -> set[str]:
    """Chunk keys of v1300 whose chunk step finished successfully in the instance at `home`.

    A run killed after writing its chunk but before the step finished (its checks unrun) does
    not count; one killed after the step, while the run wound down, does.
    """
    done = set()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs(dg.RunsFilter(job_name="synapse_chunk_download")):
            stats = instance.get_run_step_stats(run.run_id, step_keys=["synapse_chunks"])
            if stats and stats[0].status.value == "SUCCESS":
                done.add(run.tags["dagster/partition"].split("|")[1])
    return done


def aggregated_truth(emulator, units: pd.DataFrame) -> pd.DataFrame:
    """Every unit to every unit, one row per pair (sum of size, count), sorted by (pre, post)."""
    roots = units["pt_root_id"].to_numpy(np.int64)
    syn = emulator.ground_truth(1300, "synapses_pni_2")
    syn = syn[syn["pre_pt_root_id"].isin(roots) & syn["post_pt_root_id"].isin(roots)]
    return (
        syn.groupby(["pre_pt_root_id", "post_pt_root_id"])["size"]
        .agg(["sum", "count"])
        .reset_index()
    )


def assert_equals_truth(merged: pd.DataFrame, expected: pd.DataFrame) -> None:
    """The merged table has exactly the expected pairs, sums and counts, in order."""
    assert len(merged) == len(expected) > 10_000
    assert merged["pre_pt_root_id"].tolist() == expected["pre_pt_root_id"].tolist()
    assert merged["post_pt_root_id"].tolist() == expected["post_pt_root_id"].tolist()
    assert merged["size"].tolist() == expected["sum"].tolist()
    assert merged["n_synapses"].tolist() == expected["count"].tolist()
