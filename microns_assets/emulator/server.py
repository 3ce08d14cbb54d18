"""The HTTP side of the emulator: routes of the CAVE REST API that caveclient uses, and faults.

A threaded stdlib HTTP/1.1 server (keep-alive, one thread per connection). Query answers are
Arrow IPC streams with zstd buffers and the real server's headers, including the row cap's
`Warning`; `count=true` on a table query answers the matching row count instead (uncapped), as
the real server does. Faults (503s, connections dropped mid-body, latency, rows silently left
out of answers) are drawn from a seeded RNG. Expired versions are served as static dumps under
`/static/` (see `static.py`), the functional recordings under `/functional/` (`functional.py`),
both with `Range` requests and the same faults.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pyarrow as pa

from microns_assets.emulator import catalog as cat
from microns_assets.emulator.functional import FILE_NAME as FUNCTIONAL_FILE
from microns_assets.emulator.functional import FunctionalFile
from microns_assets.emulator.query import QueryEngine, QueryError, with_pandas_metadata
from microns_assets.emulator.static import StaticDumps

log = logging.getLogger(__name__)

_DS = r"(?P<ds>[^/]+)"
_V = r"(?P<v>[^/]+)"
_T = r"(?P<t>[^/]+)"
M3 = rf"/materialize/api/v3/datastack/{_DS}"
M2 = rf"/materialize/api/v2/datastack/{_DS}"


@dataclass
class Faults:
    """Deterministic fault injection. Rates are fractions of requests in [0, 1]."""

    fail_rate: float = 0.0  # answered 503
    drop_rate: float = 0.0  # connection closed halfway through the body
    latency_ms: float = 0.0  # added to every request
    seed: int = 0
    lose_rate: float = 0.0  # fraction of rows silently left out of query answers (not counts)


class Stats:
    """Counters the tests read: requests and queries seen, the most requests in flight at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.queries = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.queries_in_flight = 0  # POSTs (table queries and counts) only
        self.max_queries_in_flight = 0
        self.faults = 0
        self.rows_lost = 0
        self.paths: Counter[str] = Counter()  # requests per URL path (no query string)

    def enter(self, query: bool = False, path: str = "") -> None:
        """A request arrives (it is in flight until `leave`, latency included).

        `query`: a POST (a table query or count), counted apart too, so that a test can bound
        the queries of its steps regardless of other requests (version lists, metadata).
        """
        with self._lock:
            self.requests += 1
            self.paths[path.split("?", 1)[0]] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if query:
                self.queries_in_flight += 1
                self.max_queries_in_flight = max(self.max_queries_in_flight, self.queries_in_flight)

    def leave(self, query: bool = False) -> None:
        """A request is answered."""
        with self._lock:
            self.in_flight -= 1
            if query:
                self.queries_in_flight -= 1

    def count_fault(self) -> None:
        """Count one injected fault."""
        with self._lock:
            self.faults += 1

    def count_lost(self, rows: int) -> None:
        """Count rows the lossy-server fault left out of an answer."""
        with self._lock:
            self.rows_lost += rows

    def count_query(self) -> None:
        """Count one table query."""
        with self._lock:
            self.queries += 1

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight (a client that gave up leaves its handler running).

        True when idle within `timeout_s`.
        """
        deadline = time.monotonic() + timeout_s
        while self.in_flight > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def reset(self) -> None:
        """Zero every counter. Requests still in flight (a test's hung client) stay counted."""
        with self._lock:
            self.requests = self.queries = self.faults = self.rows_lost = 0
            self.paths.clear()
            self.max_in_flight = self.in_flight
            self.max_queries_in_flight = self.queries_in_flight


class CaveHTTPServer(ThreadingHTTPServer):
    """Holds the state every request handler shares."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        engine: QueryEngine,
        datastack: str,
        row_cap: int,
        faults: Faults,
        token: str | None,
    ) -> None:
        super().__init__(address, _Handler)
        self.engine = engine
        self.static = StaticDumps(engine.tables_for_version)
        self.functional = FunctionalFile(
            lambda: engine.tables_for_version(cat.VERSIONS[-1].number).world
        )
        self.datastack = datastack
        self.row_cap = row_cap
        self.token = token
        self.stats = Stats()
        #: Versions not published yet (a test knob): not listed, and unknown when asked for.
        self.unpublished: set[int] = set()
        #: Expired versions whose tables are queried anyway (a test knob: the live API's answer
        #: for a version, to compare its static dump with). Still listed as expired.
        self.revived: set[int] = set()
        self._rng_lock = threading.Lock()
        self.faults = faults

    @property
    def faults(self) -> Faults:
        """The fault settings; assigning new ones restarts their seeded draws."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._rng_lock:
            self._faults = faults
            self._rng = random.Random(faults.seed)

    def published(self, expired: bool) -> list[cat.Version]:
        """The versions the server lists: not unpublished, and current unless `expired`."""
        hidden = self.unpublished
        return [v for v in cat.VERSIONS if v.number not in hidden and (expired or not v.expired)]

    @property
    def base_url(self) -> str:
        """Base URL clients use (`http://host:port`)."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def draw(self) -> tuple[bool, bool]:
        """Decide this request's fate: (answer 503, drop the connection mid-body)."""
        with self._rng_lock:
            fail = self._rng.random() < self.faults.fail_rate
            drop = self._rng.random() < self.faults.drop_rate
        return fail, drop

    def lost(self, rows: int) -> np.ndarray:
        """Which of an answer's `rows` the lossy-server fault leaves out (a boolean mask)."""
        if self.faults.lose_rate <= 0 or rows == 0:
            return np.zeros(rows, dtype=bool)
        with self._rng_lock:
            seed = self._rng.getrandbits(64)
        return np.random.default_rng(seed).random(rows) < self.faults.lose_rate


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
    # the client's delayed ACK stall every keep-alive response by ~40 ms.
    disable_nagle_algorithm = True
    server: CaveHTTPServer

    def log_message(self, format: str, *args) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # --- plumbing ---------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None):
        _fail, drop = self._fate
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self._leave()  # before the body: the client cannot send its next request earlier
        if drop and len(body) > 1:
            self.server.stats.count_fault()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _json(self, payload, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._fate = (False, False)
        self._json({"message": message, "error": message, "code": status}, status)

    def _authorized(self) -> bool:
        token = self.server.token
        if token is None:
            return True
        header = self.headers.get("Authorization", "")
        cookie = self.headers.get("Cookie", "")
        return header == f"Bearer {token}" or f"middle_auth_token={token}" in cookie

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        self._is_query = method == "POST"
        self.server.stats.enter(self._is_query, self.path)
        self._in_flight = True
        try:
            self._answer(method)
        finally:
            self._leave()

    def _leave(self) -> None:
        """This request is no longer in flight (once, however the answer ends)."""
        if self._in_flight:
            self._in_flight = False
            self.server.stats.leave(self._is_query)

    def _answer(self, method: str) -> None:
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if server.faults.latency_ms:
            time.sleep(server.faults.latency_ms / 1000)
        self._fate = server.draw()
        if self._fate[0]:
            server.stats.count_fault()
            self._fate = (True, False)
            self._json({"message": "Service Unavailable (injected)"}, 503)
            return
        public = self.path.startswith(("/static/", "/functional/"))  # public buckets
        if not self._authorized() and not public:
            self._error(401, "Unauthorized: a valid token is required to access this resource")
            return
        url = urlparse(self.path)
        try:
            for pattern, verb, handler in _ROUTES:
                match = pattern.fullmatch(url.path)
                if match and verb == method:
                    handler(self, parse_qs(url.query), raw, **match.groupdict())
                    return
            self._error(404, f"no route for {method} {url.path}")
        except QueryError as err:
            self._error(err.status, err.message)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # a bug in the emulator: answer 500, like a real server
            log.exception("emulator error")
            self._error(500, f"emulator internal error: {err}")

    # --- validation -------------------------------------------------------------------
    def _datastack(self, ds: str) -> None:
        if ds != self.server.datastack:
            raise QueryError(404, f"datastack {ds!r} not found")

    def _version(self, ds: str, v: str, *, allow_expired: bool = False) -> int:
        self._datastack(ds)
        try:
            number = int(v)
        except ValueError as err:
            raise QueryError(400, f"version must be an integer, got {v!r}") from err
        if number not in cat.VERSION_INDEX or number in self.server.unpublished:
            raise QueryError(404, f"version {number} of {ds} does not exist")
        expired = cat.VERSIONS[cat.VERSION_INDEX[number]].expired
        if expired and not allow_expired and number not in self.server.revived:
            raise QueryError(
                410, f"version {number} of {ds} has expired: served only as static dumps"
            )
        return number

    def _table(self, v: int, t: str) -> str:
        if t not in cat.tables_in(v):
            raise QueryError(404, f"table {t!r} does not exist in version {v}")
        return t

    # --- routes -----------------------------------------------------------------------
    def info_version(self, q, raw) -> None:
        self._json(cat.INFO_VERSION)

    def datastacks(self, q, raw) -> None:
        self._json([self.server.datastack])

    def datastack_info(self, q, raw, ds) -> None:
        self._datastack(ds)
        self._json(cat.datastack_info(self.server.base_url, ds))

    def api_versions(self, q, raw) -> None:
        self._json([2, 3])

    def engine_version(self, q, raw) -> None:
        self._json(cat.SERVER_VERSION)

    def list_versions(self, q, raw, ds) -> None:
        self._datastack(ds)
        expired = q.get("expired", ["False"])[0].lower() == "true"
        self._json([v.number for v in self.server.published(expired)])

    def versions_metadata(self, q, raw, ds) -> None:
        self._datastack(ds)
        expired = q.get("expired", ["False"])[0].lower() == "true"
        self._json([v.metadata(ds) for v in self.server.published(expired)])

    def version_metadata(self, q, raw, ds, v) -> None:
        number = self._version(ds, v, allow_expired=True)
        self._json(cat.VERSIONS[cat.VERSION_INDEX[number]].metadata(ds))

    def list_tables(self, q, raw, ds, v) -> None:
        self._json(cat.tables_in(self._version(ds, v)))

    def table_metadata(self, q, raw, ds, v, t) -> None:
        number = self._version(ds, v)
        self._json(cat.table_metadata(self._table(number, t), number, ds))

    def table_count(self, q, raw, ds, v, t) -> None:
        number = self._version(ds, v)
        self._json(self.server.engine.count(number, self._table(number, t)))

    def simple_query(self, q, raw, ds, v, t) -> None:
        number = self._version(ds, v)
        if _flag(q, "count"):  # the real server answers a one-row `count` frame, uncapped
            self.server.stats.count_query()
            n = self.server.engine.count_query(number, [self._table(number, t)], self._body(raw))
            count = [pa.array([n], pa.int64())]
            self._arrow(with_pandas_metadata(count, ["count"], {"count": np.dtype("int64")}), {})
            return
        self._query(number, [self._table(number, t)], raw)

    def join_query(self, q, raw, ds, v) -> None:
        number = self._version(ds, v)
        body = self._body(raw)
        tables = body.get("tables") or []
        for entry in tables:
            self._table(number, entry[0])
        if body.get("suffix_map") is None and len(tables) > 1:
            raise QueryError(400, "join queries need a suffix_map (API v3)")
        self._query(number, tables, raw, body)

    def static_file(self, q, raw, ds, v, name) -> None:
        """A file of an expired version's dump; `Range: bytes=a-b` answers 206 with that part."""
        self._datastack(ds)
        body = self.server.static.get(int(v), name)
        if body is None:
            raise QueryError(404, f"No such object: {ds}/v{v}/{name}")
        self._send_file(body, "application/gzip" if name.endswith(".gz") else "text/csv", {})

    def functional_file(self, q, raw, ds, name) -> None:
        """The functional recordings (HDF5), with its SHA-256 as `ETag` (see `functional.py`)."""
        self._datastack(ds)
        if name != FUNCTIONAL_FILE:
            raise QueryError(404, f"No such object: functional/{ds}/{name}")
        body, sha256 = self.server.functional.answer()
        self._send_file(body, "application/x-hdf5", {"ETag": f'"{sha256}"'})

    def _send_file(self, body: bytes, kind: str, headers: dict) -> None:
        """A whole file, or with `Range: bytes=a-b` a 206 with that part (416 past its end)."""
        headers = {"Accept-Ranges": "bytes", **headers}
        wanted = self.headers.get("Range")
        if wanted is None:
            self._send(200, body, kind, headers)
            return
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted.strip())
        start = int(match.group(1)) if match else len(body)
        end = min(int(match.group(2) or len(body) - 1), len(body) - 1) if match else 0
        if start >= len(body) or end < start:
            self._fate = (False, False)
            headers["Content-Range"] = f"bytes */{len(body)}"
            self._send(416, b"", kind, headers)
            return
        headers["Content-Range"] = f"bytes {start}-{end}/{len(body)}"
        self._send(206, body[start : end + 1], kind, headers)

    def _body(self, raw: bytes) -> dict:
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError as err:
            raise QueryError(400, f"query body is not JSON: {err}") from err

    def _query(self, version: int, tables: list, raw: bytes, body: dict | None = None) -> None:
        body = self._body(raw) if body is None else body
        self.server.stats.count_query()
        result = self.server.engine.query(version, tables, body, self.server.row_cap)
        table, lost = result.table, self.server.lost(result.table.num_rows)
        if lost.any():  # a lossy server: rows vanish, nothing says so
            self.server.stats.count_lost(int(lost.sum()))
            table = table.filter(pa.array(~lost))
        headers = {}
        if result.limited_to is not None:
            headers["Warning"] = f'201 - "Limited query to {result.limited_to} rows'
        self._arrow(table, headers)

    def _arrow(self, table: pa.Table, headers: dict) -> None:
        sink = io.BytesIO()
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
            writer.write_table(table)
        vx, vy, vz = cat.VOXEL_RESOLUTION
        headers = {"dataframe_resolution": f"{vx}, {vy}, {vz}", **headers}
        self._send(200, sink.getvalue(), "data.arrow", headers)


def _flag(q: dict, name: str) -> bool:
    """A boolean query-string argument, parsed like flask-restx's `inputs.boolean`."""
    value = q.get(name, ["false"])[0].lower()
    if value not in ("true", "1", "false", "0"):
        raise QueryError(400, f"{name}: {value!r} is not a valid boolean")
    return value in ("true", "1")


_ROUTES = [
    (re.compile(p), verb, handler)
    for p, verb, handler in [
        (r"/info/version", "GET", _Handler.info_version),
        (r"/info/api/v2/datastacks", "GET", _Handler.datastacks),
        (rf"/info/api/v2/datastack/full/{_DS}", "GET", _Handler.datastack_info),
        (r"/materialize/api/versions", "GET", _Handler.api_versions),
        (r"/materialize/version", "GET", _Handler.engine_version),
        (rf"{M3}/versions", "GET", _Handler.list_versions),
        (rf"{M3}/metadata", "GET", _Handler.versions_metadata),
        (rf"{M3}/version/{_V}", "GET", _Handler.version_metadata),
        (rf"{M2}/version/{_V}/tables", "GET", _Handler.list_tables),
        (rf"{M3}/version/{_V}/table/{_T}/metadata", "GET", _Handler.table_metadata),
        (rf"{M2}/version/{_V}/table/{_T}/count", "GET", _Handler.table_count),
        (rf"{M3}/version/{_V}/table/{_T}/query", "POST", _Handler.simple_query),
        (rf"{M3}/version/{_V}/query", "POST", _Handler.join_query),
        (rf"/static/{_DS}/v(?P<v>\d+)/(?P<name>[^/]+)", "GET", _Handler.static_file),
        (rf"/functional/{_DS}/(?P<name>[^/]+)", "GET", _Handler.functional_file),
    ]
]
