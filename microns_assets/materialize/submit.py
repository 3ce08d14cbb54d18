"""`materialize --submit`: the version as one asset backfill for the instance's daemon.

The backfill is the one the web UI's "Materialize all" launches for the version (every asset,
the version's partition of the roots, everything downstream of it); the daemon makes its runs
(`stages.py`) and executes them with the instance's run launcher. This command only submits it
and follows it: the backfill's runs as they appear, their chunk progress and failures.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG, BACKFILL_ID_TAG
from dagster._core.utils import make_new_backfill_id
from tqdm import tqdm

from microns_assets.materialize.dead_workers import DRIVER_TAG
from microns_assets.materialize.driver import Report, chunk_count
from microns_assets.materialize.follow import RunFollower, StepFailure, run_failures
from microns_assets.materialize.pools import ensure_pools
from microns_assets.materialize.stages import add_version, all_asset_keys

#: How recent the backfill daemon's heartbeat must be for a submission to be picked up.
HEARTBEAT_S = 120.0
_DONE = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


class NoDaemonError(RuntimeError):
    """No daemon processes backfills on this instance."""


def _check_daemon(instance: dg.DagsterInstance) -> None:
    beat = instance.get_daemon_heartbeats().get("BACKFILL")
    if beat is None or time.time() - beat.timestamp > HEARTBEAT_S:
        raise NoDaemonError(
            "no dagster-daemon is processing backfills on this instance (no heartbeat in the "
            f"last {HEARTBEAT_S:.0f} s). Start one on the same DAGSTER_HOME, e.g. "
            "`microns-assets dev` (web UI and daemon) or `dagster-daemon run -m "
            "microns_assets.definitions`, or run without --submit to execute in this process."
        )


def submit_version(
    version: int,
    *,
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    run_config: dict | None = None,
    out: TextIO = sys.stderr,
    poll_s: float = 1.0,
) -> Report:
    """Submit the version's backfill and follow it until it ends; see the module docstring."""
    _check_daemon(instance)
    start = time.perf_counter()
    key = add_version(instance, version)
    ensure_pools(instance)
    backfill_id = make_new_backfill_id()
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=defs.resolve_asset_graph(),
            partition_names=[key],
            asset_selection=all_asset_keys(),
            backfill_timestamp=time.time(),
            tags={DRIVER_TAG: "materialize --submit"},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=f"microns-assets materialize --version {key}",
            description=None,
            run_config=run_config or None,
        )
    )
    print(f"v{key}: submitted backfill {backfill_id}; the daemon runs it", file=out, flush=True)
    report = Report()
    with tqdm(total=None, desc=f"v{key} synapse chunks", unit="chunk", file=out) as bar:
        follower = RunFollower(instance, bar)
        while True:
            status = instance.get_backfill(backfill_id).status
            runs = instance.get_runs(dg.RunsFilter(tags={BACKFILL_ID_TAG: backfill_id}))
            for run in reversed(runs):  # oldest first
                if run.run_id not in report.run_ids:
                    report.run_ids.append(run.run_id)
                    bar.write(f"  run {run.run_id[:8]}: {', '.join(_assets(run))}")
                    if ASSET_PARTITION_RANGE_START_TAG in run.tags:
                        bar.total = chunk_count(run.tags, instance)
                        bar.refresh()
                follower.poll(run.run_id)
            if status in _DONE and all(r.is_finished for r in runs):
                break
            time.sleep(poll_s)
    report.chunks = dict(follower.chunks)
    for run_id in report.run_ids:
        report.failures += run_failures(instance, run_id)
    if status != BulkActionStatus.COMPLETED_SUCCESS and not report.failures:
        report.failures.append(StepFailure("backfill", key, f"backfill ended {status.value}"))
    report.seconds = time.perf_counter() - start
    return report


def _assets(run: dg.DagsterRun) -> list[str]:
    keys = sorted(k.to_user_string() for k in run.asset_selection or [])
    return keys if len(keys) <= 3 else [*keys[:2], f"... ({len(keys)} assets)"]
