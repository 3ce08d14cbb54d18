"""The roll-up's summary of a version's chunk files, asked of the helper process.

`submit` asks the helper (`processing.painter`) for `processing.connectome.summarize_chunks` of
the chunk files the roll-up merges: their totals (which the roll-up's check holds the merged
file against), synapses by cell class, the connectome and its picture, made while the roll-up
itself sorts and writes. When `materialize` runs the roll-up right after the chunks in the same
process (`expect_rollup`), the chunk step asks already once it stored the version's last chunk
(`ask_early`): the helper then works while the step records its chunks' events and the
roll-up's run starts (at 30000 ~0.5 s, and the helper is the roll-up's longer path). The
roll-up takes that answer only for the same local files (path, size, modification time), the
same cells and the same mode, else it asks again; and an early answer that failed is asked for
again, once.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import pandas as pd
from upath import UPath

from microns_assets.analysis.connectivity import unit_cells
from microns_assets.processing.connectome import ChunkSummary
from microns_assets.processing.painter import HelperError, Pending, painter
from microns_assets.storage import is_local

_FUNCTION = "connectome.summarize_chunks"
_CELL_COLUMNS = ["pt_root_id", "layer", "cell_type", "classification_system"]


@dataclass(frozen=True)
class _Asked:
    files: tuple
    cells: pd.DataFrame
    counted: bool
    pending: Pending


class _Early:
    """What was asked early, by version, and which answers the roll-ups took."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expected: set[int] = set()
        self.asked: dict[int, _Asked] = {}
        self.taken: weakref.WeakSet[Pending] = weakref.WeakSet()
        self.again: weakref.WeakKeyDictionary[Pending, Pending] = weakref.WeakKeyDictionary()


_EARLY = _Early()


def _identity(paths: list[UPath]) -> tuple | None:
    """The files' paths, sizes and modification times (sorted); None unless all are local.

    (On object storage a modification time is coarse or absent and a listing may be cached:
    no early question there.)
    """
    out = []
    for path in paths:
        if not is_local(path):
            return None
        stat = path.stat()
        out.append((str(path), int(stat.st_size), int(stat.st_mtime_ns)))
    return tuple(sorted(out))


def _question(units: pd.DataFrame, mode: str) -> tuple[pd.DataFrame, bool]:
    """The cells and whether rows are counted pairs, as `summarize_chunks` takes them."""
    return unit_cells(units)[_CELL_COLUMNS], mode != "individual"


def expect_rollup(version: int) -> None:
    """Say that `version`'s roll-up runs in this process after its chunks (`materialize`)."""
    with _EARLY.lock:
        _EARLY.expected.add(version)


def forget_early(version: int) -> None:
    """No roll-up of `version` follows here: let go of what was asked early."""
    with _EARLY.lock:
        _EARLY.expected.discard(version)
        _EARLY.asked.pop(version, None)


def ask_early(version: int, chunk_files: list[UPath], units: pd.DataFrame, mode: str) -> bool:
    """Ask the helper now for the summary the roll-up of `version` will ask; whether asked.

    Only for a roll-up expected here (`expect_rollup`), with a helper running, of local files.
    A file that cannot be read now is no error here (the roll-up will say): nothing is asked.
    """
    with _EARLY.lock:
        if version not in _EARLY.expected:
            return False
    if painter().pid() is None:
        return False
    try:
        files = _identity(chunk_files)
    except OSError:
        return False
    if files is None:
        return False
    cells, counted = _question(units, mode)
    pending = painter().submit(_FUNCTION, list(chunk_files), cells, counted)
    with _EARLY.lock:
        _EARLY.asked[version] = _Asked(files, cells, counted, pending)
    return True


def submit(version: int, chunk_files: list[UPath], units: pd.DataFrame, mode: str) -> Pending:
    """Ask for the summary of `version`'s chunk files: its `result()` is a `ChunkSummary`.

    Made by the helper if one runs, else in this process when asked for. The same question
    asked early (`ask_early`) is not asked again.
    """
    cells, counted = _question(units, mode)
    with _EARLY.lock:
        early = _EARLY.asked.pop(version, None)
        _EARLY.expected.discard(version)
    if early is not None and early.counted == counted and early.cells.equals(cells):
        try:
            same = early.files == _identity(chunk_files)
        except OSError:
            same = False  # (a file gone: asked again, and the roll-up says what is missing)
        if same:
            with _EARLY.lock:
                _EARLY.taken.add(early.pending)
            return early.pending
    return painter().submit(_FUNCTION, list(chunk_files), cells, counted)


def asked_early(pending: Pending) -> bool:
    """Whether `submit` gave the answer to a question asked early."""
    with _EARLY.lock:
        return pending in _EARLY.taken


def summary_of(pending: Pending) -> ChunkSummary:
    """`submit`'s answer, waiting for it; an early one that failed is asked for again, once.

    Its connectome is a scipy matrix, so taking in the answer imports scipy.sparse (~0.13 s)
    if this process has not yet. Imported here first: while the helper still works and this
    step waits (its merged file written), not on the roll-up's path once the answer arrived.
    """
    import scipy.sparse  # noqa: F401

    try:
        return pending.result()
    except HelperError:
        with _EARLY.lock:
            if pending not in _EARLY.taken:
                raise
            again = _EARLY.again.get(pending)
            if again is None:
                again = painter().submit(pending.name, *pending.args)
                _EARLY.again[pending] = again
        return again.result()
