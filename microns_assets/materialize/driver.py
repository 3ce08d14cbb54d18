"""`materialize_version`: a version's backfill runs, executed in this process, stage by stage.

The runs are the ones an asset backfill of the version makes (`stages.version_stages`): raw
tables + units + layer segments in one run, every synapse chunk in one partition-range run, the
roll-up in one run. Each executes in process on the given (persistent) instance, so it shows in
the web UI like any other run; a stage that fails stops the ones after it. The chunk step
reuses every chunk already complete, so running again redoes only what is missing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster._core.utils import make_new_run_id
from tqdm import tqdm

from microns_assets import catalogue
from microns_assets.materialize.dead_workers import (
    DRIVER,
    DRIVER_TAG,
    WORKER_TAG,
    WorkerId,
    fail_runs_of_dead_workers,
)
from microns_assets.materialize.follow import RunFollower, StepFailure, following, run_failures
from microns_assets.materialize.pools import ensure_pools
from microns_assets.materialize.stages import STAGE_NAMES, add_version, version_stages
from microns_assets.partitions import version_chunk
from microns_assets.processing.painter import painter
from microns_assets.resources.cave import CaveResource
from microns_assets.synapses import summary

#: The console log level of in-process runs; the full event log is in the instance (web UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CHUNKS = dg.AssetKey(catalogue.SYNAPSE_CHUNKS.key)


@dataclass(frozen=True)
class RunTime:
    """How long one run took: wall time, and CPU time of this process (all its threads)."""

    stage: str
    seconds: float
    cpu_seconds: float


@dataclass
class Report:
    """What a `materialize_version` call ran and how it ended."""

    run_ids: list[str] = field(default_factory=list)
    times: list[RunTime] = field(default_factory=list)
    failures: list[StepFailure] = field(default_factory=list)
    chunks: dict[str, str] = field(default_factory=dict)  # partition -> downloaded/reused/failed
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        """True when every run that was started succeeded."""
        return not self.failures


def run_config_for(defs: dg.Definitions, request: dg.RunRequest, run_config: dict) -> dict:
    """The run's config: `QUIET` plus the `ops` entries of the ops this run executes."""
    ops = {defs.resolve_assets_def(key).op.name for key in request.asset_selection}
    wanted = {op: c for op, c in (run_config.get("ops") or {}).items() if op in ops}
    return {**QUIET, **({"ops": wanted} if wanted else {})}


def chunk_count(tags: Mapping[str, str], instance: dg.DagsterInstance) -> int:
    """How many chunk partitions a chunk run covers (its partition range), from its tags."""
    start = tags.get(ASSET_PARTITION_RANGE_START_TAG)
    if start is None:
        return 1
    keys = version_chunk.get_partition_keys_in_range(
        dg.PartitionKeyRange(start, tags[ASSET_PARTITION_RANGE_END_TAG]),
        dynamic_partitions_store=instance,
    )
    return len(keys)


def materialize_version(
    version: int,
    *,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    run_config: dict | None = None,
    out: TextIO = sys.stderr,
) -> Report:
    """Materialize every asset of `version`; see the module docstring."""
    start = time.perf_counter()
    report = Report()
    dead = fail_runs_of_dead_workers(instance)
    if dead:
        print(
            f"Marked {len(dead)} run(s) of an earlier `materialize` whose process is gone "
            "as failed.",
            file=out,
        )
    key = add_version(instance, version)
    ensure_pools(instance)
    cave = defs.resources.get("cave")
    if isinstance(cave, CaveResource):
        cave.warm()  # the CAVE client is built while Dagster starts the first run
    painter().warm()  # the runs execute here: their pictures' helper imports matplotlib meanwhile
    stages = version_stages(defs, instance, key)
    job = defs.resolve_implicit_global_asset_job_def()
    tags = {DRIVER_TAG: DRIVER, WORKER_TAG: WorkerId.this_process().tag()}
    try:
        for stage, (name, requests) in enumerate(zip(STAGE_NAMES, stages, strict=True)):
            if stage == 1 and stages[-1]:  # the helper gets ready for the roll-up while chunks load
                painter().submit("connectome.warm")
                summary.expect_rollup(int(key))  # its summary is asked once the chunks are in
            print(f"v{key}: {name} ({len(requests)} run{'s' * (len(requests) != 1)})", file=out)
            for request in requests:
                chunked = CHUNKS in request.asset_selection
                bar = None
                if chunked:
                    total = chunk_count(request.tags, instance)
                    bar = tqdm(total=total, desc=f"v{key} synapse chunks", unit="chunk", file=out)
                follower = RunFollower(instance, bar)
                run_id = make_new_run_id()
                clock, cpu = time.perf_counter(), time.process_time()
                try:
                    with following(follower, run_id):
                        job.execute_in_process(
                            run_config=run_config_for(defs, request, run_config or {}),
                            instance=instance,
                            partition_key=request.partition_key,
                            asset_selection=list(request.asset_selection),
                            tags={**request.tags, **tags},
                            run_id=run_id,
                            raise_on_error=False,
                        )
                except dg.DagsterError as err:  # the run could not start, e.g. invalid run config
                    report.failures.append(StepFailure("run", key, str(err).splitlines()[0]))
                finally:
                    if bar is not None:
                        bar.close()
                report.times.append(
                    RunTime(name, time.perf_counter() - clock, time.process_time() - cpu)
                )
                report.run_ids.append(run_id)
                report.chunks.update(follower.chunks)
                report.failures += run_failures(instance, run_id)
            if not report.success:
                break
    finally:  # (asked early for a roll-up that did not run: let go)
        summary.forget_early(int(key))
    report.seconds = time.perf_counter() - start
    return report
