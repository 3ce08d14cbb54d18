"""Validation of the tables `build_units` consumes: present, non-empty, right columns and dtypes.

Errors name the role, the column and what to do, so a malformed input never yields a wrong
table. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from pandas.api import types as ptypes

from microns_assets.catalogue import ROLE


class InputTableError(ValueError):
    """A table given to `build_units` is missing, empty, or has a wrong column."""


def _kind_ok(series: pd.Series, kind: str) -> bool:
    if kind == "int":
        return ptypes.is_integer_dtype(series.dtype)
    if kind == "number":
        return ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype)
    return ptypes.is_string_dtype(series.dtype) or ptypes.is_object_dtype(series.dtype)


def table(
    tables: Mapping[str, pd.DataFrame | None],
    role: str,
    *,
    required: bool,
    non_empty: bool = False,
    why: str = "",
) -> pd.DataFrame | None:
    """The validated table of `role`, or None when an optional role is missing or empty."""
    frame = tables.get(role)
    if frame is None or (len(frame) == 0 and not required):
        if required:
            raise InputTableError(f"the {role!r} table is required{why} but was not given")
        return None
    if not isinstance(frame, pd.DataFrame):
        raise InputTableError(f"the {role!r} table must be a pandas DataFrame, not {type(frame)}")
    for column, kind in ROLE[role].needs.items():
        if column not in frame.columns:
            raise InputTableError(
                f"the {role!r} table has no column {column!r} (it has {list(frame.columns)}); "
                "pass the table as caveclient's query_table(..., split_positions=True) returns it"
            )
        if not _kind_ok(frame[column], kind):
            hint = (
                " (64-bit ids need an integer dtype: floats lose digits)" if kind == "int" else ""
            )
            raise InputTableError(
                f"column {column!r} of the {role!r} table has dtype {frame[column].dtype}, "
                f"expected {kind}{hint}"
            )
    if non_empty and len(frame) == 0:
        raise InputTableError(
            f"the {role!r} table is empty{why}: this version has no rows to build units from"
        )
    return frame
