"""`materialize_version`: the whole asset graph of one version, one Dagster run per partition.

Dagster runs one partitions definition per run, so the graph is driven as three stages:
raw tables + units/layer segments (one run), the synapse chunks (one run per chunk, `jobs`
at a time in worker processes, a progress bar with ETA), then the roll-up (one run). Each
stage runs only what `Planner` finds not current; a failed stage stops the ones after it.
All runs go to the given instance, so they show up in the web UI.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TextIO

import dagster as dg
from tqdm import tqdm

from microns_assets.jobs import chunks_job, rollup_job, units_job
from microns_assets.materialize import worker
from microns_assets.materialize.dead_workers import fail_runs_of_dead_workers
from microns_assets.materialize.plan import (
    CHUNKS_ASSET,
    CONFIG_OP,
    ROLLUP_ASSET,
    Planner,
    op_config,
)
from microns_assets.materialize.worker import RunOutcome, RunRequest, StepFailure
from microns_assets.partitions import VERSION_DIM
from microns_assets.settings import ENV_DATA_DIR, ENV_DATASTACK, ENV_SERVER, Settings

UNITS_JOB, CHUNKS_JOB, ROLLUP_JOB = units_job.name, chunks_job.name, rollup_job.name
POOL = "cave"
#: The ops of each stage's job that take run config.
JOB_OPS = {
    UNITS_JOB: (CONFIG_OP["units"],),
    CHUNKS_JOB: (CONFIG_OP[CHUNKS_ASSET],),
    ROLLUP_JOB: (),
}


@dataclass
class Report:
    """What a `materialize_version` call ran, skipped and wrote."""

    outcomes: list[RunOutcome] = field(default_factory=list)
    failures: list[StepFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        """True when every run that was started succeeded."""
        return not self.failures


def _job_config(run_config: dict | None, job: str) -> dict:
    ops = {op: {"config": op_config(run_config, op)} for op in JOB_OPS[job]}
    return {"ops": {op: c for op, c in ops.items() if c["config"]}} if ops else {}


def cave_pool_limit(instance: dg.DagsterInstance) -> int | None:
    """The `cave` pool's limit on this instance (its own, else the default), None if unlimited.

    The driver never runs more chunk runs at once than this: Dagster's pool bounds steps
    across runs exactly on Postgres storage, but on SQLite two processes can claim the same
    free slot at the same moment.
    """
    storage = instance.event_log_storage
    own = {p.name: p.limit for p in storage.get_pool_limits() if not p.from_default}
    return own.get(POOL, storage.get_pool_config().default_pool_limit)


def _environ(settings: Settings) -> dict[str, str]:
    return {
        ENV_SERVER: settings.server,
        ENV_DATASTACK: settings.datastack,
        ENV_DATA_DIR: settings.data_dir,
    }


class _Runner:
    """A pool of worker processes running requests and collecting outcomes into a report."""

    def __init__(self, pool: ProcessPoolExecutor, report: Report) -> None:
        self.pool, self.report = pool, report

    def _collect(self, request: RunRequest, future: Future) -> RunOutcome:
        try:
            outcome = future.result()
        except BrokenProcessPool as err:
            failure = StepFailure("worker", request.partition_label, f"worker process died: {err}")
            outcome = RunOutcome(request, run_id="", success=False, failures=(failure,))
        if not outcome.success and not outcome.failures:
            failure = StepFailure(request.job, request.partition_label, "run did not succeed")
            outcome = replace(outcome, failures=(failure,))
        self.report.outcomes.append(outcome)
        self.report.failures.extend(outcome.failures)
        return outcome

    def run_one(self, request: RunRequest) -> RunOutcome:
        return self._collect(request, self.pool.submit(worker.run, request))

    def run_many(self, requests: list[RunRequest], bar: tqdm) -> None:
        futures = {self.pool.submit(worker.run, r): r for r in requests}
        while futures:
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = self._collect(futures.pop(future), future)
                bar.update(1)
                if not outcome.success:
                    bar.write(f"  failed: chunk {outcome.request.chunk}")


def materialize_version(
    version: int,
    *,
    instance: dg.DagsterInstance,
    settings: Settings,
    jobs: int = 1,
    force: bool = False,
    run_config: dict | None = None,
    out: TextIO = sys.stderr,
) -> Report:
    """Materialize every asset of `version` that is not current; see the module docstring."""
    start = time.perf_counter()
    limit = cave_pool_limit(instance)
    if limit is not None and limit < jobs:
        print(
            f"The instance's `{POOL}` pool allows {limit} CAVE step(s) at once: --jobs {limit}",
            file=out,
        )
        jobs = limit
    key = str(int(version))
    report = Report()
    dead = fail_runs_of_dead_workers(instance)
    if dead:
        print(
            f"Marked {len(dead)} run(s) of an earlier `materialize` whose process is gone "
            "as failed.",
            file=out,
        )
    if not instance.has_dynamic_partition(VERSION_DIM, key):
        instance.add_dynamic_partitions(VERSION_DIM, [key])
    planner = Planner(instance, key, run_config, force)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=max(1, jobs),
        mp_context=context,
        initializer=worker.init_worker,
        initargs=(_environ(settings), instance.get_ref()),
    ) as pool:
        runner = _Runner(pool, report)
        todo = planner.stale_units_stage()
        if todo:
            print(f"v{key}: raw tables, units and layer segments ({len(todo)} assets)", file=out)
            request = RunRequest(
                UNITS_JOB, key, tuple(todo), None, _job_config(run_config, UNITS_JOB)
            )
            if not runner.run_one(request).success:
                return _finish(report, start)
        else:
            report.skipped.append("raw tables, units and layer segments")
        chunks = planner.stale_chunks()
        if chunks:
            config = _job_config(run_config, CHUNKS_JOB)
            requests = [RunRequest(CHUNKS_JOB, key, (CHUNKS_ASSET,), c, config) for c in chunks]
            with tqdm(
                total=len(requests), desc=f"v{key} synapse chunks", unit="chunk", file=out
            ) as bar:
                runner.run_many(requests, bar)
            if not report.success:
                return _finish(report, start)
        else:
            report.skipped.append("synapse chunks")
        if planner.rollup_stale():
            print(f"v{key}: rolling the chunks up into `synapses`", file=out)
            runner.run_one(RunRequest(ROLLUP_JOB, key, (ROLLUP_ASSET,)))
        else:
            report.skipped.append("synapses")
    return _finish(report, start)


def _finish(report: Report, start: float) -> Report:
    report.seconds = time.perf_counter() - start
    return report
