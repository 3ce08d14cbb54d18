"""Benchmark the whole job of one version: `materialize` against microns-combiner 0.4.0's loop.

Run: `python microns_assets_tests/benchmarks/bench_version.py [--scale 30000] [--latency-ms 50]
[--synapses-per-cell 140] [--peer-python ~/peer-venv/bin/python] [--row-cap 200000]
[--no-peer] [--dagster-storage]`.

Starts one `microns-assets emulator` process (so its CPU is not ours) and warms it (its first
query of each table builds that table, join or index in the server; see `warm`), then, against
that same process:
1. our job: `materialize_version` of v1300 in this process, into a fresh instance (the
   `dagster.yaml` of a new home, `commands.environment.dagster_yaml`) and data dir
   (three runs: raw tables + units, all chunks, roll-up), with wall and CPU time per run;
   the libraries (Dagster, our definitions, caveclient) are imported before the clock starts,
   as `peer_job.py` imports caveclient and microns-combiner before its clock;
2. the peer's job (`../shared/peer/peer_job.py`: download the tables, `process_nucleus_data`,
   `download_synapse_data` between all units, merge), in its own virtualenv:
   `python3 -m venv ~/peer-venv && ~/peer-venv/bin/pip install microns-combiner==0.4.0`.
Prints both times, the speed-up, our CPU share of the chunk stage, the pairs each job stored,
and the emulator's own CPU time during each job (the server's share of the 2 cores).

With `--floor`, also the least any caveclient program must spend on the same downloads, for
comparison with ours: plain `query_table` calls on `--in-flight` threads in this process
(libraries imported before the clock, as the peer's clock does), the version's raw tables once
each, then every synapse sub-batch of ours (the same post cells, 500 a query, the same
columns); no counts, no checks, nothing kept, shaped or written, no Dagster.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import psutil

from microns_assets.commands.dev import start_emulator
from microns_assets.emulator import DATASTACK

VERSION = 1300
PEER_JOB = Path(__file__).resolve().parents[3] / "shared" / "peer" / "peer_job.py"
DEFAULT_PEER = Path.home() / "peer-venv" / "bin" / "python"


def warm(url: str) -> float:
    """Every table of v1300 once (joined, unjoined, counted) and one small synapse query and count.

    The emulator builds each table, join and index of a version on its first query; whichever
    job ran first would pay for that (and the peer runs second), where a real server has them
    ready.
    """
    from microns_assets.cave import CaveConnection, CaveSettings, Filters

    start = time.perf_counter()
    conn = CaveConnection(CaveSettings(DATASTACK, url))
    table = conn.datastack_info()["synapse_table"]
    for other in conn.tables(VERSION):
        if other != table:
            conn.query(VERSION, other)
            conn.query(VERSION, other, merge_reference=False)
            conn.count_rows(VERSION, other)
    nucleus = conn.query(VERSION, "nucleus_detection_v0", select_columns=["id", "pt_root_id"])
    nucleus = nucleus.frame.head(10)
    roots = [int(r) for r in nucleus["pt_root_id"] if r]
    conn.query(VERSION, table, Filters(isin={"post_pt_root_id": roots}))
    conn.count_rows(VERSION, table, Filters(isin={"post_pt_root_id": roots}))
    return time.perf_counter() - start


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    times = process.cpu_times()
    return times.user + times.system


def ours(url: str, work: Path, in_flight: int, dagster_storage: bool = False):
    """Our whole job in this process; the report and the rows of the merged table.

    `dagster_storage`: the instance on Dagster's own SQLite storage class instead of
    `microns_assets.instance_storage` (the same files), to measure what ours saves.
    """
    os.environ.update(
        MICRONS_CAVE_SERVER=url,
        MICRONS_DATASTACK=DATASTACK,
        MICRONS_DATA_DIR=str(work / "data"),
        MICRONS_CAVE_IN_FLIGHT=str(in_flight),
    )
    import caveclient  # noqa: F401  # imported before the clock, as by the peer's script

    from microns_assets.commands.environment import dagster_yaml
    from microns_assets.definitions import defs
    from microns_assets.materialize import materialize_version
    from microns_assets.storage import read_frame

    (work / "home").mkdir()
    config = dagster_yaml(work / "home")  # as a new home
    if dagster_storage:
        config = re.sub(r"storage:\n  custom:\n.*\n.*\n.*\n", "", config)
        config += f"storage:\n  sqlite:\n    base_dir: {work / 'home'}\n"
    (work / "home" / "dagster.yaml").write_text(config)
    with dg.DagsterInstance.from_config(str(work / "home")) as instance:
        report = materialize_version(VERSION, instance=instance, defs=defs, out=sys.stderr)
    merged = read_frame(work / "data" / DATASTACK / f"v{VERSION}" / "synapses.parquet")
    return report, len(merged), int(merged["n_synapses"].sum())


def floor(url: str, work: Path, in_flight: int) -> tuple[float, float, float]:
    """The bare downloads of our job, as plain caveclient calls: (raw s, synapses s, CPU s)."""
    from concurrent.futures import ThreadPoolExecutor

    import caveclient
    import numpy as np

    from microns_assets.processing.chunks import chunk_of
    from microns_assets.storage import read_frame, read_provenance

    version_dir = work / "data" / DATASTACK / f"v{VERSION}"
    tables = []
    for path in sorted((version_dir / "cave_raw").glob("*.parquet")):
        source = read_provenance(path)
        if source.get("present"):
            tables.append(source["cave_table"])
    units = read_frame(version_dir / "units.parquet", columns=["pt_root_id"])
    roots = np.unique(units["pt_root_id"].dropna().to_numpy(np.int64))
    roots = roots[roots != 0]
    chunk = chunk_of(roots)
    batches = [
        post[i : i + 500] for c in range(32) for post in [roots[chunk == c]]
        for i in range(0, post.size, 500)
    ]  # fmt: skip
    client = caveclient.CAVEclient(DATASTACK, server_address=url, write_server_cache=False)
    mat = client.materialize
    synapse_table = client.info.get_datastack_info()["synapse_table"]

    def raw(table: str) -> int:
        return len(
            mat.query_table(
                table, split_positions=True, materialization_version=VERSION, metadata=False
            )
        )

    def synapses(post: np.ndarray) -> int:
        return len(
            mat.query_table(
                synapse_table, filter_in_dict={"post_pt_root_id": post.tolist()},
                select_columns=["id", "pre_pt_root_id", "post_pt_root_id", "size"],
                split_positions=True, materialization_version=VERSION, metadata=False,
            )
        )  # fmt: skip

    me = psutil.Process()
    cpu = cpu_seconds(me)
    start = time.perf_counter()
    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(raw, tables))
        raw_s = time.perf_counter() - start
        list(pool.map(synapses, batches))
    return raw_s, time.perf_counter() - start - raw_s, cpu_seconds(me) - cpu


def peer(python: Path, url: str, work: Path) -> tuple[float, int]:
    """The peer's job in its own process: (seconds, pairs stored)."""
    out = subprocess.run(
        [str(python), str(PEER_JOB), url, DATASTACK],
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"peer job ([\d.]+) seconds (\d+)", out.stdout)
    if found is None:
        raise RuntimeError(f"unexpected peer output: {out.stdout[-500:]} {out.stderr[-2000:]}")
    return float(found[1]), int(found[2])


