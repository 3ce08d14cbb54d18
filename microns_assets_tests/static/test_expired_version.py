"""`materialize` of an expired version: the same assets as a live one, from the static dumps.

Version 1507 has expired in the emulator (as on the real service since 2026-07-31): its API
answers 410 and its tables and synapses are only in `/static/`. The module's fixture
materializes it with `microns-assets materialize` while the emulator cuts a fifth of its
answers halfway (dump downloads resume with `Range`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from microns_assets.cave.complete import fetch_verified
from microns_assets.config import ROLES, load_versions_config
from microns_assets.emulator import Faults
from microns_assets.processing.units import build_units
from microns_assets.static_dumps.synapses import synapse_files
from microns_assets.storage import read_frame
from microns_assets_tests.conftest import connect
from microns_assets_tests.materialize.cli_helpers import (
    aggregated_truth,
    assert_equals_truth,
    chunk_materializations,
    clean_env,
    materialize_args,
    run_cli,
)

VERSION = 1507


@dataclass
class Materialized:
    out: object
    home: Path
    data: Path
    version_dir: Path
    faults: int


@pytest.fixture(scope="module")
def expired(session_emulator, emulator_cache, tmp_path_factory) -> Materialized:
    base = tmp_path_factory.mktemp("expired")
    args = materialize_args(session_emulator, base / "home", base / "data")
    args[args.index("1300")] = str(VERSION)
    session_emulator.server.stats.reset()
    session_emulator.server.faults = Faults(drop_rate=0.2, seed=5)
    try:
        out = run_cli(args, clean_env(emulator_cache))
    finally:
        session_emulator.server.faults = Faults()
    faults = session_emulator.server.stats.faults
    version_dir = base / "data" / session_emulator.datastack / f"v{VERSION}"
    return Materialized(out, base / "home", base / "data", version_dir, faults)


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


def test_an_expired_version_materializes_in_three_runs(expired):
    out = expired.out
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "(3 runs; chunks: 32 downloaded, 0 reused)" in out.stdout
    assert expired.faults > 0  # answers were cut on the way
    chunks = chunk_materializations(expired.home)
    assert sorted(chunks) == [f"{VERSION}|{c:02d}" for c in range(32)]
    assert all(len(m) == 1 for m in chunks.values())


def test_chunks_say_their_rows_come_from_a_dump_no_server_counts(expired):
    """`matches_server_count` warns (nothing counted) and says why, without wrong advice."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(expired.home)) as instance:
        entries = [
            entry
            for run in instance.get_runs()
            for entry in instance.all_logs(
                run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        ]
        counts = [
            e
            for entry in entries
            if (e := entry.dagster_event.event_specific_data).check_name == "matches_server_count"
        ]
    assert len(counts) == 32
    for evaluation in counts:
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
        assert "static dump, which no server counts" in evaluation.description
        assert "Set verify_counts: true" not in evaluation.description


def test_raw_tables_equal_the_live_apis_answer_for_the_version(expired, emulator):
    cfg = load_versions_config().get(VERSION)
    emulator.server.revived.add(VERSION)  # the live API's answer, for the comparison only
    conn = connect(emulator)
    for role in ROLES:
        table = cfg.table_for(role)
        stored = read_frame(expired.version_dir / "cave_raw" / f"{role}.parquet")
        if table is None:
            assert stored.empty
            continue
        live = fetch_verified(conn, VERSION, table)[0].frame
        pd.testing.assert_frame_equal(_by_id(stored), _by_id(live))
        prov = stored.attrs["provenance"]
        assert prov["source"] == "static"
        urls = [f["url"] for f in prov["files"]]
        assert (
            f"{emulator.url}/static/{emulator.datastack}/v{VERSION}/{table}_merged.csv.gz" in urls
        )
        assert all(f["bytes"] > 0 for f in prov["files"])


def test_units_and_synapses_equal_the_truth(expired, session_emulator):
    raw = {r: read_frame(expired.version_dir / "cave_raw" / f"{r}.parquet") for r in ROLES}
    units = read_frame(expired.version_dir / "units.parquet")
    pd.testing.assert_frame_equal(units, build_units(raw, version=VERSION)[0])
    merged = read_frame(expired.version_dir / "synapses.parquet")
    assert_equals_truth(merged, aggregated_truth(session_emulator, units, VERSION))


def test_the_dump_files_are_whole_and_nothing_half_written_remains(expired, session_emulator):
    static = expired.data / session_emulator.datastack / "static" / f"v{VERSION}"
    header, data = synapse_files("synapses_pni_2")
    served = session_emulator.server.static.get(VERSION, data)
    assert (static / data).read_bytes() == served
    assert (static / header).exists()
    assert not list(static.rglob("*.part")) and not list(static.glob("synapse-split-*"))
