"""Worker processes of `materialize`: each runs whole Dagster runs, one partition at a time.

A worker is a spawned process that received the driver's settings as environment variables
before it imported the code location, so its resources point where the driver was told.
Runs execute in-process in the worker, on the driver's (persistent) Dagster instance, so
every run shows up in the web UI. Results travel back as plain picklable dataclasses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dagster as dg

from microns_assets.materialize.dead_workers import DRIVER, DRIVER_TAG, WORKER_TAG, WorkerId
from microns_assets.partitions import CHUNK_DIM, VERSION_DIM

#: The runs' console log level in a worker; the full event log is in the instance (web UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class RunRequest:
    """One run: a job, one partition (version, and chunk for the chunk job), some assets."""

    job: str
    version: str
    assets: tuple[str, ...]
    chunk: str | None = None
    run_config: dict = field(default_factory=dict)

    @property
    def partition_label(self) -> str:
        """The partition as the UI spells it."""
        return f"{self.version}|{self.chunk}" if self.chunk is not None else self.version


@dataclass(frozen=True)
class StepFailure:
    """A failed step: what failed, on which partition, and the error chain."""

    step: str
    partition: str
    message: str


@dataclass(frozen=True)
class RunOutcome:
    """What a run did: its id, success and failed steps (what it wrote is in the instance)."""

    request: RunRequest
    run_id: str
    success: bool
    failures: tuple[StepFailure, ...] = ()


#: This worker process's instance reference, then its instance (set by `init_worker`).
_STATE: dict[str, object] = {}


def init_worker(environ: dict[str, str], instance_ref: dg.InstanceRef) -> None:
    """Process initializer: adopt the driver's settings before the definitions are imported."""
    os.environ.update(environ)
    _STATE["instance_ref"] = instance_ref


def _instance() -> dg.DagsterInstance:
    if "instance" not in _STATE:
        _STATE["instance"] = dg.DagsterInstance.from_ref(_STATE["instance_ref"])
    return _STATE["instance"]


def _defs() -> dg.Definitions:
    from microns_assets.definitions import defs  # after init_worker set the environment

    return defs


def _partition_key(request: RunRequest) -> str | dg.MultiPartitionKey:
    if request.chunk is None:
        return request.version
    return dg.MultiPartitionKey({VERSION_DIM: request.version, CHUNK_DIM: request.chunk})


def _error_text(error) -> str:
    parts = []
    while error is not None:
        parts.append(error.message.strip())
        error = error.cause
    return " <- caused by: ".join(parts)


def run(request: RunRequest) -> RunOutcome:
    """Execute one run in this process and summarize it."""
    job = _defs().resolve_job_def(request.job)
    try:
        result = job.execute_in_process(
            partition_key=_partition_key(request),
            instance=_instance(),
            asset_selection=[dg.AssetKey.from_user_string(a) for a in request.assets],
            run_config={**QUIET, **request.run_config},
            tags={DRIVER_TAG: DRIVER, WORKER_TAG: WorkerId.this_process().tag()},
            raise_on_error=False,
        )
    except dg.DagsterError as err:  # the run could not start, e.g. invalid run config
        details = [e.message for e in getattr(err, "errors", [])]
        message = "; ".join([str(err).splitlines()[0], *details])
        failure = StepFailure(request.job, request.partition_label, message)
        return RunOutcome(request, run_id="", success=False, failures=(failure,))
    failures = []
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RESOURCE_INIT_FAILURE"):
            error = event.event_specific_data.error
            failures.append(
                StepFailure(
                    event.step_key or "resources", request.partition_label, _error_text(error)
                )
            )
    return RunOutcome(request, result.run_id, result.success, tuple(failures))