def main() -> None:
    """Run both jobs against one emulator and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="30000")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--synapses-per-cell", type=int, default=140)
    parser.add_argument("--row-cap", type=int, default=200_000)
    parser.add_argument("--in-flight", type=int, default=4, help="MICRONS_CAVE_IN_FLIGHT")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER)
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--floor", action="store_true", help="also time the bare downloads")
    parser.add_argument(
        "--dagster-storage", action="store_true", help="Dagster's own SQLite storage class"
    )
    args = parser.parse_args()
    flags = [
        "--scale", args.scale, "--latency-ms", str(args.latency_ms),
        "--synapses-per-cell", str(args.synapses_per_cell), "--row-cap", str(args.row_cap),
    ]  # fmt: skip
    print(f"emulator {' '.join(flags)}", flush=True)
    start = time.perf_counter()
    emulator, url = start_emulator(flags)
    try:
        print(f"emulator ready in {time.perf_counter() - start:.1f} s, warmed in {warm(url):.1f} s")
        with tempfile.TemporaryDirectory(prefix="bench-version-") as tmp:
            work = Path(tmp)
            server = psutil.Process(emulator.pid)
            before = cpu_seconds(server)
            report, pairs, synapses = ours(url, work, args.in_flight, args.dagster_storage)
            server_ours = cpu_seconds(server) - before
            if not report.success:
                raise SystemExit(f"our job failed: {report.failures}")
            bare = floor(url, work, args.in_flight) if args.floor else None
            peer_s = peer_pairs = None
            if not args.no_peer:
                (work / "peer").mkdir()
                before = cpu_seconds(server)
                peer_s, peer_pairs = peer(args.peer_python, url, work / "peer")
                server_peer = cpu_seconds(server) - before
    finally:
        emulator.terminate()
        emulator.wait(timeout=60)
    print(f"\nours: {report.seconds:.1f} s for {len(report.run_ids)} runs")
    for run in report.times:
        share = run.cpu_seconds / run.seconds if run.seconds else 0.0
        print(
            f"  {run.stage:<40} {run.seconds:6.1f} s wall, {run.cpu_seconds:6.1f} s CPU "
            f"({share:.0%} of wall)"
        )
    print(f"  stored {pairs:,} pairs ({synapses:,} synapses)")
    print(f"  the emulator's CPU during our job: {server_ours:.1f} s")
    if bare is not None:
        raw_s, synapses_s, cpu_s = bare
        print(
            f"floor (plain caveclient calls, nothing else): {raw_s + synapses_s:.1f} s "
            f"(raw tables {raw_s:.1f} s, synapse sub-batches {synapses_s:.1f} s), {cpu_s:.1f} s CPU"
        )
    if peer_s is not None:
        print(f"peer: {peer_s:.1f} s, stored {peer_pairs:,} pairs")
        print(f"  the emulator's CPU during the peer's job: {server_peer:.1f} s")
        print(f"speed-up: {peer_s / report.seconds:.2f}x")
        if peer_pairs < pairs:
            lost = pairs - peer_pairs
            print(f"the peer silently lost {lost:,} of {pairs:,} pairs ({lost / pairs:.1%})")


if __name__ == "__main__":
    main()
