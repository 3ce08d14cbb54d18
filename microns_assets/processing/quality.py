"""Quality rules for the units table and layer segments, as plain functions.

Each returns an `Outcome`; `microns_assets.units.checks` turns them into Dagster asset checks.
No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from microns_assets import vocabulary as vocab

MIN_LAYER_SHARE = 0.99
_FUNCTIONAL_KEYS = ("session", "scan_idx", "functional_unit_id")


@dataclass
class Outcome:
    """Whether a rule holds, what was found, and figures for the UI."""

    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


def unique_keys(units: pd.DataFrame) -> Outcome:
    """Each nucleus has one root and each root one nucleus; rows unique per nucleus (and scan)."""
    roots_per_nucleus = units.groupby("nucleus_id")["pt_root_id"].nunique()
    nuclei_per_root = units.groupby("pt_root_id")["nucleus_id"].nunique()
    keys = ["nucleus_id", *[k for k in _FUNCTIONAL_KEYS if k in units]]
    duplicated_rows = int(units.duplicated(subset=keys).sum())
    bad_nuclei = int((roots_per_nucleus > 1).sum())
    bad_roots = int((nuclei_per_root > 1).sum())
    passed = bad_nuclei == 0 and bad_roots == 0 and duplicated_rows == 0
    return Outcome(
        passed,
        "nucleus_id and pt_root_id identify units one to one"
        if passed
        else f"{bad_nuclei} nuclei with several roots, {bad_roots} roots with several nuclei, "
        f"{duplicated_rows} duplicated rows by {keys}",
        {
            "nuclei_with_several_roots": bad_nuclei,
            "roots_with_several_nuclei": bad_roots,
            "duplicated_rows": duplicated_rows,
        },
    )


def no_zero_root(units: pd.DataFrame) -> Outcome:
    """No unit has root id 0 (outside the segmentation) or a missing root id."""
    bad = int((units["pt_root_id"].fillna(0) == 0).sum())
    return Outcome(bad == 0, f"{bad} units with root id 0 or missing", {"bad_rows": bad})


def value_sets(units: pd.DataFrame) -> Outcome:
    """Categorical columns hold only the dataset's known values."""
    allowed = {
        "cell_type": vocab.CELL_TYPES,
        "classification_system": vocab.CLASSIFICATION_SYSTEMS,
        "brain_area": vocab.BRAIN_AREAS,
        "strategy_axon": vocab.STRATEGY_AXON,
        "strategy_dendrite": vocab.STRATEGY_DENDRITE,
        "layer": vocab.CORTICAL_LAYERS,
    }
    unexpected = {}
    for column, values in allowed.items():
        seen = set(units[column].dropna().unique())
        extra = sorted(seen - set(values))
        if extra:
            unexpected[column] = extra
    description = "all values known" if not unexpected else f"unexpected values: {unexpected}"
    return Outcome(not unexpected, description, {k: ", ".join(v) for k, v in unexpected.items()})


def layer_share(units: pd.DataFrame, minimum: float = MIN_LAYER_SHARE) -> Outcome:
    """At least `minimum` of the units lie inside a layer region."""
    share = float(units["layer"].notna().mean()) if len(units) else 0.0
    return Outcome(
        share >= minimum,
        f"{share:.2%} of units have a layer (minimum {minimum:.0%})",
        {"share_with_layer": share},
    )


def regions_well_formed(segments: pd.DataFrame) -> Outcome:
    """Regions are ordered by depth, contiguous, non-overlapping and of positive height."""
    start = segments["y_start"].to_numpy(float)
    end = segments["y_end"].to_numpy(float)
    problems = []
    if len(segments) == 0:
        problems.append("no regions")
    if np.any(np.diff(start) <= 0):
        problems.append("not ordered by depth")
    if np.any(end <= start):
        problems.append("a region of zero or negative height")
    if len(segments) > 1 and not np.allclose(end[:-1], start[1:], rtol=0, atol=1e-9):
        problems.append("gaps or overlaps between consecutive regions")
    if not np.allclose(segments["height"], end - start):
        problems.append("height differs from y_end - y_start")
    return Outcome(not problems, "; ".join(problems) or "contiguous, ordered, non-overlapping")


def all_layers_found(segments: pd.DataFrame) -> Outcome:
    """Segmentation found every cortical layer L1 to L6."""
    missing = [layer for layer in vocab.CORTICAL_LAYERS if layer not in set(segments["layer"])]
    return Outcome(not missing, f"missing layers: {missing}" if missing else "L1-L6 found")
