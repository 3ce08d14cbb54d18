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
from microns_assets.static_dumps.synapses import synapse_files
from microns_assets.static_dumps.tables import (
    UnknownReferenceError,
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

    def _read(
        self, version: int, table: str, synapse_table: str | None = None, ids=None
    ) -> tuple[pd.DataFrame, list, list[Downloaded]]:
        names = synapse_files(table) if table == synapse_table else table_files(table)
        header = self.fetch(version, names[0])
        data = self.fetch(version, names[1])
        columns = read_header(header.path)
        return read_rows(data.path, columns, ids), columns, [header, data]

    def table(
        self, version: int, table: str, target: str | None, synapse_table: str | None = None
    ) -> StaticTable:
        """Table `table` of `version` in the live API's form.

        A reference table without its target's columns is joined to `target` (the table CAVE's
        metadata names as its reference table) as the server would; only the target's rows it
        names are read. `synapse_table`: the datastack's synapse table, whose dump files are
        named apart. Raises `UnknownReferenceError` when the dump is such a table and `target`
        is None.
        """
        frame, columns, files = self._read(version, table)
        rows = len(frame)
        if not is_unjoined_reference(columns):
            return StaticTable(frame, rows, (), files, None)
        if target is None:
            raise UnknownReferenceError(
                f"{table} v{version}: its static dump is a reference table (a target_id and no "
                "root ids), and no current version of CAVE names the table it references, so "
                "it cannot be joined as the server would. Nothing was stored for it. Remove it "
                "from the extra tables, or use a current version that has it"
            )
        ids = frame["target_id"].dropna().to_numpy(dtype="int64")
        target_frame, _, target_files = self._read(version, target, synapse_table, ids)
        joined = join_reference(frame, target_frame)
        return StaticTable(joined.frame, rows, joined.orphan_ids, files + target_files, target)
