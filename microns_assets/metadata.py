"""Dagster metadata helpers shared by the assets: pictures and small tables in the UI."""

import base64
import math
import numbers

import dagster as dg
import pandas as pd


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG embedded in markdown metadata, shown as a picture in the Dagster UI."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def markdown_table(frame: pd.DataFrame, index: bool = False) -> dg.MetadataValue:
    """`frame` as a markdown table (a preview in the UI); with `index`, its index first.

    What pandas' `to_markdown` shows, without importing `tabulate` and `wcwidth` into every run
    process (~25-75 ms, more than the tables take): numbers right-aligned, a missing value
    blank, floats to 10 significant digits, `|` in text escaped.
    """
    columns = [frame.index] if index else []
    names = [_text(frame.index.name)] if index else []
    for i, name in enumerate(frame.columns):
        columns.append(frame.iloc[:, i])  # (by position: a repeated name is its own column)
        names.append(_text(name))
    numeric = [pd.api.types.is_numeric_dtype(c.dtype) and not pd.api.types.is_bool_dtype(c.dtype)
               for c in columns]  # fmt: skip
    lines = [
        _row(names),
        _row(["---:" if right else "---" for right in numeric]),
        *(_row([_cell(v) for v in values]) for values in zip(*columns, strict=True)),
    ]
    return dg.MetadataValue.md("\n".join(lines))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _cell(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return "" if math.isnan(value) else format(float(value), ".10g")
    return _text(value)


def _text(value: object) -> str:
    if value is None:
        return ""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
