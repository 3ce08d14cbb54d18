"""`CaveResource`: the one Dagster resource through which every asset reaches CAVE.

Configuration and lifecycle only; the calls themselves live in `microns_assets.cave`. With
`server_address="embedded"` the resource starts the CAVE emulator in-process for the run.
"""

import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import fields, replace
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from microns_assets.cave import GLOBAL_SERVER, CaveConnection, CaveSettings, HttpPolicy
from microns_assets.cave.budget import step_wait_s
from microns_assets.cave.errors import CaveError
from microns_assets.cave.settings import ROW_CAP
from microns_assets.config import RetrySettings
from microns_assets.emulator import DATASTACK as SYNTHETIC_DATASTACK
from microns_assets.settings import (
    EMBEDDED,
    PUBLIC_DATASTACK,
    Settings,
    static_base,
    static_dir_from_env,
)
from microns_assets.static_dumps.source import StaticSource

#: For a sensor tick, which Dagster stops after 60 s: short timeouts, one HTTP retry, one
#: attempt per call (building the client still takes up to 3). The sensor also puts its whole
#: listing under `TICK_BUDGET_S`, so a dead or hanging server ends the tick with our message
#: instead of Dagster's timeout. A version listing normally answers in well under a second.
TICK_HTTP = HttpPolicy(
    connect_timeout_s=3.0, read_timeout_s=6.0, retries=1, backoff_factor_s=0.5, backoff_max_s=1.0
)
TICK_BUDGET_S = 45.0


