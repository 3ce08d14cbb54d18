"""`CaveConnection`: every call this project makes to CAVE, through the real caveclient.

Builds one `CAVEclient` lazily, hardens its sessions (see `http.py`), retries failures that
urllib3 cannot (a body cut mid-stream, a client that fell back to API v2), and turns HTTP errors
into `errors.py` errors that say what to do. Versions are always passed explicitly, never set on
the shared client, so concurrent queries for different versions cannot interfere.
No Dagster imports: the Dagster resource wraps this class.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
import requests
import tenacity

from microns_assets.cave import errors
from microns_assets.cave.deadline import DeadlineExceeded, call_within
from microns_assets.cave.http import (
    RETRY_STATUSES,
    HttpPolicy,
    InFlight,
    harden_session,
    reset_row_cap_warning,
    row_cap_warning,
)

if TYPE_CHECKING:
    from caveclient import CAVEclient
    from caveclient.materializationengine import MaterializationClient

T = TypeVar("T")

log = logging.getLogger(__name__)

GLOBAL_SERVER = "https://global.daf-apis.com"
#: Cap on the read part of a client-building attempt's deadline: its answers are small.
CONNECT_READ_MAX_S = 30.0

_TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class _ApiFallback(RuntimeError):
    """caveclient silently fell back to materialization API v2 (its version probe failed)."""


def _is_transient(err: BaseException) -> bool:
    if isinstance(err, requests.HTTPError):
        status = err.response.status_code if err.response is not None else None
        return status in RETRY_STATUSES or status is None
    return isinstance(err, (*_TRANSIENT, _ApiFallback))


@dataclass(frozen=True)
class CaveSettings:
    """Where CAVE is and how to talk to it. `token` is never printed (`repr=False`)."""

    datastack: str
    server_address: str = GLOBAL_SERVER
    token: str | None = field(default=None, repr=False)
    http: HttpPolicy = field(default_factory=HttpPolicy)
    call_attempts: int = 4
    call_wait_max_s: float = 30.0
    row_cap: int = 200_000
    #: Requests this connection has in flight at once, at most (all threads together).
    max_in_flight: int = 4


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
        self._versions: dict[bool, list[int]] = {}
        self._materialize: MaterializationClient | None = None
        self.in_flight = InFlight(settings.max_in_flight)

    # --- plumbing ---------------------------------------------------------------------
    def _call(
        self,
        what: str,
        fn,
        *args,
        attempts: int | None = None,
        max_wait_s: float | None = None,
        **kwargs,
    ):
        s = self.settings
        attempts = attempts or s.call_attempts
        max_wait_s = s.call_wait_max_s if max_wait_s is None else max_wait_s
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(_is_transient),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential_jitter(multiplier=0.5, max=max_wait_s),
            before_sleep=lambda rs: log.warning(
                "%s failed (%s); attempt %d of %d",
                what,
                rs.outcome.exception(),
                rs.attempt_number,
                attempts,
            ),
            reraise=True,
        )
        try:
            with warnings.catch_warnings():
                # caveclient turns a null `expires_on` into Timestamp.max and warns about it
                warnings.filterwarnings("ignore", "Discarding nonzero nanoseconds")
                return retrying(fn, *args, **kwargs)
        except requests.HTTPError as err:
            if _is_transient(err):
                raise self._unavailable(what, attempts, err) from err
            raise self._translate(what, err) from err
        except (*_TRANSIENT, _ApiFallback) as err:
            raise self._unavailable(what, attempts, err) from err

    def _unavailable(self, what: str, attempts: int, err: Exception) -> errors.CaveError:
        s = self.settings
        return errors.CaveUnavailableError(
            f"{what}: CAVE at {s.server_address} kept failing after {attempts} attempts, each "
            f"with up to {s.http.retries} HTTP retries ({_short(err)}). Check the server address "
            "and your network; the asset's retry policy will try again."
        )

    def _translate(self, what: str, err: requests.HTTPError) -> errors.CaveError:
        status = err.response.status_code if err.response is not None else None
        detail = _server_message(err)
        if status in (401, 403):
            return errors.CaveAuthError(
                f"{what}: CAVE at {self.settings.server_address} refused access (HTTP {status}: "
                f"{detail}). {errors.TOKEN_HELP}"
            )
        if status == 410:
            return errors.ExpiredVersionError(f"{what}: {detail}")
        if status is not None and status >= 500:
            return errors.CaveUnavailableError(f"{what}: server error HTTP {status}: {detail}")
        return errors.CaveQueryError(f"{what}: HTTP {status}: {detail}")

    @property
    def client(self) -> CAVEclient:
        """The shared CAVEclient, built on first use (its materialization client: `materialize`).

        Building it makes a few requests on caveclient's own sessions, before ours can be
        hardened: they carry no timeout, and a body cut mid-stream there is not retried by
        HTTP. Each stage therefore runs under a deadline (`_connect_deadline_s`, `call_within`)
        and is retried on its own, three times as often as a call, with short waits. A stage
        abandoned at its deadline may still finish later in its daemon thread: a client it
        builds is discarded; a materialization client it builds is either discarded or, at
        worst, taken by the next attempt, which verifies and hardens it like its own.
        """
        with self._lock:
            if self._client is None:
                from caveclient import CAVEclient  # noqa: F401  # imported outside any deadline

                what = f"connecting to datastack {self.settings.datastack!r}"
                retry = {"attempts": 3 * self.settings.call_attempts, "max_wait_s": 2.0}
                client = self._call(what, self._within_deadline, self._build_client, **retry)
                self._materialize = self._call(
                    what, self._within_deadline, self._build_materialize, client, **retry
                )
                self._client = client
            return self._client

    @property
    def materialize(self) -> MaterializationClient:
        """The client's hardened, API-v3 materialization client."""
        _ = self.client
        return self._materialize

    @property
    def _connect_deadline_s(self) -> float:
        """How long one stage of building the client may take: a connect and a short read."""
        http = self.settings.http
        return http.connect_timeout_s + min(http.read_timeout_s, CONNECT_READ_MAX_S)

    def _within_deadline(self, build: Callable[..., T], *args) -> T:
        deadline = self._connect_deadline_s
        try:
            return call_within(deadline, build, *args)
        except DeadlineExceeded:
            raise requests.Timeout(
                f"timed out: no complete answer within {deadline:.1f} s while building the client"
            ) from None

    def _build_materialize(self, client: CAVEclient) -> MaterializationClient:
        client._materialize = None  # a failed attempt may have left a v2 client behind
        mat = client.materialize
        if mat.api_version != 3:
            raise _ApiFallback("the materialization API version probe failed")
        harden_session(mat.session, self.settings.http, self.in_flight)
        return mat

    def _build_client(self) -> CAVEclient:
        from caveclient import CAVEclient  # heavy import, kept off the definitions' load path

        s = self.settings
        try:
            client = CAVEclient(
                s.datastack,
                server_address=s.server_address,
                auth_token=s.token,
                write_server_cache=False,
                max_retries=s.http.retries,
            )
        except requests.HTTPError as err:
            if err.response is not None and err.response.status_code == 404:
                raise errors.UnknownDatastackError(self._unknown_datastack_message()) from err
            raise
        harden_session(client.info.session, s.http, self.in_flight)
        return client

    def _unknown_datastack_message(self) -> str:
        s = self.settings
        known = "unknown"
        try:
            headers = {"Authorization": f"Bearer {s.token}"} if s.token else {}
            r = requests.get(
                f"{s.server_address}/info/api/v2/datastacks",
                headers=headers,
                timeout=(s.http.connect_timeout_s, 30),
            )
            if r.ok:
                known = ", ".join(sorted(r.json()))
        except requests.RequestException:
            pass
        return (
            f"CAVE at {s.server_address} has no datastack {s.datastack!r}. Datastacks there: "
            f"{known}. Set MICRONS_DATASTACK (or the resource's `datastack`) to one of them."
        )

    # --- catalogue --------------------------------------------------------------------
    def versions(self, expired: bool = False) -> list[int]:
        """Versions the server lists, ascending (expired ones too if `expired`)."""
        mat = self.materialize
        listed = self._call("listing versions", mat.get_versions, expired=expired)
        return sorted(int(v) for v in listed)

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

    def check_table(self, version: int, table: str) -> str:
        """Validate that `table` exists in `version`."""
        tables = self.tables(version)
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
        *,
        filter_in: dict | None = None,
        filter_out: dict | None = None,
        filter_equal: dict | None = None,
        filter_greater_equal: dict | None = None,
        filter_less: dict | None = None,
    ) -> int:
        """How many rows of `table` the filters match, counted by the server (no row cap).

        caveclient's `query_table(get_counts=True)`: the server runs the same filtered query
        as `count(*)` and answers one `count` row. Only a plain table's query endpoint counts
        (the join endpoint, used to merge a reference table, ignores `count` and sends rows),
        so the reference table is not merged: the count is of `table`'s own rows.
        """
        mat = self.materialize
        what = f"counting filtered rows of {table!r} (v{version})"
        frame = self._call(
            what,
            mat.query_table,
            table,
            **_filter_kwargs(
                filter_in, filter_out, filter_equal, filter_greater_equal, filter_less
            ),
            get_counts=True,
            merge_reference=False,
            split_positions=True,
            materialization_version=version,
            metadata=False,
            log_warning=False,
        )
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
        *,
        filter_in: dict | None = None,
        filter_out: dict | None = None,
        filter_equal: dict | None = None,
        filter_greater_equal: dict | None = None,
        filter_less: dict | None = None,
        select_columns: list[str] | None = None,
        limit: int | None = None,
        merge_reference: bool = True,
    ) -> QueryResult:
        """One `query_table` call (positions split); reports whether the row cap cut it.

        A reference table comes joined with its target (caveclient's `merge_reference`),
        unless `merge_reference` is False.
        """
        mat = self.materialize

        def once() -> tuple[pd.DataFrame, str | None]:
            reset_row_cap_warning()
            frame = mat.query_table(
                table,
                **_filter_kwargs(
                    filter_in, filter_out, filter_equal, filter_greater_equal, filter_less
                ),
                select_columns=select_columns,
                limit=limit,
                merge_reference=merge_reference,
                split_positions=True,
                materialization_version=version,
                metadata=False,
                log_warning=False,
            )
            return frame, row_cap_warning()

        start = time.perf_counter()
        frame, warning = self._call(f"querying {table!r} (v{version})", once)
        cap = min(limit, self.settings.row_cap) if limit else self.settings.row_cap
        truncated = warning is not None or len(frame) >= cap
        return QueryResult(frame, truncated, warning, time.perf_counter() - start)


def _filter_kwargs(
    filter_in: dict | None,
    filter_out: dict | None,
    filter_equal: dict | None,
    filter_greater_equal: dict | None,
    filter_less: dict | None,
) -> dict[str, dict | None]:
    """Our filter arguments under caveclient's `query_table` names."""
    return {
        "filter_in_dict": filter_in,
        "filter_out_dict": filter_out,
        "filter_equal_dict": filter_equal,
        "filter_greater_equal_dict": filter_greater_equal,
        "filter_less_dict": filter_less,
    }


def _short(err: Exception) -> str:
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return f"HTTP {err.response.status_code}: {_server_message(err)}"
    return str(err)[:300]


def _server_message(err: requests.HTTPError) -> str:
    response = err.response
    if response is None:
        return str(err)
    try:
        body = response.json()
        if isinstance(body, dict):
            return str(body.get("message") or body.get("error") or body)
        return str(body)
    except ValueError:
        return response.text[:300] or response.reason or ""
