"""The `connectome` of a version: its units' synapses as a sparse matrix, built by the roll-up.

The roll-up step (`assets.py`) builds it from the `synapses` file it has just written, so a
version stays three runs. Rows are presynaptic, columns postsynaptic, in the order of the
version's units (one row per segment, `analysis.unit_cells`); values are synapses per pair.
Its check holds the matrix against the roll-up: synapses in the matrix plus those with a
partner outside the units equal the synapses written.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
from upath import UPath

from microns_assets import catalogue
from microns_assets.analysis.connectivity import (
    POST,
    PRE,
    connectivity_with_outside,
    unit_cells,
)
from microns_assets.metadata import png_markdown
from microns_assets.processing.painter import painter
from microns_assets.processing.plots import connectome_grid
from microns_assets.storage import Connectome, read_frame

KEY = dg.AssetKey(catalogue.CONNECTOME.key)
CHECK = dg.AssetCheckSpec(
    "sums_match_synapses",
    asset=KEY,
    description="Synapses in the matrix plus those with a partner outside the units equal the "
    "synapses the roll-up wrote.",
)


def build(
    synapses_file: UPath, units: pd.DataFrame, mode: str, synapses_written: int, provenance: dict
) -> tuple[Connectome, dict, dg.AssetCheckResult]:
    """The connectome of the roll-up in `synapses_file`, its metadata and its check."""
    counted = mode != "individual"
    columns = [PRE, POST, *(["n_synapses"] if counted else [])]
    synapses = read_frame(synapses_file, columns=columns)
    cells = unit_cells(units)
    matrix, index, left_out = connectivity_with_outside(cells, synapses, weight="n_synapses")
    weights = synapses["n_synapses"].to_numpy(np.int64) if counted else np.ones(len(synapses))
    outside = int(weights[left_out].sum())
    inside = int(matrix.sum())
    connectome = Connectome(matrix, index, provenance)
    metadata = {
        "units": dg.MetadataValue.int(len(index)),
        "connected_pairs": dg.MetadataValue.int(int(matrix.nnz)),
        "synapses": dg.MetadataValue.int(inside),
        "synapses_with_a_partner_outside_units": dg.MetadataValue.int(outside),
        "density": dg.MetadataValue.float(matrix.nnz / max(len(index), 1) ** 2),
        "picture": png_markdown(
            painter().draw("connectome_grid_png", connectome_grid(matrix, cells)),
            "connectome by layer and type",
        ),
    }
    check = dg.AssetCheckResult(
        asset_key=KEY,
        check_name=CHECK.name,
        passed=inside + outside == synapses_written,
        metadata={
            "in_matrix": inside,
            "outside_units": outside,
            "written_by_rollup": synapses_written,
        },
    )
    return connectome, metadata, check
