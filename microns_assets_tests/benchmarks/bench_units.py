"""Benchmark `build_units` at real size (144,120 nuclei) on tables from the emulator.

Run: `python microns_assets_tests/benchmarks/bench_units.py [--scale real] [--seed-src DIR]`.
Prints wall time and peak traced memory of our compute per functional mode. With `--seed-src`
pointing at an unpacked microns-combiner 0.4.0 wheel (`pip download microns-combiner==0.4.0
--no-deps` then unzip), it also times the seed's processing functions on the same input.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import pathlib
import sys
import tempfile
import time
import tracemalloc
import types

from microns_assets.cave import CaveConnection, CaveSettings
from microns_assets.config import load_versions_config
from microns_assets.emulator import Emulator
from microns_assets.processing import build_units


def fetch_tables(scale: str, version: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, Emulator(scale=scale, cache_dir=tmp) as emu:
        conn = CaveConnection(CaveSettings(emu.datastack, emu.url, row_cap=10_000_000))
        cfg = load_versions_config().get(version)
        return {
            role: conn.query(version, table).frame
            for role, table in cfg.tables.items()
            if table is not None
        }


def time_ours(tables: dict, version: int, mode: str) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    units, segments = build_units(tables, version=version, functional=mode)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"build_units v{version} functional={mode:<9} {elapsed:6.3f} s  peak {peak / 2**20:6.1f} MB"
        f"  ({len(units)} rows, layers {', '.join(segments['layer'])})"
    )


def load_seed(src: str):
    root = pathlib.Path(src) / "microns_combiner"
    package = types.ModuleType("microns_combiner")
    package.__path__ = [str(root)]
    sys.modules["microns_combiner"] = package
    spec = importlib.util.spec_from_file_location(
        "microns_combiner.processing", root / "processing.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.resources = types.SimpleNamespace(files=lambda name: root / "config")
    return module


def time_seed(proc, tables: dict) -> None:
    start = time.perf_counter()
    nucleus = tables["nucleus"].rename(columns={"id": "nucleus_id"})
    units = proc._merge_nucleus_with_cell_types(nucleus, tables["cell_types"])
    units = proc._merge_brain_area(units, tables["brain_areas"])
    units = proc._merge_proofreading_status(units, tables["proofreading"], 0)
    with contextlib.redirect_stderr(io.StringIO()):
        units = proc._transform_positions(units)
    units = units[units["pt_root_id"] > 0].drop_duplicates(subset="pt_root_id", keep=False)
    units["tuning_type"] = "not_matched"
    segments = proc._divide_volume_into_segments(units, "aibs_metamodel_celltypes_v661")
    segments = proc._merge_segments_by_layer(segments)
    proc._add_layer_info(units, segments)
    print(
        f"seed process_nucleus_data steps (functional=none)  {time.perf_counter() - start:6.3f} s"
    )


def main() -> None:
    """Fetch the tables once, then time our build (and the seed's, if given)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="real")
    parser.add_argument("--version", type=int, default=1300)
    parser.add_argument("--seed-src", default=None)
    args = parser.parse_args()
    tables = fetch_tables(args.scale, args.version)
    print(f"input: {len(tables['nucleus'])} nuclei, {len(tables['cell_types'])} typed cells")
    for mode in ("none", "best_only", "all", "match"):
        time_ours(tables, args.version, mode)
    if args.seed_src:
        time_seed(load_seed(args.seed_src), tables)


if __name__ == "__main__":
    main()
