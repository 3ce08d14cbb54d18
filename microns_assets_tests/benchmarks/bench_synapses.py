"""Benchmark the synapse download against the emulator: chunks one at a time vs concurrently.

Run: `python microns_assets_tests/benchmarks/bench_synapses.py [--scale real] [--chunks 4]
[--latency-ms 50] [--workers 4]`. Builds the units of v1300 from the emulator, then downloads
the default selection (every unit to every unit, aggregated) for the first `--chunks` chunks,
serially and with `--workers` chunks at a time (threads sharing one connection, as chunk steps
share a server), and prints wall time, rows/s and queries.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from microns_assets.cave import CaveConnection, CaveSettings
from microns_assets.cave.synapses import download_synapses
from microns_assets.config import load_versions_config
from microns_assets.emulator import Emulator, Faults
from microns_assets.processing import build_units
from microns_assets.processing.chunks import chunk_of
from microns_assets.processing.synapses import aggregate

VERSION = 1300


def main() -> None:
    """Download chunks serially, then concurrently, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="real")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Emulator(scale=args.scale, cache_dir=tmp) as emu:
        conn = CaveConnection(CaveSettings(emu.datastack, emu.url))
        cfg = load_versions_config().get(VERSION)
        tables = {r: conn.query(VERSION, t).frame for r, t in cfg.tables.items() if t}
        units, _ = build_units(tables, version=VERSION)
        roots = units["pt_root_id"].to_numpy("int64")
        table = conn.datastack_info()["synapse_table"]
        emu.tables(VERSION).get(table)  # build the version's table before timing
        conn.query(VERSION, table, filter_in={"post_pt_root_id": roots[:1].tolist()})
        emu.server.faults = Faults(latency_ms=args.latency_ms)

        def chunk(i: int) -> tuple[int, int]:
            rows, stats = download_synapses(
                conn, VERSION, table, roots[chunk_of(roots) == i], roots,
                individual=False, send_pre=False,
            )  # fmt: skip
            return len(aggregate(rows)), stats.queries

        for label, workers in (("one at a time", 1), (f"{args.workers} at a time", args.workers)):
            emu.server.stats.reset()
            start = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                results = list(pool.map(chunk, range(args.chunks)))
            elapsed = time.perf_counter() - start
            rows = sum(r for r, _ in results)
            print(
                f"{args.scale}: {args.chunks} chunks {label:<12} {elapsed:7.2f} s  "
                f"{rows:>9,} pairs  {rows / elapsed:>10,.0f} pairs/s  "
                f"{sum(q for _, q in results)} queries, {args.latency_ms:g} ms latency, "
                f"max {emu.server.stats.max_in_flight} requests in flight"
            )


if __name__ == "__main__":
    main()
