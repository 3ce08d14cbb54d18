"""`synapse_chunks` (version x chunk): many chunk partitions in one step, over one connection.

A chunk holds the synapses onto the selected post cells whose root id hashes to it
(`processing.chunks`). A run may cover any range of chunk partitions (the backfill policy asks
for one run per range: a whole version's 32 chunks in one run). The step downloads the chunks
that need it concurrently (`cave.synapses.download_chunks`, bounded by the resource's
requests in flight), stores each one as soon as it is complete and checked, and reuses a chunk
whose file is complete and was written from the same inputs (`reuse_facts`) unless `force`.
A chunk that fails a blocking check is never stored; the step then fails, naming it. For a
version CAVE lists as expired, the chunks come from the version's static synapse dump instead
(downloaded once to the static folder, split into chunks in one streaming pass:
`static_dumps.synapses`), with the same selection, modes and checks.
"""

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pandas as pd

from microns_assets import catalogue
from microns_assets.carry_down import CARRY_DOWN
from microns_assets.cave.synapses import DownloadStats, download_chunks
from microns_assets.config import load_versions_config
from microns_assets.partitions import CHUNK_DIM, VERSION_DIM, by_version, version_chunk
from microns_assets.processing.chunks import N_CHUNKS, chunk_of
from microns_assets.processing.selection import SelectionError, Side, select_roots
from microns_assets.processing.synapses import aggregate, individual
from microns_assets.progress import chunk_line
from microns_assets.provenance import provenance
from microns_assets.resources import CaveResource, ParquetIOManager, cave_errors_as_failures
from microns_assets.static_dumps.synapses import split_synapses, synapse_files
from microns_assets.static_dumps.tables import read_header
from microns_assets.synapses import checks, summary
from microns_assets.synapses.config import SynapseConfig

UNITS = dg.AssetKey(catalogue.UNITS.key)
#: How old a list of current versions (the raw tables' step asked just before, when the runs of a
#: version follow one another in one process) may be to tell whether chunks come from the API.
CURRENT_VERSIONS_MAX_AGE_S = 60.0
#: Bump when the same inputs would give a chunk different rows: older files are then redone.
CHUNK_CODE_VERSION = "2"


def _fingerprint(roots: np.ndarray) -> str:
    """A short digest of a set of root ids (sorted, unique)."""
    return hashlib.sha256(np.unique(roots).astype("<i8").tobytes()).hexdigest()[:16]


def _cells(units: pd.DataFrame, pre: Side, post: Side) -> tuple[np.ndarray, np.ndarray]:
    """The pre and post cells the two sides select (`SelectionError` if a side is malformed)."""
    return select_roots(units, pre, "pre selection"), select_roots(units, post, "post selection")


@dataclass
class _Cells:
    """The cells of one version's selection, by chunk, and the facts of each chunk's inputs."""

    version: int
    pre: np.ndarray
    post: np.ndarray
    chunk: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.chunk = chunk_of(self.post)
        self.pre_sha = _fingerprint(self.pre)

    def post_of(self, chunk: int) -> np.ndarray:
        return self.post[self.chunk == chunk]

    def input_facts(self, chunk: int) -> dict:
        """What a chunk file's provenance says of the cells and code it was made from."""
        return {
            "chunk_code_version": CHUNK_CODE_VERSION,
            "version": self.version,
            "pre_cells_sha": self.pre_sha,
            "post_cells_sha": _fingerprint(self.post_of(chunk)),
        }


@dataclass
class _Version(_Cells):
    """What every chunk of one version shares: its cells, selection and inputs' fingerprints."""

    config: SynapseConfig

    def reuse_facts(self, chunk: int) -> dict:
        """What a chunk file's provenance must say to be reused for this chunk."""
        return {
            **self.input_facts(chunk),
            "selection": self.config.selection(),
            "verified": self.config.verify_counts,
        }


