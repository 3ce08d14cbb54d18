"""How long CAVE access can take at worst: each layer's retries, added up. No Dagster imports.

Layers, innermost first (each figure is an upper bound, reached only when every try fails as
slowly as it can):

1. **A send** (urllib3, `http.py`): `retries + 1` tries, each one connect and one wait for
   the response's headers (`connect_timeout_s + read_timeout_s`), with a wait of at most
   `backoff_max_s` before each retry (the exponential backoff, or the server's `Retry-After`,
   capped at the same).
2. **A request** (`http.py`): a body cut mid-stream is sent again only while one send's worst
   case has not passed since the request began; the last try may then take a whole send and
   its body's read: at most `2 x send + read_timeout_s`.
3. **A call** (`calls.py`): `call_attempts` attempts of one request each, waiting at most
   `min(call_wait_max_s, 0.5 x 2^(i-1) + 1)` before attempt i + 1; plus one request, because
   caveclient looks a table's metadata up (a GET) before its first query of a table and
   version, inside the same attempt (it keeps the answer once it succeeded).

The timeouts apply to each socket operation, as in requests and urllib3, not to a whole try:
these bounds assume each operation is one timeout long. Not bounded by them: a DNS lookup
(no timeout), a host name with several addresses (each gets the connect timeout), a TLS
handshake or request body sent slowly, and a server trickling headers or a body a byte at a
time (each byte restarts the read timeout).
4. **Building the client** (`client.py`, once per connection): two stages, each up to
   `3 x call_attempts` attempts of at most `connect_deadline_s`, at most 2 s apart.
5. **A step** (`resources/cave.py`): a CAVE that stays unavailable re-runs the step
   `max_retries` times, sleeping `step_wait_s` (at most `STEP_WAIT_MAX_S`) before each.

`docs/cave.md` states these for the default settings; a test holds the page to this module.
"""

from __future__ import annotations

import random

from microns_assets.cave.client import (
    CONNECT_ATTEMPTS_PER_CALL_ATTEMPT,
    CONNECT_WAIT_MAX_S,
    connect_deadline_s,
)
from microns_assets.cave.http import HttpPolicy
from microns_assets.cave.settings import CaveSettings

#: Longest sleep before a step's retry: exponential from the version's `delay_s`, capped here.
STEP_WAIT_MAX_S = 60.0
#: tenacity's jitter between a call's attempts, at most (`calls.py`).
CALL_JITTER_S = 1.0


def send_worst_s(http: HttpPolicy) -> float:
    """One send through urllib3's retries, to the response's headers."""
    return http.send_worst_s()


def request_worst_s(http: HttpPolicy) -> float:
    """One request, bodies cut mid-stream sent again (see layer 2)."""
    return 2 * send_worst_s(http) + http.read_timeout_s


def call_wait_s(settings: CaveSettings, attempt: int) -> float:
    """The longest wait after a call's attempt number `attempt` (1-based) failed."""
    return min(settings.call_wait_max_s, 0.5 * 2 ** (attempt - 1) + CALL_JITTER_S)


#: Requests of a call besides its attempts: caveclient's metadata lookup before a table's
#: first query.
LOOKUPS_PER_CALL = 1


def call_worst_s(settings: CaveSettings) -> float:
    """One call: every attempt's request, caveclient's lookup, and the waits between them."""
    attempts = settings.call_attempts
    waits = sum(call_wait_s(settings, i) for i in range(1, attempts))
    return (attempts + LOOKUPS_PER_CALL) * request_worst_s(settings.http) + waits


def connect_worst_s(settings: CaveSettings) -> float:
    """Building the client: two stages of deadline-bounded attempts (waits at most 2 s)."""
    attempts = CONNECT_ATTEMPTS_PER_CALL_ATTEMPT * settings.call_attempts
    stage = attempts * connect_deadline_s(settings.http) + (attempts - 1) * CONNECT_WAIT_MAX_S
    return 2 * stage


def step_wait_s(delay_s: float, retry_number: int, rng: random.Random | None = None) -> float:
    """The sleep before a step's retry `retry_number + 1`: `delay_s x 2^n`, +-50 %, capped.

    With `rng` None the largest value the jitter can give.
    """
    base = delay_s * 2**retry_number
    factor = 1.5 if rng is None else rng.uniform(0.5, 1.5)
    return min(STEP_WAIT_MAX_S, base * factor)


def step_sleep_worst_s(delay_s: float, max_retries: int) -> float:
    """All the sleeping of a step whose every try found CAVE unavailable."""
    return sum(step_wait_s(delay_s, n) for n in range(max_retries))
