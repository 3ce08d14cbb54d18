"""Benchmark the emulator: start time (fresh and cached) and query throughput via caveclient.

Run: `python microns_assets_tests/benchmarks/bench_emulator.py [--scales small real]
[--rows 1000000]`. Prints figures; asserts nothing (timings belong here, not in tests).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from microns_assets.cave import CaveConnection, CaveSettings, Filters
from microns_assets.emulator import Emulator

SYN = "synapses_pni_2"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_start(scale: str, cache_dir: Path) -> None:
    for label in ("fresh (generate + cache)", "cached"):
        start = time.perf_counter()
        with Emulator(scale=scale, cache_dir=cache_dir) as emu:
            _ = emu.world
            elapsed = time.perf_counter() - start
            n_syn = emu.world.synapses["id"].size
        print(
            f"start {scale:>5} {label:<26} {elapsed:7.2f} s   "
            f"({emu.n_nuclei} nuclei, {n_syn} synapses)"
        )


def bench_query(scale: str, cache_dir: Path, rows: int, version: int = 1300) -> None:
    with Emulator(scale=scale, cache_dir=cache_dir, row_cap=rows * 2) as emu:
        start = time.perf_counter()
        table = emu.tables(version).get(SYN)
        print(
            f"build {scale:>5} synapse table of v{version} (once per version) "
            f"{time.perf_counter() - start:6.2f} s  ({table.num_rows} rows)"
        )
        post = table["post_pt_root_id"].to_numpy()
        roots, counts = np.unique(post, return_counts=True)
        order = np.random.default_rng(0).permutation(roots.size)
        take = order[: np.searchsorted(np.cumsum(counts[order]), rows) + 1]
        wanted = roots[take].tolist()
        conn = CaveConnection(CaveSettings(emu.datastack, emu.url, row_cap=rows * 2))
        conn.versions()
        for label in ("cold (builds the server index)", "warm"):
            result = conn.query(
                version,
                SYN,
                Filters(isin={"post_pt_root_id": wanted}),
                select_columns=["id", "pre_pt_root_id", "post_pt_root_id", "size"],
            )
            n = len(result.frame)
            print(
                f"query {scale:>5} {label:<32} {n:>9} rows in {result.elapsed_s:6.2f} s = "
                f"{n / result.elapsed_s:>10,.0f} rows/s  ({len(wanted)} post roots, 4 columns)"
            )
        result = conn.query(version, SYN, Filters(isin={"post_pt_root_id": wanted}))
        n = len(result.frame)
        print(
            f"query {scale:>5} {'all 20 columns':<32} {n:>9} rows in {result.elapsed_s:6.2f}"
            f" s = {n / result.elapsed_s:>10,.0f} rows/s"
        )
    print(f"peak RSS of this process: {_peak_rss_mb():,.0f} MB")


def main() -> None:
    """Run the benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", nargs="+", default=["small", "real"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            bench_start(scale, Path(tmp))
        bench_query(args.scales[-1], Path(tmp), args.rows)


if __name__ == "__main__":
    main()
