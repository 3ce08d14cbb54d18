"""Shared fixtures: one emulator per session on a real loopback socket, reset between tests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import dagster as dg
import pytest

from microns_assets.cave import CaveConnection, CaveSettings, HttpPolicy
from microns_assets.emulator import Emulator, Faults

#: Fast retries for tests: same code paths, shorter sleeps.
FAST_HTTP = HttpPolicy(connect_timeout_s=5, read_timeout_s=60, retries=6, backoff_factor_s=0.01)


WEBUI = "webui"


def _scope(nodeid: str) -> str:
    """The test's module, or the whole web UI package: what one xdist worker runs together."""
    path = nodeid.split("::", 1)[0]
    return WEBUI if path.startswith(f"microns_assets_tests/{WEBUI}/") else path


@pytest.hookimpl(optionalhook=True)  # a hook of xdist: unknown when it is not loaded
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Send each test module, and the whole web UI package, to one xdist worker.

    Their module- and package-scoped fixtures (a materialized workspace, a webserver with a
    daemon and a finished backfill) are then built once, not once per worker. (xdist's
    `loadgroup` marks do not reach the scheduler under pytest 9: it sets `item._nodeid`, which
    pytest 9 no longer reads.) A module of `LAST` (sorted last) starts only once every worker
    has finished the tests before it, and the other workers then stop: it runs alone.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

        def _reschedule(self, node) -> None:
            if not self.workqueue or next(iter(self.workqueue)) not in LAST:
                super()._reschedule(node)
                return
            # A worker runs its last test only once it gets more work or is shut down (pytest
            # needs the next item), so "done" is one pending test, not none.
            live = [n for n in self.nodes if not n.shutting_down]
            if node.shutting_down or any(self._pending_of(self.assigned_work[n]) > 1 for n in live):
                return  # a worker still has tests to run: the last module waits for them
            self._assign_work_unit(node)
            for other in live:
                if other is node:
                    continue
                if self.workqueue:  # (nothing is sorted after it)
                    super()._reschedule(other)
                else:
                    other.shutdown()  # it runs its one last test and stops

    return ByModule(config, log)


#: The longest unit, first: it waits on the daemon, and the short modules fill in beside it.
FIRST = (WEBUI,)
#: Last and alone: the Celery deployment (Postgres, Redis, moto, a daemon and two Celery
#: workers). Run first beside the web UI package, it failed 2 of 4 CI runs on 2 cores (a
#: Postgres schema race, since fixed; Celery's control replies too slow to find the chunk
#: step to kill within 300 s).
LAST = ("microns_assets_tests/distributed/test_celery.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The web UI package first, the Celery deployment last, the rest in between."""

    def rank(item: pytest.Item) -> int:
        scope = _scope(item.nodeid)
        if scope in FIRST:
            return 0
        return 2 if scope in LAST else 1

    items.sort(key=rank)


@pytest.fixture(scope="session", autouse=True)
def _static_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Static dumps downloaded by in-process runs go to a temporary folder, not ./data."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MICRONS_STATIC_DIR", str(tmp_path_factory.mktemp("static-dumps")))
        yield


@pytest.fixture(scope="session")
def emulator_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private world cache, so tests never depend on (or write) the user's cache."""
    return tmp_path_factory.mktemp("emulator-cache")


@pytest.fixture(scope="session")
def session_emulator(emulator_cache) -> Iterator[Emulator]:
    with Emulator(scale="small", seed=0, cache_dir=emulator_cache) as emu:
        yield emu


def _reset(emu: Emulator) -> None:
    """Undo what a test set on a shared emulator: row cap, faults, token, versions, counters."""
    server = emu.server
    server.row_cap = 200_000
    server.faults = Faults()
    server.token = None
    server.unpublished = set()
    server.revived = set()
    server.functional.corrupt_answers = 0
    # a request the test's client gave up on must not count in the next test's figures
    assert server.stats.wait_idle(timeout_s=30), "a request is still in flight 30 s after a test"
    server.stats.reset()


@pytest.fixture
def emulator(session_emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator, reset after the test."""
    yield session_emulator
    _reset(session_emulator)


#: Nuclei missing from `orphan_emulator`'s nucleus table; annotations referencing them remain.
DELETED_NUCLEI = 9


@pytest.fixture(scope="session")
def _orphan_emulator(emulator_cache) -> Iterator[Emulator]:
    with Emulator(
        scale="small", seed=0, cache_dir=emulator_cache, deleted_nuclei=DELETED_NUCLEI
    ) as emu:
        yield emu


@pytest.fixture
def orphan_emulator(_orphan_emulator: Emulator) -> Iterator[Emulator]:
    """An emulator whose reference tables hold orphans (targets deleted); reset after."""
    yield _orphan_emulator
    _reset(_orphan_emulator)


@pytest.fixture
def dagster_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance (sqlite storage) in its own temp dir."""
    home = tmp_path_factory.mktemp("dagster-home")
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def wait_until(condition: Callable[[], object], seconds: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `seconds` pass; whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def connect(emu: Emulator, **overrides) -> CaveConnection:
    """A connection to the emulator with fast test retries."""
    settings = {"datastack": emu.datastack, "server_address": emu.url, "http": FAST_HTTP}
    settings.update(overrides)
    return CaveConnection(CaveSettings(**settings))


@pytest.fixture(autouse=True)
def _quiet_caveclient() -> None:
    logging.getLogger("caveclient").setLevel(logging.ERROR)


def failure_messages(result) -> str:
    """Error messages of a run's failed steps and resources, with the errors that caused them."""
    messages = []
    for event in result.all_events:
        if event.event_type_value not in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE"):
            continue
        error = event.event_specific_data.error
        while error is not None:
            messages.append(error.message)
            error = error.cause
    assert messages, "expected a failed step or resource"
    return " ".join(messages)
