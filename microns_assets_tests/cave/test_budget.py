"""The stacked retries of CAVE access end within the bounds `cave/budget.py` states."""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from microns_assets.cave import CaveConnection, CaveSettings, HttpPolicy, budget, errors
from microns_assets.config import RetrySettings
from microns_assets.emulator import Faults
from microns_assets.resources.cave import CaveResource, retry_request
from microns_assets_tests.conftest import connect
from microns_assets_tests.loopback import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cave.md"
REFERENCE = "aibs_metamodel_celltypes_v661"
#: Small settings, so that every layer's retries run out within seconds.
SMALL_HTTP = HttpPolicy(
    connect_timeout_s=0.5, read_timeout_s=0.5, retries=2, backoff_factor_s=0.05, backoff_max_s=0.2
)


def _small(address: str, **overrides) -> CaveSettings:
    settings = {"http": SMALL_HTTP, "call_attempts": 2, "call_wait_max_s": 0.2}
    return CaveSettings("minnie65_synthetic", address, **(settings | overrides))


def _failing_time(conn: CaveConnection, call=None) -> float:
    start = time.perf_counter()
    with pytest.raises(errors.CaveUnavailableError):
        (call or conn.versions)()
    return time.perf_counter() - start


def test_nothing_listening_fails_within_the_bound():
    settings = _small(f"http://127.0.0.1:{free_port()}")
    took = _failing_time(CaveConnection(settings))
    assert took <= budget.connect_worst_s(settings) + budget.call_worst_s(settings)


@pytest.fixture
def silent_server():
    """A server that accepts every connection and never answers a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
    stop.set()
    thread.join()
    for s in [*held, listener]:
        s.close()


def test_a_server_that_never_answers_fails_within_the_bound(silent_server):
    address, held = silent_server
    settings = _small(address, call_attempts=1)
    took = _failing_time(CaveConnection(settings))
    # building the client gave up: each of its attempts waited out its deadline
    assert len(held) >= budget.CONNECT_ATTEMPTS_PER_CALL_ATTEMPT
    assert took >= budget.CONNECT_ATTEMPTS_PER_CALL_ATTEMPT * SMALL_HTTP.connect_timeout_s
    assert took <= budget.connect_worst_s(settings)


@pytest.mark.parametrize("call", ["versions", "query"])
def test_bodies_cut_every_time_fail_a_call_within_the_bound(emulator, call):
    settings = dict(http=SMALL_HTTP, call_attempts=2, call_wait_max_s=0.2)
    conn = connect(emulator, **settings)
    _ = conn.client  # connected while the server behaves
    emulator.server.stats.reset()
    emulator.server.faults = Faults(drop_rate=1.0)
    # a query of a reference table first looks its metadata up: one more request per attempt
    fn = {"versions": conn.versions, "query": lambda: conn.query(1300, REFERENCE)}[call]
    took = _failing_time(conn, fn)
    assert took <= budget.call_worst_s(conn.settings)
    # cut bodies were sent again, but never more often than urllib3's own tries, per request
    tries = SMALL_HTTP.retries + 1
    requests_per_attempt = 1 if call == "versions" else 2
    assert 2 * tries <= emulator.server.stats.requests <= 2 * requests_per_attempt * tries**2


def test_a_steps_sleeps_are_capped_and_add_up_to_the_bound():
    retry = RetrySettings()  # the seed's 10 retries, 5 s apart at first
    rng = random.Random(0)
    for n in range(retry.max_retries):
        waits = [budget.step_wait_s(retry.delay_s, n, rng) for _ in range(200)]
        assert max(waits) <= budget.step_wait_s(retry.delay_s, n) <= budget.STEP_WAIT_MAX_S
        assert min(waits) >= min(budget.STEP_WAIT_MAX_S, 0.5 * retry.delay_s * 2**n)
    asked = retry_request(retry, retry.max_retries - 1).seconds_to_wait
    assert 0 < asked <= budget.STEP_WAIT_MAX_S  # Dagster's own backoff would ask 5,115 +- 5 s
    total = budget.step_sleep_worst_s(retry.delay_s, retry.max_retries)
    assert total == sum(budget.step_wait_s(retry.delay_s, n) for n in range(retry.max_retries))


def _default_settings() -> CaveSettings:
    r = CaveResource()
    http = HttpPolicy(
        connect_timeout_s=r.connect_timeout_s,
        read_timeout_s=r.read_timeout_s,
        retries=r.http_retries,
        backoff_factor_s=r.backoff_factor_s,
    )
    return CaveSettings(r.datastack, http=http, call_attempts=r.call_attempts)


def test_the_docs_state_the_bounds_of_the_default_settings():
    settings, retry = _default_settings(), RetrySettings()
    figures = {
        "send": budget.send_worst_s(settings.http),
        "request": budget.request_worst_s(settings.http),
        "call": budget.call_worst_s(settings),
        "client": budget.connect_worst_s(settings),
        "step sleeps": budget.step_sleep_worst_s(retry.delay_s, retry.max_retries),
    }
    text = DOCS.read_text()
    for name, seconds in figures.items():
        row = re.search(rf"^\| {name} \|.*\| ([\d,.]+) s \|", text, re.MULTILINE)
        assert row, f"docs/cave.md has no row for {name!r}"
        assert float(row.group(1).replace(",", "")) == pytest.approx(seconds, abs=1), name
