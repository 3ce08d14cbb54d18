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


def runs_of(home: Path) -> list[dg.DagsterRun]:
    """The runs recorded in the instance at `home`, oldest first."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(reversed(instance.get_runs()))


def chunk_materializations(home: Path) -> dict[str, list[dict]]:
    """Every materialization of each chunk partition, oldest first: its metadata."""
    found: dict[str, list[dict]] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(
            dg.AssetKey("synapse_chunks"), limit=10_000, ascending=True
        ).records
        for record in records:
            meta = {k: v.value for k, v in record.asset_materialization.metadata.items()}
            found.setdefault(record.partition_key, []).append(meta)
    return found


def aggregated_truth(emulator, units: pd.DataFrame, version: int = 1300) -> pd.DataFrame:
    """Every unit to every unit, one row per pair (sum of size, count), sorted by (pre, post)."""
    roots = units["pt_root_id"].to_numpy(np.int64)
    syn = emulator.ground_truth(version, "synapses_pni_2")
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
