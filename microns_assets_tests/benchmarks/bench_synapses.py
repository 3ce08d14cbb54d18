"""Benchmark the synapse download against the emulator: chunks one at a time vs concurrently.

Run: `python microns_assets_tests/benchmarks/bench_synapses.py [--scale real] [--chunks 32]
[--latency-ms 50] [--workers 4] [--no-verify-counts]`. Starts `microns-assets emulator` in its
own process (so its CPU is not ours), builds the units of v1300 from it, then downloads the
default selection (every unit to every unit, aggregated) of the first `--chunks` chunks,
serially and with `--workers` chunks at a time (threads sharing one connection, as chunk steps
share a server). Prints wall time, pairs/s, queries, and the CPU time of this process and
of the emulator's: the download is bound by the server when the server's CPU and latency, not
ours, fill the wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from microns_assets.cave import CaveConnection, CaveSettings, Filters
from microns_assets.cave.synapses import download_synapses
from microns_assets.commands.dev import start_emulator
from microns_assets.config import load_versions_config
from microns_assets.emulator import DATASTACK
from microns_assets.processing import build_units
from microns_assets.processing.chunks import chunk_of
from microns_assets.processing.synapses import aggregate

VERSION = 1300


def cpu_seconds() -> float:
    """CPU time (user + system) of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of another process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Download chunks serially, then concurrently, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="real")
    parser.add_argument("--chunks", type=int, default=32)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--no-verify-counts", action="store_true")
    args = parser.parse_args()
    flags = ["--scale", args.scale, "--latency-ms", str(args.latency_ms)]
    emulator, url = start_emulator(flags)
    try:
        conn = CaveConnection(CaveSettings(DATASTACK, url))
        cfg = load_versions_config().get(VERSION)
        tables = {r: conn.query(VERSION, t).frame for r, t in cfg.tables.items() if t}
        units, _ = build_units(tables, version=VERSION)
        roots = units["pt_root_id"].to_numpy("int64")
        table = conn.datastack_info()["synapse_table"]
        conn.query(VERSION, table, Filters(isin={"post_pt_root_id": roots[:1].tolist()}))  # warm up

        def chunk(i: int) -> tuple[int, int]:
            rows, stats = download_synapses(
                conn, VERSION, table, roots[chunk_of(roots) == i], roots,
                individual=False, send_pre=False, verify_counts=not args.no_verify_counts,
            )  # fmt: skip
            return len(aggregate(rows)), stats.queries + stats.count_queries

        for label, workers in (("one at a time", 1), (f"{args.workers} at a time", args.workers)):
            start, cpu = time.perf_counter(), cpu_seconds()
            server_cpu = process_cpu_seconds(emulator.pid)
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(chunk, range(args.chunks)))
            elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
            server_cpu = process_cpu_seconds(emulator.pid) - server_cpu
            rows = sum(r for r, _ in results)
            print(
                f"{args.scale}: {args.chunks} chunks {label:<12} {elapsed:7.2f} s  "
                f"{rows:>10,} pairs  {rows / elapsed:>10,.0f} pairs/s  "
                f"{sum(q for _, q in results)} queries, {args.latency_ms:g} ms latency; "
                f"CPU: ours {cpu:.2f} s ({cpu / elapsed:.0%} of the wall time), "
                f"the server's {server_cpu:.2f} s",
                flush=True,
            )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


if __name__ == "__main__":
    main()
