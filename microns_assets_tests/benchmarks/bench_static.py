"""Benchmark: a static synapse dump into the 32 chunks, beside microns-combiner 0.4.0's filter.

Run: `python -m microns_assets_tests.benchmarks.bench_static [--scale real] [--version 1507]
[--peer-python ~/peer-venv/bin/python] [--work DIR]`. Writes the emulator's static synapse
dump of an expired version (at `real` scale: 144,120 nuclei, ~20.2M synapses) and its header
to `--work` (kept for later runs), then times, each in a fresh process with its peak memory
(`VmHWM` of the process: `ru_maxrss` would carry over the
parent's peak through fork and exec):

- ours: `static_dumps.synapses.split_synapses` into the 32 chunks (post cells: the version's
  nucleus roots, pre cells the same set), each chunk aggregated by pair (`aggregate`), as the
  `synapse_chunks` step does for an expired version;
- the peer (with `--peer-python`, a Python with microns-combiner 0.4.0 installed:
  `python3 -m venv ~/peer-venv && ~/peer-venv/bin/pip install microns-combiner==0.4.0`): its
  `downloader._filter_static_synapses` on the same file and cells (pandas chunks of 500,000
  rows, pairs merged), which writes one CSV.

Both results are compared (pairs, synapses, summed size). Prints the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from microns_assets.emulator import Emulator
from microns_assets.static_dumps.synapses import synapse_files

TABLE = "synapses_pni_2"

OURS = """
import json, sys, time
from pathlib import Path
import numpy as np
from microns_assets.processing.chunks import chunk_of
from microns_assets.processing.synapses import aggregate
from microns_assets.static_dumps.synapses import split_synapses
from microns_assets.static_dumps.tables import read_header
work, header, data = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
roots = np.load(work / "roots.npy")
start = time.perf_counter()
labels = chunk_of(roots)
chunks = {f"{c:02d}": roots[labels == c] for c in range(32)}
pairs = synapses = size = 0
for label, rows, _ in split_synapses(data, read_header(header), chunks, roots,
                                     individual=False, work_dir=work):
    out = aggregate(rows)
    pairs += len(out); synapses += int(out["n_synapses"].sum()); size += int(out["size"].sum())
seconds = time.perf_counter() - start
peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "pairs": pairs,
                  "synapses": synapses, "size": size}))
"""

PEER = """
import json, sys, time, logging
from pathlib import Path
import numpy as np, pandas as pd
from microns_combiner import downloader
work = Path(sys.argv[1])
roots = np.load(work / "roots.npy")
start = time.perf_counter()
downloader._filter_static_synapses(str(work), roots, roots, "peer_result",
                                   drop_synapses_duplicates=True, chunksize=500_000)
seconds = time.perf_counter() - start
peak = int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) / 1024
result = pd.read_csv(work / "peer_result.csv")
print(json.dumps({"seconds": seconds, "peak_mb": peak, "pairs": len(result),
                  "synapses": None, "size": int(result["size"].sum())}))
"""


def write_dump(scale: str, version: int, work: Path) -> tuple[Path, Path, int]:
    """The dump files and the roots of `version` in `work` (written once); the row count."""
    header_name, data_name = synapse_files(TABLE)
    header, data = work / header_name, work / data_name
    with Emulator(scale=scale) as emu:
        rows = emu.tables(version).get(TABLE).num_rows
        if not data.exists():
            print(f"writing the static synapse dump of v{version} ({rows:,} rows) ...", flush=True)
            header.write_bytes(emu.server.static.get(version, header_name))
            part = data.with_name(data.name + ".part")
            part.write_bytes(emu.server.static.get(version, data_name))
            part.rename(data)
        roots = emu.ground_truth(version, "nucleus_detection_v0")["pt_root_id"].to_numpy(np.int64)
    np.save(work / "roots.npy", np.unique(roots[roots != 0]))
    return header, data, rows


def run(python: str, script: str, *args: str) -> dict:
    out = subprocess.run(
        [python, "-c", textwrap.dedent(script), *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="real")
    parser.add_argument("--version", type=int, default=1507)
    parser.add_argument("--peer-python", default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-static"))
    args = parser.parse_args()
    work = args.work / f"{args.scale}-v{args.version}"
    work.mkdir(parents=True, exist_ok=True)
    header, data, rows = write_dump(args.scale, args.version, work)
    size = data.stat().st_size
    print(f"dump: {rows:,} synapses, {size / 1e6:,.0f} MB gzip ({data})")
    ours = run(sys.executable, OURS, str(work), str(header), str(data))
    print(
        f"ours (split_synapses into 32 chunks + aggregate): {ours['seconds']:.1f} s, "
        f"peak {ours['peak_mb']:,.0f} MB; {ours['pairs']:,} pairs, {ours['synapses']:,} "
        f"synapses, size sum {ours['size']:,}"
    )
    if args.peer_python:
        peer = run(args.peer_python, PEER, str(work))
        print(
            f"microns-combiner 0.4.0 _filter_static_synapses: {peer['seconds']:.1f} s, peak "
            f"{peer['peak_mb']:,.0f} MB; {peer['pairs']:,} pairs, size sum {peer['size']:,}"
        )
        same = peer["pairs"] == ours["pairs"] and peer["size"] == ours["size"]
        print(f"same pairs and sizes: {same}; speed-up {peer['seconds'] / ours['seconds']:.1f}x")


if __name__ == "__main__":
    main()
