"""What each role's table must contain, and the empty table that stands for an absent role.

Columns are named as `caveclient.query_table(..., split_positions=True)` returns them, with
reference tables in their joined form (`target_id` plus the nucleus columns).
No Dagster imports.
"""

from __future__ import annotations

import pandas as pd

#: Columns downstream processing needs from each role, with the dtypes CAVE sends.
REQUIRED: dict[str, dict[str, str]] = {
    "nucleus": {
        "id": "Int64",
        "volume": "Float32",
        "pt_position_x": "Int32",
        "pt_position_y": "Int32",
        "pt_position_z": "Int32",
        "pt_supervoxel_id": "Int64",
        "pt_root_id": "Int64",
    },
    "cell_types": {
        "id": "Int64",
        "target_id": "Int64",
        "classification_system": "string",
        "cell_type": "string",
        "pt_root_id": "Int64",
    },
    "cell_type_corrections": {
        "id": "Int64",
        "target_id": "Int64",
        "classification_system": "string",
        "cell_type": "string",
    },
    "proofreading": {
        "id": "Int64",
        "valid_id": "Int64",
        "pt_root_id": "Int64",
        "status_axon": "boolean",
        "status_dendrite": "boolean",
        "strategy_axon": "string",
        "strategy_dendrite": "string",
    },
    "brain_areas": {
        "id": "Int64",
        "target_id": "Int64",
        "tag": "string",
        "value": "Float32",
    },
    "coregistration": {
        "id": "Int64",
        "target_id": "Int64",
        "session": "Int32",
        "scan_idx": "Int32",
        "unit_id": "Int32",
        "field": "Int32",
        "residual": "Float32",
        "score": "Float32",
        "pt_root_id": "Int64",
    },
    "functional_properties": {
        "id": "Int64",
        "target_id": "Int64",
        "session": "Int32",
        "scan_idx": "Int32",
        "unit_id": "Int32",
        "pref_ori": "Float32",
        "pref_dir": "Float32",
        "gOSI": "Float32",
        "gDSI": "Float32",
        "cc_abs": "Float32",
        "pt_root_id": "Int64",
    },
}


class TableContentError(ValueError):
    """A CAVE table lacks a column its role needs."""


def empty_frame(role: str) -> pd.DataFrame:
    """The zero-row table with the role's required columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in REQUIRED[role].items()})


def check_columns(frame: pd.DataFrame, role: str, table: str) -> None:
    """Raise `TableContentError` naming the table and column if a required column is missing."""
    missing = [c for c in REQUIRED[role] if c not in frame.columns]
    if missing:
        raise TableContentError(
            f"CAVE table {table!r} (role {role!r}) lacks column(s) {missing}; it has "
            f"{list(frame.columns)}. Map the role to the right table in versions.yaml."
        )
