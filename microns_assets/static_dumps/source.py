"""`StaticSource`: the dump files of expired versions, downloaded once and read as tables.

Files are kept under `<folder>/v{N}/` (complete ones only, see `download.py`), so a second
materialization of the same version reads them without a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import requests

from microns_assets.static_dumps.download import Downloaded, download
from microns_assets.static_dumps.tables import (
    is_unjoined_reference,
    join_reference,
    read_header,
    read_rows,
)


@dataclass
class StaticTable:
    """A table of an expired version read from its dump, in the live API's form."""

    frame: pd.DataFrame
    rows_in_dump: int
    orphan_ids: tuple[int, ...]  # annotations whose target is missing (dropped by the join)
    files: list[Downloaded]
    joined_to: str | None  # the target table joined locally, if any


def table_files(table: str) -> tuple[str, str]:
    """The header and data file names of a table's dump."""
    return f"{table}_merged_header.csv", f"{table}_merged.csv.gz"


@dataclass
class StaticSource:
    """The static dumps under `base` (a URL whose `v{N}/` folders hold the files)."""

    base: str
    folder: Path
    attempts: int = 8
    backoff_s: float = 0.5
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, version: int, name: str) -> str:
        """The URL of file `name` of `version`'s dump."""
        return f"{self.base.rstrip('/')}/v{version}/{name}"

    def fetch(self, version: int, name: str) -> Downloaded:
        """File `name` of `version`'s dump, downloaded (or found complete) under `folder`."""
        path = Path(self.folder) / f"v{version}" / name
        return download(
            self.session,
            self.url(version, name),
            path,
            attempts=self.attempts,
            backoff_s=self.backoff_s,
        )

    def _read(self, version: int, table: str) -> tuple[pd.DataFrame, list, list[Downloaded]]:
        header_name, data_name = table_files(table)
        header = self.fetch(version, header_name)
        data = self.fetch(version, data_name)
        columns = read_header(header.path)
        return read_rows(data.path, columns), columns, [header, data]

    def table(self, version: int, table: str, target: str | None) -> StaticTable:
        """Table `table` of `version` in the live API's form.

        A reference table without its target's columns is joined to `target` (the version's
        nucleus table) as the server would.
        """
        frame, columns, files = self._read(version, table)
        rows = len(frame)
        if not is_unjoined_reference(columns):
            return StaticTable(frame, rows, (), files, None)
        if target is None:
            raise ValueError(f"{table} v{version} references another table: name its target")
        target_frame, _, target_files = self._read(version, target)
        joined = join_reference(frame, target_frame)
        return StaticTable(joined.frame, rows, joined.orphan_ids, files + target_files, target)
