"""The `connectome` of a version: its units' synapses as a sparse matrix, built by the roll-up.

The roll-up step (`assets.py`) builds it, so a version stays three runs: from the chunk files it
merges (the same rows as the merged file; a matrix does not depend on their order), in the
helper process (`processing.connectome`, `processing.painter`, with the chunks' totals and
synapses by class) while the step itself sorts and writes the merged file, and stores it once
the merged file passed its check (the helper's answer: `summary.py`). Rows are presynaptic,
columns postsynaptic, in the order of the version's units (one row per segment,
`analysis.unit_cells`); values are synapses per pair. Its check holds the matrix against the
roll-up: synapses in the matrix plus those with a partner outside the units equal the synapses
the roll-up wrote.
"""

from __future__ import annotations

import dagster as dg

from microns_assets import catalogue
from microns_assets.metadata import png_markdown
from microns_assets.processing.connectome import BuiltConnectome
from microns_assets.storage import Connectome

KEY = dg.AssetKey(catalogue.CONNECTOME.key)
CHECK = dg.AssetCheckSpec(
    "sums_match_synapses",
    asset=KEY,
    description="Synapses in the matrix plus those with a partner outside the units equal the "
    "synapses the roll-up wrote.",
)


def finish(
    built: BuiltConnectome, synapses_written: int, provenance: dict
) -> tuple[Connectome, dict, dg.AssetCheckResult]:
    """The connectome to store, its metadata (picture included) and its check (see module)."""
    matrix, index = built.matrix, built.index
    metadata = {
        "units": dg.MetadataValue.int(len(index)),
        "connected_pairs": dg.MetadataValue.int(int(matrix.nnz)),
        "synapses": dg.MetadataValue.int(built.inside),
        "synapses_with_a_partner_outside_units": dg.MetadataValue.int(built.outside),
        "density": dg.MetadataValue.float(matrix.nnz / max(len(index), 1) ** 2),
        "picture": png_markdown(built.picture, "connectome by layer and type"),
    }
    check = dg.AssetCheckResult(
        asset_key=KEY,
        check_name=CHECK.name,
        passed=built.inside + built.outside == synapses_written,
        metadata={
            "in_matrix": built.inside,
            "outside_units": built.outside,
            "written_by_rollup": synapses_written,
        },
    )
    return Connectome(matrix, index, provenance), metadata, check
