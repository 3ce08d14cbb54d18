"""The `connectome` of a version: its units' synapses as a sparse matrix, built by the roll-up.

The roll-up step (`assets.py`) builds it, so a version stays three runs: from the chunk files it
merges (the same rows as the merged file; a matrix does not depend on their order), in the
helper process (`processing.connectome`, `processing.painter`, with the chunks' totals and
synapses by class) while the step itself sorts and writes the merged file, and stores it once
the merged file passed its check. Rows are
presynaptic, columns postsynaptic, in the order of the version's units (one row per segment,
`analysis.unit_cells`); values are synapses per pair. Its check holds the matrix against the
roll-up: synapses in the matrix plus those with a partner outside the units equal the synapses
the roll-up wrote.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from upath import UPath

from microns_assets import catalogue
from microns_assets.analysis.connectivity import unit_cells
from microns_assets.metadata import png_markdown
from microns_assets.processing.connectome import BuiltConnectome, ChunkSummary
from microns_assets.processing.painter import Pending, painter
from microns_assets.storage import Connectome

KEY = dg.AssetKey(catalogue.CONNECTOME.key)
CHECK = dg.AssetCheckSpec(
    "sums_match_synapses",
    asset=KEY,
    description="Synapses in the matrix plus those with a partner outside the units equal the "
    "synapses the roll-up wrote.",
)


def submit(chunk_files: list[UPath], units: pd.DataFrame, mode: str) -> Pending:
    """Ask the helper process for the summary of the version's chunk files (see the module).

    Its `result()` is a `processing.connectome.ChunkSummary`: the chunks' totals, synapses by
    cell class with its picture, and the connectome; built in this process when it is asked
    for, if no helper runs.
    """
    columns = ["pt_root_id", "layer", "cell_type", "classification_system"]
    cells = unit_cells(units)[columns]
    return painter().submit(
        "connectome.summarize_chunks", list(chunk_files), cells, mode != "individual"
    )


def summary_of(pending: Pending) -> ChunkSummary:
    """`submit`'s answer, waiting for the helper to send it.

    Its connectome is a scipy matrix, so taking in the answer imports scipy.sparse (~0.13 s)
    if this process has not yet. Imported here first: while the helper still works and this
    step waits (its merged file written), not on the roll-up's path once the answer arrived.
    """
    import scipy.sparse  # noqa: F401

    return pending.result()


def finish(
    built: BuiltConnectome, synapses_written: int, provenance: dict
) -> tuple[Connectome, dict, dg.AssetCheckResult]:
    """The connectome to store, its metadata and its check against the roll-up's synapses.

    Its picture is drawn by the helper while the IO manager writes it, and attached then.
    """
    matrix, index = built.matrix, built.index
    metadata = {
        "units": dg.MetadataValue.int(len(index)),
        "connected_pairs": dg.MetadataValue.int(int(matrix.nnz)),
        "synapses": dg.MetadataValue.int(built.inside),
        "synapses_with_a_partner_outside_units": dg.MetadataValue.int(built.outside),
        "density": dg.MetadataValue.float(matrix.nnz / max(len(index), 1) ** 2),
    }
    picture = painter().submit("connectome_grid_png", built.grid)  # drawn while it is written
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

    def later() -> dict:
        return {"picture": png_markdown(picture.result(), "connectome by layer and type")}

    return Connectome(matrix, index, provenance, later=later), metadata, check
