"""Dagster metadata helpers shared by the assets: pictures and small tables in the UI."""

import base64
import math
import numbers
import re

import dagster as dg
import numpy as np
import pandas as pd


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG embedded in markdown metadata, shown as a picture in the Dagster UI."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def markdown_table(frame: pd.DataFrame, index: bool = False) -> dg.MetadataValue:
    """`frame` as a markdown table (a preview in the UI); with `index`, its index first.

    Made here rather than by pandas' `to_markdown`, which imports `tabulate` and `wcwidth` into
    every run process (~25-75 ms, more than the tables take). Numbers are right-aligned, a
    missing value is blank, a float shows up to 10 significant digits (a 32-bit one its
    shortest exact form: 263.78, not 263.7799988), and `|` and line breaks in text are escaped.
    """
    columns = [frame.index] if index else []
    names = [_text(frame.index.name)] if index else []
    for i, name in enumerate(frame.columns):
        columns.append(frame.iloc[:, i])  # (by position: a repeated name is its own column)
        names.append(_text(name))
    numeric = [pd.api.types.is_numeric_dtype(c.dtype) and not pd.api.types.is_bool_dtype(c.dtype)
               for c in columns]  # fmt: skip
    cells = [_float32 if _is_float32(c.dtype) else _cell for c in columns]
    lines = [
        _row(names),
        _row(["---:" if right else "---" for right in numeric]),
        *(
            _row([cell(v) for cell, v in zip(cells, values, strict=True)])
            for values in zip(*columns, strict=True)
        ),
    ]
    return dg.MetadataValue.md("\n".join(lines))


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _is_float32(dtype: object) -> bool:
    return dtype == np.float32 or isinstance(dtype, pd.Float32Dtype)


def _cell(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return "" if math.isnan(value) else format(float(value), ".10g")
    return _text(value)


def _float32(value: object) -> str:
    """A value of a 32-bit float column (iterated as 64-bit floats): its shortest exact form."""
    if value is None or value is pd.NA or math.isnan(value):
        return ""
    text = str(np.float32(value))
    return text[:-2] if text.endswith(".0") else text


def _text(value: object) -> str:
    if value is None:
        return ""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return re.sub(r"\r\n|\r|\n", " ", text)
