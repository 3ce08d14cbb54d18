"""`materialize --submit`: the version as one asset backfill for the instance's daemon.

The backfill is the one the web UI's "Materialize all" launches for the version (every asset,
the version's partition of the roots, everything downstream of it); the daemon makes its runs
(`stages.py`) and executes them with the instance's run launcher. This command only submits it
and follows it: the backfill's runs as they appear, their chunk progress and failures.

When the version's last backfill submitted by this command failed (a step failed, a worker
died, it was canceled) and the run config is the same, the new one is its re-execution from
failure, as the web UI's "Re-execute -> From failure" makes it: only the asset partitions it
did not materialize, tagged with their parent and root backfill. (A backfill launched in the
web UI is re-executed there.) When that backfill is still running, the command follows it
instead of submitting another.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import dagster as dg
from dagster._core.execution.backfill import BulkActionsFilter, BulkActionStatus, PartitionBackfill
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_START_TAG,
    BACKFILL_ID_TAG,
    PARENT_BACKFILL_ID_TAG,
    ROOT_BACKFILL_ID_TAG,
)
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
_RETRYABLE = {BulkActionStatus.COMPLETED_FAILED, BulkActionStatus.FAILED, BulkActionStatus.CANCELED}
#: Tags a submitted backfill with its version, to find the last one of a version.
VERSION_TAG = "microns_assets/version"


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
    last = instance.get_backfills(filters=BulkActionsFilter(tags={VERSION_TAG: key}), limit=1)
    if last and last[0].status not in _DONE:  # e.g. the command was interrupted: follow it
        backfill_id = last[0].backfill_id
        print(f"v{key}: backfill {backfill_id} of this version is still running; following it "
              "(cancel it in the web UI to start another)", file=out, flush=True)  # fmt: skip
    else:
        backfill = _backfill(instance, defs, key, run_config or None, last[0] if last else None)
        instance.add_backfill(backfill)
        backfill_id = backfill.backfill_id
        parent = backfill.tags.get(PARENT_BACKFILL_ID_TAG)
        if parent:
            print(f"v{key}: the last backfill ({parent}) failed: re-executing it from failure "
                  "(only what it did not materialize)", file=out, flush=True)  # fmt: skip
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
                    if ASSET_PARTITION_RANGE_START_TAG in run.tags:  # one of the chunk runs
                        bar.total = (bar.total or 0) + chunk_count(run.tags, instance)
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


def _backfill(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    key: str,
    run_config: dict | None,
    last: PartitionBackfill | None,
) -> PartitionBackfill:
    """A new backfill of the version: everything, or what its failed `last` one did not do."""
    graph = defs.resolve_asset_graph()
    title = f"microns-assets materialize --version {key}"
    tags = {DRIVER_TAG: "materialize --submit", VERSION_TAG: key}
    if last and last.status in _RETRYABLE and (last.run_config or None) == run_config:
        data = last.get_asset_backfill_data(graph)
        missing = data.target_subset - data.materialized_subset
        if missing.num_partitions_and_non_partitioned_assets:
            parent = last
            return PartitionBackfill.from_asset_graph_subset(
                backfill_id=make_new_backfill_id(),
                asset_graph_subset=missing,
                dynamic_partitions_store=instance,
                tags={
                    **tags,
                    PARENT_BACKFILL_ID_TAG: parent.backfill_id,
                    ROOT_BACKFILL_ID_TAG: parent.tags.get(ROOT_BACKFILL_ID_TAG, parent.backfill_id),
                },
                backfill_timestamp=time.time(),
                title=title,
                description=None,
                run_config=run_config,
            )
    return PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(),
        asset_graph=graph,
        partition_names=[key],
        asset_selection=all_asset_keys(graph),
        backfill_timestamp=time.time(),
        tags=tags,
        dynamic_partitions_store=instance,
        all_partitions=False,
        title=title,
        description=None,
        run_config=run_config,
    )


def _assets(run: dg.DagsterRun) -> list[str]:
    keys = sorted(k.to_user_string() for k in run.asset_selection or [])
    return keys if len(keys) <= 3 else [*keys[:2], f"... ({len(keys)} assets)"]