def stale_chunks(
    version: int, units: pd.DataFrame, selection: dict, stored: dict[str, dict]
) -> dict[str, str]:
    """Chunk files (label -> provenance) not made from `units` with `selection`: label -> why.

    What the roll-up asks before it merges: each file must cover the cells that `units` and
    the selection give its chunk now (`_Cells.input_facts`, as the chunk step's reuse compares
    them), for this version, by this code, verified like the rest. A file left from before the
    units changed (and not redone since) is named here.
    """
    try:
        sides = (Side.from_description(selection[side]) for side in ("pre", "post"))
        cells = _Cells(version, *_cells(units, *sides))
    except SelectionError as err:
        return {label: str(err) for label in stored}
    verified = {p.get("verified") for p in stored.values()}
    out = {}
    for label, prov in stored.items():
        expected = cells.input_facts(int(label))
        wrong = [k for k, v in expected.items() if prov.get(k) != v]
        if len(verified) > 1 and not prov.get("verified"):
            wrong.append("verified")
        if wrong:
            out[label] = f"another {', '.join(wrong)}"
    return out


def _select(version: int, units: pd.DataFrame, config: SynapseConfig) -> _Version:
    try:
        pre, post = _cells(units, config.pre.to_side(), config.post.to_side())
    except SelectionError as err:
        raise dg.Failure(f"version {version}: {err}", allow_retries=False) from err
    return _Version(version, pre, post, config)


@dataclass
class _Outcome:
    """One finished chunk: its check results, and its metadata when it was stored."""

    results: list[dg.AssetCheckResult]
    metadata: dict | None


class _Chunks:
    """The chunk partitions of one step and what became of each."""

    def __init__(self, context: dg.AssetExecutionContext, io: ParquetIOManager) -> None:
        self.context, self.io = context, io
        self.keys = [version_chunk.get_partition_key_from_str(k) for k in context.partition_keys]
        self.outcomes: dict[str, _Outcome] = {}

    def by_version(self) -> dict[str, list[dg.MultiPartitionKey]]:
        out: dict[str, list[dg.MultiPartitionKey]] = {}
        for key in self.keys:
            out.setdefault(key.keys_by_dimension[VERSION_DIM], []).append(key)
        return out

    def finish(self, key, status: str, frame: pd.DataFrame, sel: _Version, query: dict) -> bool:
        """Check one chunk's rows; store them if they pass (unless they are its file already).

        A reused file that fails a blocking check is not recorded (False): download it again.
        """
        chunk = int(key.keys_by_dimension[CHUNK_DIM])
        post = sel.post_of(chunk)
        results = list(
            checks.chunk_results(
                frame, sel.pre, post, sel.config.mode,
                server_rows=query.get("server_rows"), received_rows=query.get("rows_received"),
                static=query.get("source") == "static",
            )
        )  # fmt: skip
        blocked = checks.failed_blocking(results)
        metadata = None
        if blocked and status == "reused":
            self.context.log.warning(f"chunk {key}: its file fails {blocked}; downloading again")
            return False
        if blocked:
            status = "failed"
            detail = f"failed blocking check(s) {blocked}; not stored"
        else:
            if status == "downloaded":
                frame.attrs["provenance"] = provenance(
                    **sel.reuse_facts(chunk), datastack=self.io.datastack, rows=len(frame),
                    chunk=f"{chunk:02d}", n_chunks=N_CHUNKS,
                    chunk_hash="splitmix64(post_pt_root_id) mod n_chunks",
                    synapse_table=query["table"], post_cells=int(post.size),
                    pre_cells=int(sel.pre.size), query=query,
                )  # fmt: skip
                files = self.io.store(checks.CHUNKS, key, frame)
            else:
                files = self.io.describe(checks.CHUNKS, key, frame)
            synapses = int(frame["n_synapses"].sum()) if "n_synapses" in frame else len(frame)
            metadata = {
                **files,
                "reused": status == "reused",
                "post_cells": int(post.size),
                "synapses": synapses,
                "size_sum": int(frame["size"].sum()),
                "queries": query["queries"],
                "capped_queries_split": query["capped_and_split"],
                # (unknown for a file written before this was recorded, and for static dumps)
                **({"pre_cells_sent": query["pre_sent"]} if "pre_sent" in query else {}),
                "query_seconds": query["seconds"],
            }
            detail = (
                f"{len(frame):,} rows, {query['queries']} queries "
                f"({query['capped_and_split']} capped and split)"
            )
        self.outcomes[str(key)] = _Outcome(results, metadata)
        if metadata is not None:  # (Dagster checks the key against the run's range: now,
            # between downloads, not all at the end; dropped if the step fails)
            self.context.add_asset_metadata(metadata, partition_key=str(key))
        done = len(self.outcomes)
        self.context.log.info(chunk_line(str(key), status, detail, done, len(self.keys)))
        return True

    def all_stored(self, keys: list[dg.MultiPartitionKey]) -> bool:
        """Whether `keys` are every chunk of a version, each stored (or reused)."""
        outcomes = [self.outcomes.get(str(key)) for key in keys]
        return len(keys) == N_CHUNKS and all(o and o.metadata is not None for o in outcomes)

    def failed(self) -> list[str]:
        return sorted(k for k, o in self.outcomes.items() if o.metadata is None)


