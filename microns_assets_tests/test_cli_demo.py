"""`microns-assets demo` end to end, as a new user runs it: files, instance, printed guidance."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
from upath import UPath

import microns_assets
from microns_assets.config import ROLES
from microns_assets.storage import read_frame


def test_demo_materializes_version_1300_into_a_persistent_instance(tmp_path, emulator_cache):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICRONS_", "DAGSTER_"))}
    env["MICRONS_EMULATOR_CACHE"] = str(emulator_cache)
    out = subprocess.run(
        [sys.executable, "-m", "microns_assets.cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    data = UPath(tmp_path) / "data" / "minnie65_synthetic" / "v1300" / "cave_raw"
    for role in ROLES:
        assert str(data / f"{role}.parquet") in out.stdout
    assert len(read_frame(data / "nucleus.parquet")) == 3_000
    units = data.parent / "units.parquet"
    assert str(units) in out.stdout and len(read_frame(units)) > 1_000
    synapses = data.parent / "synapses.parquet"
    assert str(synapses) in out.stdout and len(read_frame(synapses)) > 10_000
    hint = next(line for line in out.stdout.splitlines() if "microns_assets.load(" in line)
    call = hint[hint.index("microns_assets.load(") :]
    loaded = eval(call, {"microns_assets": microns_assets})  # the printed call, as a user pastes it
    assert len(loaded) == len(read_frame(synapses))
    assert "microns-assets dev --server embedded --datastack minnie65_synthetic" in out.stdout
    assert str(tmp_path / ".dagster_home") in out.stdout

    home = tmp_path / ".dagster_home"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        jobs = sorted({r.job_name for r in runs})
        assert jobs == ["raw_tables_and_units", "synapse_chunk_download", "synapses_rollup"]
        assert len(runs) == 34 and all(r.is_success for r in runs)
        assert {r.tags["dagster/partition"].split("|")[0] for r in runs} == {"1300"}
        key = dg.AssetKey(["cave_raw", "nucleus"])
        assert instance.get_latest_materialization_event(key) is not None
