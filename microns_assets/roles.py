"""Each role's table held to its columns (`catalogue.ROLE`), and the table of an absent role.

No Dagster imports.
"""

from __future__ import annotations

import pandas as pd

from microns_assets.catalogue import ROLE


class TableContentError(ValueError):
    """A CAVE table lacks a column its role needs."""


def empty_frame(role: str) -> pd.DataFrame:
    """The zero-row table with the role's required columns and dtypes."""
    return pd.DataFrame({c: pd.Series([], dtype=d) for c, d in ROLE[role].columns.items()})


def check_columns(frame: pd.DataFrame, role: str, table: str) -> None:
    """Raise `TableContentError` naming the table and column if a required column is missing."""
    missing = [c for c in ROLE[role].columns if c not in frame.columns]
    if missing:
        raise TableContentError(
            f"CAVE table {table!r} (role {role!r}) lacks column(s) {missing}; it has "
            f"{list(frame.columns)}. Map the role to the right table in versions.yaml."
        )