def _query_facts(table: str, stats: DownloadStats) -> dict:
    return {
        "table": table,
        "queries": stats.queries,
        "capped_and_split": stats.capped,
        "seconds": round(stats.seconds, 3),
        "server_rows": stats.server_rows,
        "rows_received": stats.rows,
        "recounted": stats.recounted,
        "pre_sent": stats.pre_sent,
    }


def _run_version(
    chunks: _Chunks,
    config: SynapseConfig,
    cave: CaveResource,
    keys: list[dg.MultiPartitionKey],
    sel: _Version,
) -> None:
    """Reuse or download every chunk of one version among `keys`."""
    todo: dict[str, np.ndarray] = {}
    redo: dict[str, list[str]] = {}  # why -> chunks (one log line, not one per chunk)
    by_label = {str(k): k for k in keys}
    for key in keys:
        chunk = int(key.keys_by_dimension[CHUNK_DIM])
        frame, why = (
            (None, "force: true")
            if config.force
            else chunks.io.reusable(checks.CHUNKS, key, sel.reuse_facts(chunk))
        )
        reused = frame is not None and chunks.finish(
            key, "reused", frame, sel, frame.attrs["provenance"]["query"]
        )
        if not reused:
            if frame is not None:
                why = "its file fails a blocking check"
            redo.setdefault(why, []).append(key.keys_by_dimension[CHUNK_DIM])
            todo[str(key)] = sel.post_of(chunk)
    for why, which in redo.items():
        chunks.context.log.info(f"v{sel.version} chunk(s) {', '.join(which)}: {why}")
    if not todo:
        return
    retry = load_versions_config().get(sel.version).retry
    with cave_errors_as_failures(chunks.context, retry):
        conn = cave.connection
        table = conn.datastack_info()["synapse_table"]
        shape = individual if config.mode == "individual" else aggregate
        if sel.version in conn.versions(expired=False, max_age_s=CURRENT_VERSIONS_MAX_AGE_S):
            downloads = (
                (label, rows, _query_facts(table, stats))
                for label, rows, stats in download_chunks(
                    conn, sel.version, table, todo, sel.pre,
                    individual=config.mode == "individual",
                    send_pre=not config.pre.to_side().is_everything(),
                    batch_size=config.batch_size, verify_counts=config.verify_counts,
                    workers=cave.max_in_flight,
                )
            )  # fmt: skip
        else:
            downloads = _static_chunks(chunks.context, cave, sel, table, todo, config)
        for label, rows, facts in downloads:
            out = shape(rows, remove_autapses=config.remove_autapses)
            chunks.finish(by_label[label], "downloaded", out, sel, facts)


