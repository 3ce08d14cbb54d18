"""One CAVE call retried as a whole, and its HTTP errors turned into errors that say what to do.

Below a call, each request already has urllib3's retries and our retries of cut bodies
(`http.py`); a call retries what those cannot (a body cut in caveclient's own reads, a client
that fell back to API v2, a request whose retries ran out) `call_attempts` times with short
exponential waits. Its worst case is `budget.call_worst_s`. No Dagster imports.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import TypeVar

import requests
import tenacity

from microns_assets.cave import errors
from microns_assets.cave.http import RETRY_STATUSES

T = TypeVar("T")

log = logging.getLogger(__name__)

TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class ApiFallback(RuntimeError):
    """caveclient silently fell back to materialization API v2 (its version probe failed)."""


def is_transient(err: BaseException) -> bool:
    """Whether trying the call again could help."""
    if isinstance(err, requests.HTTPError):
        status = err.response.status_code if err.response is not None else None
        return status in RETRY_STATUSES or status is None
    return isinstance(err, (*TRANSIENT, ApiFallback))


def call(
    server: str,
    retries: int,
    what: str,
    fn: Callable[..., T],
    *args,
    attempts: int,
    max_wait_s: float,
    **kwargs,
) -> T:
    """`fn(*args, **kwargs)`, tried up to `attempts` times while it fails transiently.

    `server` and `retries` (the HTTP retries per request) only go into the error messages.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
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
        if is_transient(err):
            raise _unavailable(server, retries, what, attempts, err) from err
        raise translate(server, what, err) from err
    except (*TRANSIENT, ApiFallback) as err:
        raise _unavailable(server, retries, what, attempts, err) from err


def _unavailable(
    server: str, retries: int, what: str, attempts: int, err: Exception
) -> errors.CaveError:
    return errors.CaveUnavailableError(
        f"{what}: CAVE at {server} kept failing after {attempts} attempts, each with up to "
        f"{retries} HTTP retries ({_short(err)}). Check the server address and your network."
    )


def translate(server: str, what: str, err: requests.HTTPError) -> errors.CaveError:
    """The error an HTTP error answer means, with what to do about it."""
    status = err.response.status_code if err.response is not None else None
    detail = _server_message(err)
    if status in (401, 403):
        return errors.CaveAuthError(
            f"{what}: CAVE at {server} refused access (HTTP {status}: {detail}). "
            f"{errors.TOKEN_HELP}"
        )
    if status == 410:
        return errors.ExpiredVersionError(f"{what}: {detail}")
    if status is not None and status >= 500:
        return errors.CaveUnavailableError(f"{what}: server error HTTP {status}: {detail}")
    return errors.CaveQueryError(f"{what}: HTTP {status}: {detail}")


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
