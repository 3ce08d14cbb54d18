"""What the instance records for a version: rows, path and partitions of each asset."""

from __future__ import annotations

import dagster as dg
from upath import UPath

from microns_assets import catalogue
from microns_assets.materialize.stages import all_asset_keys
from microns_assets.partitions import CHUNK_DIM, VERSION_DIM
from microns_assets.processing.chunks import CHUNK_KEYS


def _partitions(asset: dg.AssetKey, version: str) -> list[str]:
    if asset.to_user_string() != catalogue.SYNAPSE_CHUNKS.name:
        return [version]
    return [str(dg.MultiPartitionKey({VERSION_DIM: version, CHUNK_DIM: c})) for c in CHUNK_KEYS]


def latest_metadata(
    instance: dg.DagsterInstance, asset: dg.AssetKey, partitions: list[str]
) -> dict[str, dict]:
    """The metadata of the latest materialization of each of `partitions` (absent if never)."""
    found: dict[str, dict] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=asset, asset_partitions=partitions),
            limit=1000,
            cursor=cursor,
        )
        for record in page.records:
            if record.partition_key not in found:
                meta = record.asset_materialization.metadata
                found[record.partition_key] = {k: v.value for k, v in meta.items()}
        if not page.has_more or len(found) == len(partitions):
            return found
        cursor = page.cursor


def _not_stored(instance: dg.DagsterInstance, asset: dg.AssetKey, version: str) -> str | None:
    """Why `asset` has nothing stored for `version`, if its step said so, else None.

    An extra table the version lacks: its step recorded an observation with `present: false`.
    """
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=asset, asset_partitions=[version]), limit=1
    ).records
    if not records:
        return None
    meta = records[0].asset_observation.metadata
    if "present" not in meta or meta["present"].value is not False:
        return None
    return str(meta["note"].value) if "note" in meta else "not present in this version"


def _size(found: dict[str, dict]) -> str:
    """`N rows` (summed over partitions), or a matrix's `units` and `connected_pairs`."""
    first = next(iter(found.values()))
    if "dagster/row_count" not in first and "connected_pairs" in first:
        units, pairs = int(first.get("units", 0)), int(first["connected_pairs"])
        return f"{units:,} x {units:,}, {pairs:,} pairs"
    return f"{sum(int(m.get('dagster/row_count', 0)) for m in found.values()):,} rows"


def version_summary(
    instance: dg.DagsterInstance, version: str, graph: object | None = None
) -> dict[str, tuple[str, str, int]]:
    """Per asset: (size, path, partitions materialized), as the instance records them now.

    The size is `N rows`, or for the connectome its shape and connected pairs. With the
    definitions' asset `graph`, its extra tables are listed too; one that the version lacks
    (nothing stored, as its step recorded) shows `not stored` and why, in place of a path.
    """
    out: dict[str, tuple[str, str, int]] = {}
    for asset in all_asset_keys(graph):
        found = latest_metadata(instance, asset, _partitions(asset, version))
        if not found:
            if (note := _not_stored(instance, asset, version)) is not None:
                out[asset.to_user_string()] = ("not stored", note, 0)
            continue
        path = str(next(iter(found.values())).get("path", ""))
        if len(found) > 1:
            path = str(UPath(path).parent)
        out[asset.to_user_string()] = (_size(found), path, len(found))
    return out