def _static_chunks(
    context: dg.AssetExecutionContext,
    cave: CaveResource,
    sel: _Version,
    table: str,
    todo: dict[str, np.ndarray],
    config: SynapseConfig,
) -> Iterator[tuple[str, pd.DataFrame, dict]]:
    """The chunks of expired `sel.version` from its static synapse dump (see module docstring)."""
    header_name, data_name = synapse_files(table)
    context.log.info(f"v{sel.version} has expired: chunks from its static synapse dump")
    header = cave.static.fetch(sel.version, header_name)
    data = cave.static.fetch(sel.version, data_name)
    how = "found complete" if data.reused else f"downloaded ({data.resumed} resumes)"
    context.log.info(f"{data.url}: {data.bytes:,} bytes {how}")
    start = time.perf_counter()
    split = split_synapses(
        data.path, read_header(header.path), todo, sel.pre,
        individual=config.mode == "individual", work_dir=data.path.parent,
    )  # fmt: skip
    for label, rows, received in split:
        facts = {
            "table": table,
            "source": "static",
            "dump_url": data.url,
            "dump_bytes": data.bytes,
            "queries": 0,
            "capped_and_split": 0,
            "seconds": round(time.perf_counter() - start, 3),
            "server_rows": None,
            "rows_received": received,
            "recounted": 0,
        }
        yield label, rows, facts


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            checks.CHUNKS,
            group_name=catalogue.SYNAPSE_CHUNKS.group,
            kinds={"pandas", "parquet"},
            automation_condition=CARRY_DOWN,
            code_version=CHUNK_CODE_VERSION,
            deps=[dg.AssetDep(UNITS, partition_mapping=by_version)],
            description=catalogue.SYNAPSE_CHUNKS.description,
        )
    ],
    partitions_def=version_chunk,
    check_specs=checks.CHUNK_SPECS,
    can_subset=True,
    pool="cave",
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def synapse_chunks(
    context: dg.AssetExecutionContext,
    config: SynapseConfig,
    cave: CaveResource,
    io_manager: dg.ResourceParam[ParquetIOManager],
):
    """Download (or reuse) every chunk partition of the run, storing each as it completes."""
    chunks = _Chunks(context, io_manager)
    for version, keys in chunks.by_version().items():
        units = io_manager.read(UNITS, version)  # a dependency (lineage), read per version
        sel = _select(int(version), units, config)
        _run_version(chunks, config, cave, keys, sel)
        if chunks.all_stored(keys):  # the roll-up's helper work can start while events are kept
            files = [io_manager.path_for(checks.CHUNKS, key) for key in keys]
            summary.ask_early(int(version), files, units, config.mode)
    failed = chunks.failed()
    if failed:
        _log_checks(context, chunks, targets={})
        raise dg.Failure(
            f"chunk(s) {failed} failed a blocking check and were not stored (see their check "
            "results); the other chunks were stored and are reused when you run again.",
            allow_retries=False,
        )
    yield dg.MaterializeResult(asset_key=checks.CHUNKS)
    _log_checks(context, chunks, targets=_materializations(context, list(chunks.outcomes)))


def _log_checks(
    context: dg.AssetExecutionContext, chunks: _Chunks, targets: dict[str, dg.EventLogRecord]
) -> None:
    """Each selected check's evaluation of each chunk partition (against its materialization)."""
    selected = context.selected_asset_check_keys
    for label, outcome in chunks.outcomes.items():
        for result in outcome.results:
            if dg.AssetCheckKey(checks.CHUNKS, result.check_name) in selected:
                context.log_event(checks.chunk_evaluation(result, label, targets.get(label)))


def _materializations(
    context: dg.AssetExecutionContext, partitions: list[str]
) -> dict[str, dg.EventLogRecord]:
    """This run's materialization record of each chunk partition."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=checks.CHUNKS, asset_partitions=partitions),
        limit=len(partitions),
    ).records
    return {r.partition_key: r for r in records if r.run_id == context.run.run_id}
