"""What `materialize` must (re)run for a version, read from the Dagster instance's event log.

An asset partition is *current* when its latest materialization exists, the step that wrote it
succeeded (a blocking check that failed fails the step), its file is still there, it is newer
than the latest materialization of every upstream partition it reads, and its run used the
same op config as the one requested. Anything else is redone; `force` redoes
everything. The asset layout mirrors `definitions.py` (a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from upath import UPath

from microns_assets.config import ROLES
from microns_assets.partitions import CHUNK_DIM, VERSION_DIM
from microns_assets.processing.chunks import CHUNK_KEYS

RAW_ASSETS = tuple(f"cave_raw/{role}" for role in ROLES)
UNITS_ASSETS = ("units", "layer_segments")
CHUNKS_ASSET = "synapse_chunks"
ROLLUP_ASSET = "synapses"

#: Op (step) whose config decides each asset; assets without one take no config.
CONFIG_OP = {
    "units": "units_and_layers",
    "layer_segments": "units_and_layers",
    CHUNKS_ASSET: "synapse_chunks",
}


@dataclass(frozen=True)
class Latest:
    """The latest materialization of one asset partition."""

    storage_id: int
    run_id: str
    step_key: str | None
    rows: int
    path: str


def chunk_partition(version: str, chunk: str) -> str:
    """The partition key string of one chunk of one version (as the UI shows it)."""
    return str(dg.MultiPartitionKey({VERSION_DIM: version, CHUNK_DIM: chunk}))


def latest(instance: dg.DagsterInstance, asset: str, partitions: list[str]) -> dict[str, Latest]:
    """The latest materialization of each of `partitions` of `asset` (absent if never)."""
    key = dg.AssetKey.from_user_string(asset)
    found: dict[str, Latest] = {}
    cursor = None
    while True:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=partitions),
            limit=1000,
            cursor=cursor,
        )
        for record in result.records:
            partition = record.partition_key
            if partition in found:
                continue
            meta = record.asset_materialization.metadata
            found[partition] = Latest(
                storage_id=record.storage_id,
                run_id=record.run_id,
                step_key=record.event_log_entry.step_key,
                rows=int(meta["dagster/row_count"].value) if "dagster/row_count" in meta else 0,
                path=str(meta["path"].value) if "path" in meta else "",
            )
        if not result.has_more or len(found) == len(partitions):
            return found
        cursor = result.cursor


def op_config(run_config: dict | None, op: str) -> dict:
    """The config of `op` in a run config (empty if none given)."""
    return ((run_config or {}).get("ops", {}).get(op) or {}).get("config") or {}


class Planner:
    """Decides, stage by stage, which asset partitions of one version are not current."""

    def __init__(
        self,
        instance: dg.DagsterInstance,
        version: str,
        run_config: dict | None = None,
        force: bool = False,
    ) -> None:
        self.instance = instance
        self.version = version
        self.run_config = run_config or {}
        self.force = force

    def _config_matches(self, asset: str, record: Latest) -> bool:
        op = CONFIG_OP.get(asset)
        if op is None:
            return True
        run = self.instance.get_run_by_id(record.run_id)
        used = op_config(run.run_config if run else None, op)
        return used == op_config(self.run_config, op)

    def _step_succeeded(self, record: Latest) -> bool:
        if record.step_key is None:  # reported from outside a run: nothing failed
            return True
        stats = self.instance.get_run_step_stats(record.run_id, step_keys=[record.step_key])
        return bool(stats) and stats[0].status.value == "SUCCESS"

    def _current(self, asset: str, record: Latest | None, upstream: list[Latest | None]) -> bool:
        if self.force or record is None or not record.path or not UPath(record.path).exists():
            return False
        if any(up is None or up.storage_id > record.storage_id for up in upstream):
            return False
        return self._step_succeeded(record) and self._config_matches(asset, record)

    def _version_latest(self, assets: tuple[str, ...]) -> dict[str, Latest | None]:
        return {a: latest(self.instance, a, [self.version]).get(self.version) for a in assets}

    def _chunks_latest(self) -> dict[str, Latest]:
        """The latest materialization of each chunk of the version, by chunk key."""
        keys = {chunk_partition(self.version, c): c for c in CHUNK_KEYS}
        return {
            keys[pk]: rec for pk, rec in latest(self.instance, CHUNKS_ASSET, list(keys)).items()
        }

    def stale_units_stage(self) -> list[str]:
        """Raw roles and units/layer segments to run (units whenever any raw role reruns)."""
        raw = self._version_latest(RAW_ASSETS)
        todo = [a for a, rec in raw.items() if not self._current(a, rec, [])]
        units = self._version_latest(UNITS_ASSETS)
        ups = list(raw.values())
        if todo or not all(self._current(a, rec, ups) for a, rec in units.items()):
            todo += list(UNITS_ASSETS)
        return todo

    def stale_chunks(self) -> list[str]:
        """Chunk keys ("00".."31") of the version to (re)download."""
        units = self._version_latest(("units",))["units"]
        found = self._chunks_latest()
        return [c for c in CHUNK_KEYS if not self._current(CHUNKS_ASSET, found.get(c), [units])]

    def rollup_stale(self) -> bool:
        """Whether the roll-up must be (re)built from the chunks."""
        units = self._version_latest(("units",))["units"]
        chunks = self._chunks_latest()
        upstream = [units, *(chunks.get(c) for c in CHUNK_KEYS)]
        rollup = self._version_latest((ROLLUP_ASSET,))[ROLLUP_ASSET]
        return not self._current(ROLLUP_ASSET, rollup, upstream)

    def summary(self) -> dict[str, tuple[int, str, int]]:
        """Per asset: (rows, path, partitions materialized) as the instance records them now."""
        out: dict[str, tuple[int, str, int]] = {}
        for asset, rec in self._version_latest((*RAW_ASSETS, *UNITS_ASSETS)).items():
            if rec is not None:
                out[asset] = (rec.rows, rec.path, 1)
        chunks = self._chunks_latest()
        if chunks:
            folder = str(UPath(next(iter(chunks.values())).path).parent)
            out[CHUNKS_ASSET] = (sum(r.rows for r in chunks.values()), folder, len(chunks))
        rollup = self._version_latest((ROLLUP_ASSET,))[ROLLUP_ASSET]
        if rollup is not None:
            out[ROLLUP_ASSET] = (rollup.rows, rollup.path, 1)
        return out
