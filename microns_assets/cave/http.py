"""HTTP behaviour of our CAVE sessions: timeouts, urllib3 retries, and row-cap warning capture.

caveclient builds a `requests.Session` per service with no timeout and a narrow retry policy
(502/503/504, 3 tries, 0.1 s backoff). `harden_session` mounts an adapter with our timeouts,
retry policy (bodies cut mid-stream included) and bound on requests in flight, and a response
hook that records the server's row-cap `Warning` header per thread (caveclient only logs it), so
a capped result is detected rather than silently stored.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

#: Bodies are read in pieces this large. `Response.content` reads 10 KiB at a time, each piece
#: ~15 µs of Python through urllib3 and http.client: a synapse answer of 2.3 MB took 230 reads
#: and ~3 ms of CPU more than one piece does (the same errors for a cut body either way).
READ_CHUNK = 1 << 20
#: Statuses worth retrying: gateway errors, overload, rate limiting.
RETRY_STATUSES = (429, 502, 503, 504)
ROW_CAP_WARNING = "Limited query to"


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and urllib3-level retries for every request to CAVE."""

    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0
    retries: int = 6
    backoff_factor_s: float = 0.5
    backoff_max_s: float = 60.0

    def send_worst_s(self) -> float:
        """The longest one send through urllib3's retries can take (`budget.send_worst_s`)."""
        tries = self.retries + 1
        return (
            tries * (self.connect_timeout_s + self.read_timeout_s)
            + self.retries * self.backoff_max_s
        )

    def retry(self) -> Retry:
        """The urllib3 policy: statuses above, connect errors and reads that fail early."""
        return Retry(
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            backoff_factor=self.backoff_factor_s,
            backoff_max=self.backoff_max_s,
            backoff_jitter=self.backoff_factor_s / 2,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            respect_retry_after_header=True,
            retry_after_max=int(self.backoff_max_s),  # urllib3 would wait up to 6 h
            raise_on_status=False,
        )


class InFlight:
    """A bound on the requests in flight, shared by every session of one connection."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"requests in flight must be at least 1, not {limit}")
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)

    def __enter__(self) -> None:
        self._slots.acquire()

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


class _HardenedAdapter(HTTPAdapter):
    """Default timeouts, and retries of bodies cut mid-stream (urllib3 retries end at headers)."""

    def __init__(self, policy: HttpPolicy, gate: InFlight | None = None, **kwargs) -> None:
        self._policy = policy
        self._gate = gate
        super().__init__(max_retries=policy.retry(), **kwargs)

    def send(self, request, **kwargs):
        if self._gate is None:
            return self._send(request, **kwargs)
        with self._gate:  # one slot from the request's first byte to its body's last
            return self._send(request, **kwargs)

    def _send(self, request, **kwargs):
        p = self._policy
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (p.connect_timeout_s, p.read_timeout_s)
        # a cut body is sent again only within one send's worst case (see `budget.py`), so
        # these retries do not multiply urllib3's
        give_up = time.monotonic() + p.send_worst_s()
        for attempt in range(p.retries + 1):
            response = super().send(request, **kwargs)
            if kwargs.get("stream"):
                return response
            try:  # read here, where a cut body can still be retried
                if response._content is False:  # (requests' mark for "not read yet")
                    response._content = b"".join(response.iter_content(READ_CHUNK)) or b""
                return response
            except _BODY_ERRORS:
                response.close()
                wait = min(p.backoff_max_s, p.backoff_factor_s * 2**attempt)
                if attempt == p.retries or time.monotonic() + wait > give_up:
                    raise
                time.sleep(wait)
        raise AssertionError("unreachable")


_BODY_ERRORS = (
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
    requests.exceptions.ConnectionError,
)


_warnings = threading.local()


def _record_warning(response: requests.Response, *args, **kwargs) -> requests.Response:
    warning = response.headers.get("Warning")
    if warning and ROW_CAP_WARNING in warning:
        _warnings.row_cap = warning
    return response


def reset_row_cap_warning() -> None:
    """Forget this thread's last row-cap warning (call before a query)."""
    _warnings.row_cap = None


def row_cap_warning() -> str | None:
    """The row-cap `Warning` header of this thread's last query, if the server sent one."""
    return getattr(_warnings, "row_cap", None)


def harden_session(
    session: requests.Session,
    policy: HttpPolicy,
    gate: InFlight | None = None,
    pool_size: int = 16,
) -> None:
    """Give a caveclient service session our timeouts, retries and warning hook.

    `gate`, shared by every session of a connection, bounds its requests in flight: a request
    holds a slot from sending to the end of its body (retries included), so the server never
    sees more requests at once from this connection than the gate allows.
    """
    adapter = _HardenedAdapter(
        policy,
        gate,
        pool_connections=max(pool_size, gate.limit if gate else 0),
        pool_maxsize=max(pool_size, gate.limit if gate else 0),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if _record_warning not in session.hooks["response"]:
        session.hooks["response"].append(_record_warning)