class CaveResource(dg.ConfigurableResource):
    """Access to one CAVE datastack through caveclient, with timeouts and retries."""

    datastack: str = Field(PUBLIC_DATASTACK, description="CAVE datastack name.")
    server_address: str = Field(
        GLOBAL_SERVER,
        description="CAVE global server URL, or `embedded` to start the synthetic emulator.",
    )
    token_env_var: str = Field(
        "CAVE_TOKEN", description="Environment variable holding the CAVE token (never logged)."
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="TCP connect timeout per request.")
    read_timeout_s: float = Field(300.0, gt=0, description="Read timeout per request.")
    http_retries: int = Field(
        6,
        ge=0,
        le=20,
        description="Retries per request: 429/502/503/504, resets, timeouts, cut bodies.",
    )
    backoff_factor_s: float = Field(
        0.5, ge=0, description="Exponential backoff base between retries."
    )
    call_attempts: int = Field(
        4, ge=1, le=20, description="Attempts per CAVE call once HTTP retries fail."
    )
    row_cap: int = Field(
        ROW_CAP, ge=1, description="The server's QUERY_LIMIT_SIZE: a result this long is capped."
    )
    max_in_flight: int = Field(
        4,
        ge=1,
        description="Requests to CAVE in flight at once, at most, per run (the chunk step "
        "downloads that many sub-batches at a time). Across runs, the `cave` pool bounds how "
        "many steps query CAVE at once.",
    )
    static_base: str = Field(
        "",
        description="Root URL of the static dumps of expired versions; empty: the default for "
        "the datastack (`MICRONS_STATIC_BASE`, see `microns_assets.settings`).",
    )
    static_dir: str = Field(
        "", description="Local folder for downloaded dump files (`MICRONS_STATIC_DIR`)."
    )
    emulator_scale: str = Field("small", description="Emulator size when embedded.")
    emulator_seed: int = Field(0, description="Emulator world seed when embedded.")

    _connection: CaveConnection | None = PrivateAttr(None)
    _emulator: object | None = PrivateAttr(None)
    _static: StaticSource | None = PrivateAttr(None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Start the emulator if embedded; connect lazily on first call."""
        self._static = None  # settings are read again for each run
        address = self.server_address
        if address == EMBEDDED:
            if self.datastack != SYNTHETIC_DATASTACK:
                raise dg.Failure(
                    f"The embedded emulator serves only {SYNTHETIC_DATASTACK!r}, not "
                    f"{self.datastack!r}. Unset MICRONS_DATASTACK or point MICRONS_CAVE_SERVER "
                    "at a real CAVE server.",
                    allow_retries=False,
                )
            from microns_assets.emulator import Emulator

            self._emulator = Emulator(scale=self.emulator_scale, seed=self.emulator_seed).start()
            address = self._emulator.url
        # an emulator of this run's own is at a new address every run: nothing to share
        connect = CaveConnection if self._emulator is not None else shared_connection
        self._connection = connect(self._settings(address))

    def _settings(self, address: str) -> CaveSettings:
        policy = HttpPolicy(
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            retries=self.http_retries,
            backoff_factor_s=self.backoff_factor_s,
        )
        return CaveSettings(
            datastack=self.datastack,
            server_address=address,
            token=os.environ.get(self.token_env_var) or None,
            http=policy,
            call_attempts=self.call_attempts,
            row_cap=self.row_cap,
            max_in_flight=self.max_in_flight,
        )

    def warm(self) -> threading.Thread | None:
        """Build this process's shared connection's client in the background, now.

        `materialize` does while Dagster starts its first run (the client costs four requests
        in a row). A failure is left for the run to meet and report; nothing for `embedded`.
        """
        if self.server_address == EMBEDDED:
            return None
        connection = shared_connection(self._settings(self.server_address))

        def build() -> None:
            with suppress(Exception):  # the run builds it again and reports what failed
                _ = connection.client

        thread = threading.Thread(target=build, name="cave-warm", daemon=True)
        thread.start()
        return thread

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Stop the embedded emulator, if any."""
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None

    @property
    def connection(self) -> CaveConnection:
        """The live connection (only inside a run)."""
        if self._connection is None:
            raise RuntimeError("CaveResource used outside of a run (setup_for_execution not run)")
        return self._connection

    def tick_connection(self) -> CaveConnection:
        """The connection for sensor ticks: each HTTP setting at most `TICK_HTTP`'s, one attempt."""
        ours = self.connection.settings.http
        http = HttpPolicy(
            **{f.name: min(getattr(ours, f.name), getattr(TICK_HTTP, f.name)) for f in fields(ours)}
        )
        return CaveConnection(replace(self.connection.settings, http=http, call_attempts=1))

    @property
    def static(self) -> StaticSource:
        """The static dumps of this datastack's expired versions (only inside a run)."""
        if self._static is None:
            base = self.static_base or static_base(self.datastack, self.effective_server)
            env = Settings.from_env()  # default: beside the data dir of MICRONS_DATA_DIR
            folder = self.static_dir or static_dir_from_env(
                Settings(self.effective_server, self.datastack, env.data_dir)
            )
            self._static = StaticSource(base, Path(folder), attempts=max(1, self.http_retries))
        return self._static

    @property
    def effective_server(self) -> str:
        """The server actually talked to (the emulator's URL when embedded)."""
        return self.connection.settings.server_address


_SHARED: dict[CaveSettings, CaveConnection] = {}
_SHARED_LOCK = threading.Lock()


def shared_connection(settings: CaveSettings) -> CaveConnection:
    """This process's connection for `settings`, made on first use.

    Runs that follow one another in one process (`microns-assets materialize` runs a version's
    three there) share one connection, so its CAVEclient (whose construction costs four
    requests in a row, 0.2 s at 50 ms a request) is built once. Runs of one process at the same
    time share its bound on requests in flight. A connection holds no run's state; caveclient's
    own caches (table metadata, 12 h) are per process anyway.
    """
    with _SHARED_LOCK:
        connection = _SHARED.get(settings)
        if connection is None:
            connection = _SHARED[settings] = CaveConnection(settings)
        return connection


def _forget_shared_in_child() -> None:
    """A forked child makes connections of its own (its parent's sockets are not its own)."""
    global _SHARED_LOCK
    _SHARED_LOCK = threading.Lock()
    _SHARED.clear()


os.register_at_fork(after_in_child=_forget_shared_in_child)


def retry_request(retry: RetrySettings, retry_number: int) -> dg.RetryRequested:
    """Ask Dagster to re-run the step after `budget.step_wait_s`: exponential, +-50 %, capped.

    Dagster's own exponential backoff would sleep `(2^n - 1) x delay` (85 min before the
    tenth retry of a 5 s delay); ours is capped at `budget.STEP_WAIT_MAX_S`.
    """
    wait = step_wait_s(retry.delay_s, retry_number, random.Random())
    return dg.RetryRequested(max_retries=retry.max_retries, seconds_to_wait=wait)


def retries_disabled(context: dg.AssetExecutionContext) -> bool:
    """Whether this run's executor config turns step retries off (`retries: disabled: {}`).

    Dagster then fails a step that asks for a retry; it keeps the mode only on the step's
    private context, so anything unknown there counts as enabled.
    """
    step = getattr(context.op_execution_context, "_step_execution_context", None)
    mode = getattr(step, "retry_mode", None)
    return bool(getattr(mode, "disabled", False))


@contextmanager
def cave_errors_as_failures(
    context: dg.AssetExecutionContext, retry: RetrySettings | None = None
) -> Iterator[None]:
    """Turn CAVE errors into Dagster outcomes.

    Errors retrying cannot fix fail the step at once (`Failure(allow_retries=False)`); an
    unavailable server (or an incomplete dump download) asks for a retry with the version's
    policy, until its attempts run out or when the run's config disables retries.
    """
    try:
        yield
    except CaveError as err:
        if not (err.retryable and retry is not None):
            raise dg.Failure(description=str(err), allow_retries=False) from err
        disabled = retries_disabled(context)
        if not disabled and context.retry_number < retry.max_retries:
            context.log.warning(
                f"{err.outage}; the step runs again (retry {context.retry_number + 1} of "
                f"{retry.max_retries}, the version's retry policy): {err}"
            )
            raise retry_request(retry, context.retry_number) from err
        if disabled:
            spent = (
                f" The version's retry policy allows {retry.max_retries} retries, but this "
                "run's config disables them (`execution: config: retries: disabled`): "
                "enable them, or run the step again later."
            )
        else:
            spent = (
                f" The step ran {context.retry_number + 1} time(s); the version's retry policy "
                f"allows {retry.max_retries} retries (`retry` in the versions file)."
            )
        raise dg.Failure(description=str(err) + spent, allow_retries=False) from err
