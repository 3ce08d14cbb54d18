"""Benchmark the synapse roll-up: wall time and peak memory as the number of chunks grows.

Run: `python microns_assets_tests/benchmarks/bench_rollup.py [--chunks 50 200] [--rows 50000]`.
Writes synthetic aggregate chunks (zstd Parquet, sorted within each chunk), then rolls them up
with `storage.rollup` (DuckDB out-of-core sort, streamed write) in a fresh process per size and
prints wall time, peak RSS and the output size. Reference figures (same machine
class): the seed's repeated `pd.concat` of CSVs, 200 x 50k rows: 17.9 s, 888 MB; a plain
pyarrow stream from Parquet chunks into one file: 2.6 s, 567 MB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from upath import UPath


def write_chunks(folder: Path, n_chunks: int, rows: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n_chunks):
        frame = pd.DataFrame(
            {
                "pre_pt_root_id": 864691134800000000 + rng.integers(0, 2_000_000_000, rows),
                "post_pt_root_id": 864691134800000000 + rng.integers(0, 2_000_000_000, rows),
                "size": rng.integers(40, 50_000, rows),
                "n_synapses": rng.integers(1, 6, rows),
            }
        ).sort_values(["pre_pt_root_id", "post_pt_root_id"])
        path = folder / f"{i:03d}.parquet"
        frame.to_parquet(path, compression="zstd", index=False)
        paths.append(path)
    return paths


def rollup_child(folder: str, out: str) -> None:
    from microns_assets.storage.rollup import Streamed, sorted_batches, write_batches

    paths = sorted(UPath(folder).glob("*.parquet"))
    start = time.perf_counter()
    reader = sorted_batches(paths, ["pre_pt_root_id", "post_pt_root_id"], temp_dir=folder)
    written = write_batches(Streamed(reader, {}, tally=("size",)), UPath(out))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": peak,
                      "rows": written.rows, "bytes": written.bytes}))  # fmt: skip


def main() -> None:
    """Time the roll-up of growing numbers of chunks, each in a fresh process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rollup_child(*args.child)
        return
    for n in args.chunks:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "chunks"
            folder.mkdir()
            write_chunks(folder, n, args.rows)
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(folder), str(Path(tmp) / "out.parquet")],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"roll-up {n:>4} chunks x {args.rows} rows = {r['rows']:>10,} rows: "
                f"{r['seconds']:6.2f} s, peak RSS {r['peak_rss_mb']:7.0f} MB, "
                f"output {r['bytes'] / 2**20:6.1f} MB"
            )


if __name__ == "__main__":
    main()
