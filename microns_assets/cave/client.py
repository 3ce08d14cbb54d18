"""Building the shared `CAVEclient` and its API-v3 materialization client, under deadlines.

Building a client makes a few requests on caveclient's own sessions, before ours can be
hardened: they carry no timeout, and a body cut mid-stream there is not retried by HTTP. Each
stage therefore runs under a deadline (`connect_deadline_s`, `call_within`) and is retried on
its own, three times as often as a call, with short waits (`CONNECT_WAIT_MAX_S`). A stage
abandoned at its deadline may still finish later in its daemon thread: a client it builds is
discarded; a materialization client it builds is either discarded or, at worst, taken by the
next attempt, which verifies and hardens it like its own. No Dagster imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import requests

from microns_assets.cave import errors
from microns_assets.cave.calls import ApiFallback, call
from microns_assets.cave.deadline import DeadlineExceeded, call_within
from microns_assets.cave.http import HttpPolicy, InFlight, harden_session
from microns_assets.cave.settings import CaveSettings

if TYPE_CHECKING:
    from caveclient import CAVEclient
    from caveclient.materializationengine import MaterializationClient

T = TypeVar("T")

#: Cap on the read part of a client-building attempt's deadline: its answers are small.
CONNECT_READ_MAX_S = 30.0
#: Attempts of each stage of building the client, per `call_attempts`.
CONNECT_ATTEMPTS_PER_CALL_ATTEMPT = 3
#: Longest wait between two attempts of a stage.
CONNECT_WAIT_MAX_S = 2.0


def connect_deadline_s(http: HttpPolicy) -> float:
    """How long one stage of building the client may take: a connect and a short read."""
    return http.connect_timeout_s + min(http.read_timeout_s, CONNECT_READ_MAX_S)


def build_client(
    settings: CaveSettings, in_flight: InFlight
) -> tuple[CAVEclient, MaterializationClient]:
    """A hardened client and its verified API-v3 materialization client."""
    from caveclient import CAVEclient  # noqa: F401  # heavy: imported outside any deadline

    what = f"connecting to datastack {settings.datastack!r}"
    deadline = connect_deadline_s(settings.http)

    def stage(build: Callable[..., T], *args) -> T:
        return call(
            settings.server_address, settings.http.retries, what, _within, deadline, build,
            *args, attempts=CONNECT_ATTEMPTS_PER_CALL_ATTEMPT * settings.call_attempts,
            max_wait_s=CONNECT_WAIT_MAX_S,
        )  # fmt: skip

    client = stage(_client, settings, in_flight)
    return client, stage(_materialize, client, settings.http, in_flight)


def _within(deadline: float, build: Callable[..., T], *args) -> T:
    try:
        return call_within(deadline, build, *args)
    except DeadlineExceeded:
        raise requests.Timeout(
            f"timed out: no complete answer within {deadline:.1f} s while building the client"
        ) from None


def _materialize(
    client: CAVEclient, http: HttpPolicy, in_flight: InFlight
) -> MaterializationClient:
    client._materialize = None  # a failed attempt may have left a v2 client behind
    mat = client.materialize
    if mat.api_version != 3:
        raise ApiFallback("the materialization API version probe failed")
    harden_session(mat.session, http, in_flight)
    return mat


def _client(s: CaveSettings, in_flight: InFlight) -> CAVEclient:
    from caveclient import CAVEclient

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
            raise errors.UnknownDatastackError(_unknown_datastack_message(s)) from err
        raise
    harden_session(client.info.session, s.http, in_flight)
    return client


def _unknown_datastack_message(s: CaveSettings) -> str:
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
        f"{known}. Name one of them: `--datastack` of a command, MICRONS_DATASTACK, or the "
        "resource's `datastack`."
    )
