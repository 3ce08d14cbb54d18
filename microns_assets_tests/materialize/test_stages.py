"""The runs a backfill of one version makes, as `MICRONS_CHUNK_RUNS` splits the chunk stage.

Each case loads the code location in a child process with the setting in its environment, as
the daemon and the webserver load it, and asks `stages.version_stages` (Dagster's own backfill
grouping) for the runs of version 1300.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from microns_assets.processing.chunks import CHUNK_KEYS

SCRIPT = """
import json
import dagster as dg
from microns_assets.definitions import defs
from microns_assets.materialize.stages import add_version, version_stages
with dg.instance_for_test() as instance:
    add_version(instance, 1300)
    add_version(instance, 1718)  # another version: the ranges must stay within 1300
    stages = version_stages(defs, instance, "1300")
    print(json.dumps([
        [
            dict(r.tags)
            | {"key": r.partition_key, "assets": [k.to_user_string() for k in r.asset_selection]}
            for r in s
        ]
        for s in stages
    ]))
"""


def _stages(environ: dict[str, str]) -> list[list[dict]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRONS_")}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env={**env, **environ}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _ranges(stage: list[dict]) -> list[tuple[str, str]]:
    return [
        (r["dagster/asset_partition_range_start"], r["dagster/asset_partition_range_end"])
        for r in stage
    ]


@pytest.mark.parametrize("runs", [1, 2, 5, 11, 32])
def test_chunk_runs_split_a_versions_chunks_into_contiguous_ranges(runs):
    raw, chunks, rollup = _stages({"MICRONS_CHUNK_RUNS": str(runs)})
    assert [r["key"] for r in raw] == ["1300"] and [r["key"] for r in rollup] == ["1300"]
    ranges = _ranges(chunks)
    assert len(ranges) == runs
    covered = []
    for start, end in ranges:
        assert start.startswith("1300|") and end.startswith("1300|")
        lo, hi = CHUNK_KEYS.index(start[5:]), CHUNK_KEYS.index(end[5:])
        covered += CHUNK_KEYS[lo : hi + 1]
    assert covered == list(CHUNK_KEYS)  # every chunk once, in order
    sizes = [CHUNK_KEYS.index(e[5:]) - CHUNK_KEYS.index(s[5:]) + 1 for s, e in ranges]
    assert max(sizes) == -(-len(CHUNK_KEYS) // runs)  # at most ceil(32 / N) chunks a run


def test_extra_tables_run_with_the_raw_tables_and_the_connectome_with_the_rollup():
    extra = [
        "cave_extra/allen_v1_column_types_slanted_ref",
        "cave_extra/nucleus_alternative_points",
        "cave_extra/synapse_target_structure",
    ]
    raw, _, rollup = _stages({"MICRONS_EXTRA_TABLES": "all", "MICRONS_CAVE_SERVER": "embedded"})
    assert len(raw) == 1 and set(extra) <= set(raw[0]["assets"])  # one run: still three stages
    assert "cave_raw/nucleus" in raw[0]["assets"] and "units" in raw[0]["assets"]
    assert len(rollup) == 1 and set(rollup[0]["assets"]) == {"synapses", "connectome"}
    default_raw, _, _ = _stages({})
    assert not [a for a in default_raw[0]["assets"] if a.startswith("cave_extra/")]
