"""Whether a file already written can stand in for a fresh download. No Dagster imports.

A file is reusable when it exists, reads back whole (a truncated or damaged file does not),
holds the number of rows its provenance records, and its provenance agrees with every fact the
caller expects (selection, code version, the cells it covers, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pandas as pd
from upath import UPath

from microns_assets.storage.parquet import CorruptFileError, read_frame


def _as_stored(value: object) -> object:
    """`value` as it reads back from the JSON provenance (tuples become lists, ...)."""
    return json.loads(json.dumps(value, default=str))


def reusable(path: UPath, expected: Mapping[str, object]) -> tuple[pd.DataFrame | None, str]:
    """The file's rows if it can be reused, else None; and why (for the run log)."""
    if not path.exists():
        return None, "not downloaded yet"
    try:
        frame = read_frame(path)
    except CorruptFileError as err:
        return None, f"its file is unreadable, downloading again ({err})"
    stored = frame.attrs["provenance"]
    for key, value in expected.items():
        if stored.get(key) != _as_stored(value):
            return None, f"its file has another {key}, downloading again"
    if stored.get("rows") != len(frame):
        return None, (
            f"its file holds {len(frame)} rows where its provenance says {stored.get('rows')}, "
            "downloading again"
        )
    return frame, "reused: its file is complete and from the same inputs"
