"""`CaveConnection`: every call this project makes to CAVE, through the real caveclient.

One connection builds one `CAVEclient` lazily (`client.py`), hardens its sessions (`http.py`),
retries calls as a whole (`calls.py`) and answers the catalogue (versions, tables, metadata),
counts and queries. Versions are always passed explicitly, never set on the shared client, so
concurrent queries for different versions cannot interfere.
No Dagster imports: the Dagster resource wraps this class.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pandas as pd

from microns_assets.cave import errors
from microns_assets.cave.calls import call
from microns_assets.cave.client import build_client
from microns_assets.cave.filters import NO_FILTERS, Filters
from microns_assets.cave.http import InFlight, reset_row_cap_warning, row_cap_warning
from microns_assets.cave.settings import GLOBAL_SERVER, CaveSettings

if TYPE_CHECKING:
    from caveclient import CAVEclient
    from caveclient.materializationengine import MaterializationClient

__all__ = ["GLOBAL_SERVER", "CaveConnection", "CaveSettings", "QueryResult"]

T = TypeVar("T")


@dataclass
class QueryResult:
    """One query's rows, and whether the server's row cap cut them."""

    frame: pd.DataFrame
    truncated: bool
    warning: str | None
    elapsed_s: float


class CaveConnection:
    """A connection to one CAVE datastack; safe to share between threads."""

    def __init__(self, settings: CaveSettings) -> None:
        self.settings = settings
        self._client: CAVEclient | None = None
        self._lock = threading.Lock()
        self._materialize: MaterializationClient | None = None
        self.in_flight = InFlight(settings.max_in_flight)
        self._listed: dict[bool, tuple[float, list[int]]] = {}  # expired? -> (when, versions)

    def _call(self, what: str, fn: Callable[..., T], *args, **kwargs) -> T:
        s = self.settings
        return call(
            s.server_address, s.http.retries, what, fn, *args,
            attempts=s.call_attempts, max_wait_s=s.call_wait_max_s, **kwargs,
        )  # fmt: skip

    @property
    def client(self) -> CAVEclient:
        """The shared CAVEclient, built on first use (see `client.py`)."""
        with self._lock:
            if self._client is None:
                self._client, self._materialize = build_client(self.settings, self.in_flight)
            return self._client

    @property
    def materialize(self) -> MaterializationClient:
        """The client's hardened, API-v3 materialization client."""
        _ = self.client
        return self._materialize

    # --- catalogue --------------------------------------------------------------------
    def versions(self, expired: bool = False, max_age_s: float = 0.0) -> list[int]:
        """Versions the server lists, ascending (expired ones too if `expired`).

        With `max_age_s`, a list this connection got at most that many seconds ago is answered
        again without asking (for a step right after another one asked).
        """
        kept = self._listed.get(expired)
        if kept is not None and time.monotonic() - kept[0] <= max_age_s:
            return list(kept[1])
        mat = self.materialize
        listed = self._call("listing versions", mat.get_versions, expired=expired)
        versions = sorted(int(v) for v in listed)
        self._listed[expired] = (time.monotonic(), versions)
        return list(versions)

    def versions_metadata(self, expired: bool = True) -> list[dict]:
        """Metadata of every listed version (timestamps, expiry), ascending by version."""
        mat = self.materialize
        meta = self._call("listing version metadata", mat.get_versions_metadata, expired=expired)
        return sorted(meta, key=lambda m: int(m["version"]))

    def check_version(self, version: object, *, allow_expired: bool = False) -> int:
        """Validate a version: an int the server lists and, unless allowed, not expired."""
        given = version
        if isinstance(version, bool) or not isinstance(version, int):
            try:
                version = int(str(version))
            except ValueError:
                version = None
        all_versions = self.versions(expired=True)
        if version is None or version not in all_versions:
            raise errors.UnknownVersionError(
                f"Materialization version {given!r} is not served by datastack "
                f"{self.settings.datastack!r}. Available versions: {all_versions} "
                f"(current: {self.versions(expired=False)})."
            )
        if not allow_expired and version not in self.versions(expired=False):
            raise errors.ExpiredVersionError(
                f"Version {version} of {self.settings.datastack!r} has expired: CAVE's API no "
                "longer answers queries for it, only its static dumps hold it (the pipeline's "
                "assets read them; see MICRONS_STATIC_BASE). Current versions: "
                f"{self.versions(expired=False)}."
            )
        return int(version)

    def version_metadata(self, version: int) -> dict:
        """The server's record of one version (`time_stamp`, `expires_on`, ...)."""
        mat = self.materialize
        return self._call(
            f"reading metadata of version {version}", mat.get_version_metadata, version=version
        )

    def tables(self, version: int) -> list[str]:
        """Tables published in `version`."""
        mat = self.materialize
        return sorted(
            self._call(f"listing tables of version {version}", mat.get_tables, version=version)
        )

    def check_table(self, version: int, table: str, tables: list[str] | None = None) -> str:
        """Validate that `table` exists in `version` (`tables`: its tables, if already listed)."""
        tables = self.tables(version) if tables is None else tables
        if table not in tables:
            raise errors.UnknownTableError(
                f"Table {table!r} does not exist in version {version} of "
                f"{self.settings.datastack!r}. Tables there: {tables}. Fix the table name for "
                "this version in microns_assets/config/versions.yaml."
            )
        return table

    def table_metadata(self, version: int, table: str) -> dict:
        """The server's metadata of a table in a version."""
        mat = self.materialize
        return self._call(
            f"reading metadata of table {table!r} (v{version})",
            mat.get_table_metadata,
            table,
            version=version,
            log_warning=False,
        )

    def datastack_info(self) -> dict:
        """The datastack's info record (synapse table, voxel resolution, ...)."""
        return self._call("reading datastack info", self.client.info.get_datastack_info)

    def count_rows(
        self,
        version: int,
        table: str,
        filters: Filters = NO_FILTERS,
    ) -> int:
        """How many rows of `table` the filters match, counted by the server (no row cap).

        caveclient's `query_table(get_counts=True)`: the server runs the same filtered query
        as `count(*)` and answers one `count` row. Only a plain table's query endpoint counts
        (the join endpoint, used to merge a reference table, ignores `count` and sends rows),
        so the reference table is not merged: the count is of `table`'s own rows.
        """
        what = f"counting filtered rows of {table!r} (v{version})"
        frame = self._call(
            what, self._query_table, version, table, filters, get_counts=True,
            merge_reference=False,
        )  # fmt: skip
        if list(frame.columns) != ["count"] or len(frame) != 1:
            raise errors.CaveQueryError(
                f"{what}: the server answered {len(frame)} rows of {list(frame.columns)[:5]} "
                "instead of a count, so it cannot count filtered queries, which every download "
                "is verified with. For synapse chunks, `verify_counts: false` in the synapse "
                "config skips the verification."
            )
        return int(frame["count"].iloc[0])

    # --- queries ----------------------------------------------------------------------
    def query(
        self,
        version: int,
        table: str,
        filters: Filters = NO_FILTERS,
        *,
        select_columns: list[str] | None = None,
        merge_reference: bool = True,
    ) -> QueryResult:
        """One `query_table` call (positions split); reports whether the row cap cut it.

        A reference table comes joined with its target (caveclient's `merge_reference`),
        unless `merge_reference` is False.
        """

        def once() -> tuple[pd.DataFrame, str | None]:
            reset_row_cap_warning()
            frame = self._query_table(
                version, table, filters, select_columns=select_columns,
                merge_reference=merge_reference,
            )  # fmt: skip
            return frame, row_cap_warning()

        start = time.perf_counter()
        frame, warning = self._call(f"querying {table!r} (v{version})", once)
        truncated = warning is not None or len(frame) >= self.settings.row_cap
        return QueryResult(frame, truncated, warning, time.perf_counter() - start)

    def _query_table(self, version: int, table: str, filters: Filters, **kwargs) -> pd.DataFrame:
        """`query_table` of caveclient for `version`, positions split, its logging off."""
        return self.materialize.query_table(
            table,
            **filters.query_kwargs(),
            **kwargs,
            split_positions=True,
            materialization_version=version,
            metadata=False,
            log_warning=False,
        )
