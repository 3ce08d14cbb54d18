"""Benchmark `microns_assets.analysis` at real size, beside microns-combiner 0.4.0's functions.

Run: `python -m microns_assets_tests.benchmarks.bench_analysis [--scale real] [--version 1718]
[--peer DIR]`. Builds the units of a version from the emulator's tables (`build_units`) and
the aggregated synapse pairs among them from its synapse table (what `synapses` holds with the
default selection), then prints wall times of `connectivity_matrix`, `filter_connections`,
`remap_all_tables` and `unit_cells`. With `--peer` pointing at microns-combiner's installed
package folder (e.g. `~/peer-venv/lib/python3.11/site-packages/microns_combiner`), it also
times the peer's `remap_all_tables` and `filter_connections` on the same frames (its modules
import numpy, pandas and scipy only). The world is generated once into the emulator cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import time

import numpy as np
import pandas as pd

from microns_assets.analysis import (
    connectivity_matrix,
    filter_connections,
    remap_all_tables,
    unit_cells,
)
from microns_assets.cave import CaveConnection, CaveSettings
from microns_assets.config import load_versions_config
from microns_assets.emulator import Emulator
from microns_assets.processing import build_units

PRE, POST = "pre_pt_root_id", "post_pt_root_id"


def inputs(scale: str, version: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The units of `version` and their synapses aggregated by (pre, post)."""
    with Emulator(scale=scale) as emu:
        conn = CaveConnection(CaveSettings(emu.datastack, emu.url, row_cap=10_000_000))
        cfg = load_versions_config().get(version)
        tables = {
            role: conn.query(version, table).frame
            for role, table in cfg.tables.items()
            if table is not None
        }
        units, _ = build_units(tables, version=version, functional="none")
        synapses = emu.ground_truth(version, "synapses_pni_2")[[PRE, POST, "size"]]
    roots = units["pt_root_id"].to_numpy(np.int64)
    among = synapses[synapses[PRE].isin(roots) & synapses[POST].isin(roots)]
    pairs = among.groupby([PRE, POST], sort=True)["size"].agg(["sum", "count"]).reset_index()
    pairs = pairs.rename(columns={"sum": "size", "count": "n_synapses"})
    return units, pairs


def timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"  {label:<58} {time.perf_counter() - start:7.3f} s")
    return out


def load_peer(folder: str, module: str):
    path = pathlib.Path(folder) / module
    spec = importlib.util.spec_from_file_location(f"peer_{path.stem}", path)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="real")
    parser.add_argument("--version", type=int, default=1718)
    parser.add_argument("--peer", default=None, help="microns_combiner package folder")
    args = parser.parse_args()
    start = time.perf_counter()
    units, pairs = inputs(args.scale, args.version)
    cells = unit_cells(units)
    print(
        f"scale {args.scale} v{args.version}: {len(units):,} units ({len(cells):,} segments), "
        f"{len(pairs):,} pairs, {int(pairs['n_synapses'].sum()):,} synapses "
        f"(inputs built in {time.perf_counter() - start:.0f} s)"
    )
    print("ours:")
    timed("unit_cells(units)", unit_cells, units)
    matrix, _ = timed("connectivity_matrix(cells, pairs)", connectivity_matrix, cells, pairs)
    assert matrix.sum() == pairs["n_synapses"].sum()
    timed("connectivity_matrix(cells, pairs, weight='size')", connectivity_matrix, cells, pairs,
          weight="size")  # fmt: skip
    kept = timed(
        "filter_connections(layer=[L2/3, None], cell_type=[exc, BC])",
        filter_connections,
        units,
        pairs,
        layer=["L2/3", None],
        cell_type=["excitatory_neuron", "BC"],
    )
    timed("remap_all_tables(cells, pairs)", remap_all_tables, cells, pairs)
    print(f"  ({len(kept):,} connections kept by the filter)")
    if args.peer:
        print("microns-combiner 0.4.0:")
        remapper = load_peer(args.peer, "remapper/remapper.py")
        filters = load_peer(args.peer, "filters/filters.py")
        timed("remap_all_tables(cells, pairs)", remapper.remap_all_tables, cells, pairs.copy())
        peer_units = units.drop_duplicates("pt_root_id")
        timed(
            "filter_connections(layer=[L2/3, None], cell_type=[exc, BC])",
            filters.filter_connections,
            peer_units,
            pairs,
            layer=["L2/3", None],
            cell_type=["excitatory_neuron", "BC"],
        )


if __name__ == "__main__":
    main()
