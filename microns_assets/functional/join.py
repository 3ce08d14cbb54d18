"""`unit_responses`: the recorded responses of the units that were matched to a functional unit.

A `units` table built with `functional` mode `match`, `all` or `best_only` has, for each matched
row, the `session`, `scan_idx` and functional unit id (`functional_unit_id`; `unit_id` in
`best_only`) of the scan unit coregistered to the cell. This module finds that unit's row of
`responses` in the recordings file and returns its trace for every trial of the scan.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd

from microns_assets.functional.reader import FunctionalKeyError, FunctionalReader

ID_COLUMNS = ("nucleus_id", "pt_root_id")


class UnmatchedUnitsWarning(UserWarning):
    """Some matched units have no responses in the recordings file."""


def _unit_column(units: pd.DataFrame) -> str:
    for name in ("functional_unit_id", "unit_id"):
        if name in units.columns:
            return name
    raise ValueError(
        "units has no functional unit ids: build it with functional mode 'match', 'all' or "
        "'best_only' (units config `functional`), which adds session, scan_idx and "
        "functional_unit_id"
    )


def unit_responses(
    units: pd.DataFrame,
    reader: FunctionalReader,
    *,
    trials: list[int] | int | None = None,
    missing: Literal["warn", "raise"] = "warn",
) -> pd.DataFrame:
    """One row per matched unit row and trial of its scan, with that unit's responses.

    Args:
        units: what `load("units", v)` returns (rows without a functional match are skipped).
        reader: an open `FunctionalReader`.
        trials: only these trial indices of each scan, or one (default all, as the file
            numbers them).
        missing: a matched unit whose scan or unit id the file lacks: `warn` (an
            `UnmatchedUnitsWarning` with how many and which, and the rows in
            `result.attrs["missing_units"]`) or `raise` (`FunctionalKeyError`).

    Returns:
        Columns `nucleus_id`, `pt_root_id` (those units has), `session`, `scan_idx`,
        `functional_unit_id`, `trial_idx`, `condition_hash` and `responses` (the unit's trace in
        that trial, a 1-D float array over frames), in the order of `units` then trial.
    """
    if missing not in ("warn", "raise"):
        raise ValueError(f"missing must be 'warn' or 'raise', not {missing!r}")
    if isinstance(trials, int | np.integer):
        trials = [int(trials)]
    unit_col = _unit_column(units)
    keep = [c for c in ID_COLUMNS if c in units.columns]
    matched = units.assign(_row=np.arange(len(units)))
    partial = matched["session"].notna() != matched["scan_idx"].notna()
    if partial.any():
        rows = units[partial.to_numpy()]
        example = rows[[c for c in ID_COLUMNS if c in rows]].head(3).to_dict("records")
        raise ValueError(
            f"{int(partial.sum())} row(s) of units have a session without a scan_idx or the "
            f"reverse (e.g. {example}): a matched unit needs both; load units as the units "
            "asset stored them"
        )
    matched = matched[matched["session"].notna() & matched[unit_col].notna()]
    key = (
        matched["session"].astype("int64").astype(str)
        + "_"
        + matched["scan_idx"].astype("int64").astype(str)
    )
    available = set(reader.sessions())
    pieces: list[pd.DataFrame] = []
    lost: list[pd.DataFrame] = []
    for session_key in pd.unique(key):
        rows = matched[key == session_key]
        if session_key not in available:
            lost.append(rows)
            continue
        ids = reader.unit_ids(session_key)
        if ids.size == 0:  # a scan without units: none of its rows has responses
            lost.append(rows)
            continue
        order = np.argsort(ids, kind="stable")
        wanted = rows[unit_col].to_numpy(dtype=np.int64)
        at = np.searchsorted(ids, wanted, sorter=order).clip(max=ids.size - 1)
        found = ids[order[at]] == wanted
        if not found.all():
            lost.append(rows[~found])
        rows, positions = rows[found], order[at[found]]
        if rows.empty:
            continue
        hashes = reader.get_hashes_by_session(session_key)
        indices = reader.trial_indices(session_key) if trials is None else trials
        for trial_idx in indices:
            trial = reader.get_trial(session_key, trial_idx)  # an unknown index: named
            if not 0 <= int(trial_idx) < len(hashes):
                raise FunctionalKeyError(
                    f"session {session_key}: trial {trial_idx} has no condition hash (the file "
                    f"lists {len(hashes)}, one per trial in trial order); the file does not "
                    "number its trials 0..n-1 as expected: report it with the file's URL"
                )
            piece = rows[keep].reset_index(drop=True)
            piece["session"] = rows["session"].to_numpy()
            piece["scan_idx"] = rows["scan_idx"].to_numpy()
            piece["functional_unit_id"] = rows[unit_col].to_numpy()
            piece["trial_idx"] = int(trial_idx)
            piece["condition_hash"] = hashes[int(trial_idx)]
            piece["responses"] = list(trial["responses"][positions])
            piece["_row"] = rows["_row"].to_numpy()
            pieces.append(piece)
    missing_rows = pd.concat(lost).drop(columns="_row") if lost else units.iloc[0:0]
    if len(missing_rows):
        detail = (
            f"{len(missing_rows)} matched unit row(s) have no responses in {reader.path.name} "
            f"(scan or unit id not in the file), e.g. "
            f"{missing_rows[['session', 'scan_idx', unit_col]].head(3).to_dict('records')}"
        )
        if missing == "raise":
            raise FunctionalKeyError(detail)
        warnings.warn(detail, UnmatchedUnitsWarning, stacklevel=2)
    columns = [*keep, "session", "scan_idx", "functional_unit_id", "trial_idx",
               "condition_hash", "responses"]  # fmt: skip
    if not pieces:
        out = pd.DataFrame(columns=columns)
    else:
        out = pd.concat(pieces, ignore_index=True)
        out = out.sort_values(["_row", "trial_idx"], kind="stable")[columns]
        out = out.reset_index(drop=True)
    out.attrs["missing_units"] = missing_rows
    return out
