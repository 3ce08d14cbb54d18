"""The runs a backfill of one version makes, stage by stage, computed by Dagster itself.

The web UI's "Materialize all" for a version is an asset backfill: its target is the version's
partition of every root asset plus all partitions downstream of it, and the backfill daemon
turns each stage of that target into runs with `build_run_requests_with_backfill_policies`
(runs grouped by partitions, one run per partition range for a `single_run` backfill policy).
`version_stages` asks the same two Dagster functions, so `materialize` makes exactly the runs a
backfill makes: raw tables + units + layer segments, all synapse chunks, the roll-up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import dagster as dg
from dagster._core.definitions.automation_tick_evaluation_context import (
    build_run_requests_with_backfill_policies,  # the backfill daemon's own grouping
)
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.execution.asset_backfill import AssetBackfillData

from microns_assets.catalogue import EXTRA_PREFIX, STAGE_NAMES, STAGES
from microns_assets.partitions import mat_version

__all__ = ["STAGES", "STAGE_NAMES", "add_version", "all_asset_keys", "stage_keys", "version_stages"]


def add_version(instance: dg.DagsterInstance, version: int) -> str:
    """Make `version` a `mat_version` partition (if it is not yet); its partition key."""
    key = str(int(version))
    if not instance.has_dynamic_partition(mat_version.name, key):
        instance.add_dynamic_partitions(mat_version.name, [key])
    return key


def stage_keys(graph: object | None = None) -> list[list[dg.AssetKey]]:
    """The asset keys of each stage; with the definitions' asset `graph`, its extra tables too."""
    stages = [[dg.AssetKey(key) for key in stage] for stage in STAGES]
    if graph is not None:
        stages[0] += sorted(
            (k for k in graph.get_all_asset_keys() if k.path[0] == EXTRA_PREFIX),
            key=lambda k: k.path,
        )
    return stages


def all_asset_keys(graph: object | None = None) -> list[dg.AssetKey]:
    """Every asset of the graph, as "Materialize all" selects them (see `stage_keys`)."""
    return [key for stage in stage_keys(graph) for key in stage]


def version_stages(
    defs: dg.Definitions, instance: dg.DagsterInstance, version: str
) -> list[Sequence[dg.RunRequest]]:
    """The runs of each stage of a backfill of `version` over every asset."""
    graph = defs.resolve_asset_graph()
    target = AssetBackfillData.from_asset_partitions(
        asset_graph=graph,
        partition_names=[version],
        asset_selection=all_asset_keys(graph),
        dynamic_partitions_store=instance,
        backfill_start_timestamp=time.time(),
        all_partitions=False,
    ).target_subset
    partitions = list(target.iterate_asset_partitions())
    stages = []
    # a multi-run policy (MICRONS_CHUNK_RUNS) loads the version partitions from the instance
    with partition_loading_context(dynamic_partitions_store=instance):
        for stage in stage_keys(graph):
            keys = set(stage)
            wanted = [p for p in partitions if p.asset_key in keys]
            stages.append(build_run_requests_with_backfill_policies(wanted, graph, instance))
    return stages
