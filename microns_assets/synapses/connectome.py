"""The `connectome` of a version: its units' synapses as a sparse matrix, built by the roll-up.

The roll-up step (`assets.py`) builds it, so a version stays three runs: from the chunk files it
merges (the same rows as the merged file; a matrix does not depend on their order), in the
helper process (`processing.connectome`, `processing.painter`, with the chunks' totals and
synapses by class) while the step itself sorts and writes the merged file, and stores it once
the merged file passed its check. When `materialize` runs the roll-up right after the chunks,
the chunk step asks the helper for this summary as soon as it stored the version's last chunk
(`ask_early`), and the roll-up takes that answer for the same files. Rows are presynaptic,
columns postsynaptic, in the order of the version's units (one row per segment,
`analysis.unit_cells`); values are synapses per pair. Its check holds the matrix against the
roll-up: synapses in the matrix plus those with a partner outside the units equal the synapses
the roll-up wrote.
"""

from __future__ import annotations

import threading

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


class _Early:
    """Summaries asked for before their roll-up started (`ask_early`), by version."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expected: set[int] = set()
        self.asked: dict[int, tuple[tuple, pd.DataFrame, bool, Pending]] = {}


_EARLY = _Early()
_CELL_COLUMNS = ["pt_root_id", "layer", "cell_type", "classification_system"]


def _identity(paths: list[UPath]) -> tuple | None:
    """The files' paths, sizes and modification times (sorted); None if one lacks a time."""
    out = []
    for path in paths:
        stat = path.stat()
        mtime = getattr(stat, "st_mtime_ns", None)
        if mtime is None:
            return None
        out.append((str(path), int(stat.st_size), int(mtime)))
    return tuple(sorted(out))


def expect_rollup(version: int) -> None:
    """Say that `version`'s roll-up runs in this process after its chunks (`materialize`)."""
    with _EARLY.lock:
        _EARLY.expected.add(version)


def forget_early(version: int) -> None:
    """No roll-up of `version` follows here: let go of what was asked early (`ask_early`)."""
    with _EARLY.lock:
        _EARLY.expected.discard(version)
        _EARLY.asked.pop(version, None)


def ask_early(version: int, chunk_files: list[UPath], units: pd.DataFrame, mode: str) -> bool:
    """Ask the helper now for the summary the roll-up of `version` will ask for; whether asked.

    The chunk step calls this once it stored every chunk of `version`: the helper then works
    while the step records its chunks' events and the roll-up's run starts (at 30000 ~0.5 s,
    and the helper is the roll-up's longer path). `submit` takes this answer only if it asks
    for the same files (path, size, modification time), cells and mode, else it asks again.
    Only for a roll-up expected in this process (`expect_rollup`) with a helper running.
    """
    with _EARLY.lock:
        if version not in _EARLY.expected or painter().pid() is None:
            return False
        files = _identity(chunk_files)
        if files is None:
            return False
        cells, counted = unit_cells(units)[_CELL_COLUMNS], mode != "individual"
        pending = painter().submit("connectome.summarize_chunks", list(chunk_files), cells, counted)
        _EARLY.asked[version] = (files, cells, counted, pending)
    return True


def submit(version: int, chunk_files: list[UPath], units: pd.DataFrame, mode: str) -> Pending:
    """Ask the helper process for the summary of the version's chunk files (see the module).

    Its `result()` is a `processing.connectome.ChunkSummary`: the chunks' totals, synapses by
    cell class with its picture, and the connectome; built in this process when it is asked
    for, if no helper runs. The same question asked early (`ask_early`) is not asked again.
    """
    cells, counted = unit_cells(units)[_CELL_COLUMNS], mode != "individual"
    with _EARLY.lock:
        early = _EARLY.asked.pop(version, None)
        _EARLY.expected.discard(version)
    if early is not None:
        files, early_cells, early_counted, pending = early
        same = files == _identity(chunk_files) and early_counted == counted
        if same and early_cells.equals(cells):
            return pending
    return painter().submit("connectome.summarize_chunks", list(chunk_files), cells, counted)


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
