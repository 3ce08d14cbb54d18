"""`CaveConnection` against the emulator on a real socket: retries, fast failures, row cap."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from microns_assets.cave import (
    CaveConnection,
    CaveSettings,
    Filters,
    HttpPolicy,
    errors,
    fetch_complete,
)
from microns_assets.emulator import Faults
from microns_assets_tests.conftest import connect, wait_until

NUC = "nucleus_detection_v0"
CT = "aibs_metamodel_celltypes_v661"


def test_survives_bursts_of_503(emulator):
    emulator.server.faults = Faults(fail_rate=0.5, seed=11)
    conn = connect(emulator)
    frame = conn.query(1300, NUC).frame
    for _ in range(5):
        frame = conn.query(1300, CT).frame
    assert len(frame) == len(emulator.ground_truth(1300, CT))
    assert emulator.server.stats.faults > 3  # faults really happened and were retried


def test_survives_connections_dropped_mid_body(emulator):
    emulator.server.faults = Faults(drop_rate=0.5, seed=12)
    conn = connect(emulator)
    for _ in range(10):
        frame = conn.query(1300, NUC).frame
        assert len(frame) == emulator.n_nuclei
    assert emulator.server.stats.faults >= 4


def test_unauthorized_fails_fast_and_says_how_to_get_a_token(emulator):
    emulator.server.token = "s3cret"
    start = time.perf_counter()
    with pytest.raises(errors.CaveAuthError) as info:
        connect(emulator).versions()
    assert time.perf_counter() - start < 5
    assert "401" in str(info.value) and "CAVE_TOKEN" in str(info.value)
    assert emulator.server.stats.requests <= 2  # no retry storm on an auth error
    assert "s3cret" not in str(info.value)


def test_token_is_sent_when_given(emulator):
    emulator.server.token = "s3cret"
    conn = connect(emulator, token="s3cret")
    assert 1300 in conn.versions()
    assert "s3cret" not in repr(conn.settings)


def test_a_recent_version_list_is_answered_again_only_when_allowed(emulator):
    conn = connect(emulator)
    conn.versions(expired=True)  # the client is built and asked once
    emulator.server.stats.reset()
    listed = [conn.versions(), conn.versions(max_age_s=60), conn.versions(expired=True)]
    assert listed[0] == listed[1] and 1300 in listed[0] and len(listed[2]) >= len(listed[0])
    asked = sum(n for path, n in emulator.server.stats.paths.items() if path.endswith("/versions"))
    assert asked == 2  # the second list came from the first; expired ones are another list
    conn.versions(max_age_s=0)  # too old (any age is): asked again
    asked = sum(n for path, n in emulator.server.stats.paths.items() if path.endswith("/versions"))
    assert asked == 3


@pytest.mark.parametrize("bad", [999, "abc", 13.5, None])
def test_unknown_or_non_int_version_lists_the_available_ones(emulator, bad):
    with pytest.raises(errors.UnknownVersionError) as info:
        connect(emulator).check_version(bad)
    assert "1300" in str(info.value) and "1718" in str(info.value)


def test_string_version_is_accepted_when_listed(emulator):
    assert connect(emulator).check_version("1300") == 1300


def test_expired_version_fails_with_advice(emulator):
    conn = connect(emulator)
    with pytest.raises(errors.ExpiredVersionError, match="static"):
        conn.check_version(1078)
    assert conn.check_version(1078, allow_expired=True) == 1078


def test_unknown_table_lists_the_tables(emulator):
    with pytest.raises(errors.UnknownTableError, match="nucleus_detection_v0"):
        connect(emulator).check_table(1300, "nucleus_detection_v9")


def test_unknown_datastack_lists_the_datastacks(emulator):
    with pytest.raises(errors.UnknownDatastackError, match="minnie65_synthetic"):
        connect(emulator, datastack="minnie65_nope").versions()


def test_server_down_is_unavailable_not_a_hang():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    policy = HttpPolicy(connect_timeout_s=1, read_timeout_s=2, retries=1, backoff_factor_s=0.01)
    conn = CaveConnection(
        CaveSettings(
            "minnie65_synthetic",
            f"http://127.0.0.1:{port}",
            http=policy,
            call_attempts=2,
            call_wait_max_s=0.1,
        )
    )
    start = time.perf_counter()
    with pytest.raises(errors.CaveUnavailableError) as info:
        conn.versions()
    assert info.value.retryable
    assert time.perf_counter() - start < 60
    assert f"127.0.0.1:{port}" in str(info.value)


def test_read_timeouts_are_retried_then_reported(emulator):
    policy = HttpPolicy(connect_timeout_s=2, read_timeout_s=0.3, retries=1, backoff_factor_s=0.01)
    conn = connect(emulator, http=policy, call_attempts=1, call_wait_max_s=0.1)
    _ = conn.client  # connected while the server is quick
    emulator.server.stats.reset()
    emulator.server.faults = Faults(latency_ms=800)
    with pytest.raises(errors.CaveUnavailableError, match=r"(?i)listing versions.*timed out"):
        conn.versions()
    assert emulator.server.stats.requests >= 2  # the timed-out request was tried again


def test_a_server_that_hangs_while_connecting_is_reported_not_waited_for(emulator):
    """Requests caveclient makes while it is built carry no timeout: ours bounds each attempt.

    Run in a child process, which must also exit as soon as it is done: the attempts it
    abandoned at their deadline must not hold it until the server answers.
    """
    emulator.server.faults = Faults(latency_ms=12_000)  # every answer comes far too late
    code = (
        "import time\n"
        "from microns_assets.cave import CaveConnection, CaveSettings, HttpPolicy\n"
        "policy = HttpPolicy(connect_timeout_s=0.5, read_timeout_s=0.5, retries=0)\n"
        f"settings = CaveSettings('{emulator.datastack}', '{emulator.url}', http=policy,\n"
        "    call_attempts=1, call_wait_max_s=0.1)\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    CaveConnection(settings).versions()\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, time.monotonic() - start, time.monotonic(), err)\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        ended = time.monotonic()
        kind, took, printed, message = out.stdout.split(" ", 3)
        assert kind == "CaveUnavailableError", out.stdout + out.stderr[-2000:]
        assert "within 1.0 s while building the client" in message
        # 3 attempts of 1 s and waits of at most 2 s (+ jitter); without the deadline the
        # first stage's 2 requests would take 24 s and then succeed
        assert float(took) < 10
        # a thread the interpreter joins at exit would hold the process for about 12 s more
        assert ended - float(printed) < 6
        assert out.returncode == 0
    finally:  # let the slow answers drain, so no request is in flight for the next test
        wait_until(lambda: not emulator.server.stats.in_flight, seconds=30, interval=0.2)


def test_capped_result_is_reported_truncated(emulator):
    emulator.server.row_cap = 700
    result = connect(emulator, row_cap=10_000).query(1300, NUC)
    assert len(result.frame) == 700
    assert result.truncated and "Limited query to 700 rows" in result.warning


def test_row_count_at_the_cap_counts_as_truncated_even_without_warning(emulator):
    # A deployment with a larger cap than configured is caught by the count alone.
    result = connect(emulator, row_cap=emulator.n_nuclei).query(1300, NUC)
    assert result.warning is None and result.truncated


@pytest.mark.parametrize("table", [NUC, CT])
def test_fetch_complete_loses_and_duplicates_nothing_under_a_tiny_cap(emulator, table):
    emulator.server.row_cap = 250
    emulator.server.faults = Faults(fail_rate=0.2, drop_rate=0.2, seed=5)
    result = fetch_complete(connect(emulator, row_cap=250), 1300, table)
    truth = emulator.ground_truth(1300, table)
    assert result.capped > 0 and result.queries > result.capped
    assert result.frame["id"].is_unique
    assert sorted(result.frame["id"]) == sorted(truth["id"])


def test_fetch_complete_with_filters(emulator):
    emulator.server.row_cap = 100
    result = fetch_complete(
        connect(emulator, row_cap=100),
        1300,
        CT,
        filters=Filters(isin={"classification_system": ["nonneuron"]}),
    )
    truth = emulator.ground_truth(1300, CT)
    expected = truth[truth["classification_system"] == "nonneuron"]["id"]
    assert sorted(result.frame["id"]) == sorted(expected)


def test_fetch_complete_refuses_a_key_it_cannot_split(emulator):
    emulator.server.row_cap = 50
    with pytest.raises(errors.IncompleteResultError, match="valid"):
        fetch_complete(connect(emulator, row_cap=50), 1300, NUC, key="valid")
