"""Dagster metadata helpers shared by the assets (pictures in the UI)."""

import base64

import dagster as dg


def png_markdown(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG embedded in markdown metadata, shown as a picture in the Dagster UI."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
