"""`synapse_chunks` (version x chunk) and their roll-up `synapses` (per version).

A chunk holds the synapses onto the selected post cells whose root id hashes to it
(`processing.chunks`), downloaded by `cave.synapses.download_synapses`. The roll-up streams all
chunks of a version through DuckDB into one file sorted by (pre, post), in bounded memory.
"""

import dagster as dg
import pandas as pd
from upath import UPath

from microns_assets.automation.conditions import CARRY_DOWN
from microns_assets.cave.synapses import download_synapses
from microns_assets.config import load_versions_config
from microns_assets.metadata import png_markdown
from microns_assets.partitions import CHUNK_DIM, VERSION_DIM, by_version, mat_version, version_chunk
from microns_assets.processing.chunks import N_CHUNKS, chunk_of
from microns_assets.processing.plots import connectivity_png
from microns_assets.processing.selection import SelectionError, select_roots
from microns_assets.processing.synapses import aggregate, individual
from microns_assets.provenance import provenance
from microns_assets.resources.cave import CaveResource, cave_errors_as_failures
from microns_assets.storage import read_provenance
from microns_assets.storage.rollup import Streamed, sorted_batches, totals
from microns_assets.synapses import checks
from microns_assets.synapses.config import SynapseConfig

GROUP = "synapses"


@dg.asset(
    partitions_def=version_chunk,
    group_name=GROUP,
    kinds={"pandas", "parquet"},
    pool="cave",
    ins={"units": dg.AssetIn(partition_mapping=by_version)},
    check_specs=checks.CHUNK_SPECS,
    automation_condition=CARRY_DOWN,
)
def synapse_chunks(
    context: dg.AssetExecutionContext,
    config: SynapseConfig,
    cave: CaveResource,
    units: pd.DataFrame,
):
    """Synapses onto the selected post cells of one chunk, from the selected pre cells."""
    keys = context.partition_key.keys_by_dimension
    version, chunk = int(keys[VERSION_DIM]), int(keys[CHUNK_DIM])
    try:
        pre = select_roots(units, config.pre.to_side(), "pre selection")
        post_all = select_roots(units, config.post.to_side(), "post selection")
    except SelectionError as err:
        raise dg.Failure(f"version {version}: {err}", allow_retries=False) from err
    post = post_all[chunk_of(post_all) == chunk]
    retry = load_versions_config().get(version).retry
    with cave_errors_as_failures(context, retry):
        conn = cave.connection
        table = conn.datastack_info()["synapse_table"]

        def progress(stats) -> None:
            context.log.info(
                f"chunk {chunk:02d}: batch {stats.batches_done}/{stats.batches}, "
                f"{stats.rows} rows, {stats.queries} queries ({stats.capped} capped and split)"
            )

        rows, stats = download_synapses(
            conn,
            version,
            table,
            post,
            pre,
            individual=config.mode == "individual",
            send_pre=not config.pre.to_side().is_everything(),
            batch_size=config.batch_size,
            verify_counts=config.verify_counts,
            on_batch=progress,
        )
    shape = individual if config.mode == "individual" else aggregate
    out = shape(rows, remove_autapses=config.remove_autapses)
    out.attrs["provenance"] = provenance(
        datastack=conn.settings.datastack,
        version=version,
        synapse_table=table,
        chunk=f"{chunk:02d}",
        n_chunks=N_CHUNKS,
        chunk_hash="splitmix64(post_pt_root_id) mod n_chunks",
        selection=config.selection(),
        post_cells=int(post.size),
        pre_cells=int(pre.size),
        query={"queries": stats.queries, "capped_and_split": stats.capped},
    )
    synapse_count = int(out["n_synapses"].sum()) if "n_synapses" in out else len(out)
    yield dg.Output(
        out,
        metadata={
            "post_cells": int(post.size),
            "synapses": synapse_count,
            "size_sum": int(out["size"].sum()),
            "queries": stats.queries,
            "capped_queries_split": stats.capped,
            "query_seconds": round(stats.seconds, 3),
        },
    )
    yield from checks.chunk_results(
        out, pre, post, config.mode, server_rows=stats.server_rows, received_rows=stats.rows
    )


@dg.asset(
    partitions_def=mat_version,
    group_name=GROUP,
    kinds={"duckdb", "parquet"},
    ins={
        "synapse_chunks": dg.AssetIn(partition_mapping=by_version),
        "units": dg.AssetIn(),
    },
    check_specs=checks.ROLLUP_SPECS,
    automation_condition=CARRY_DOWN,
)
def synapses(
    context: dg.AssetExecutionContext,
    synapse_chunks: dict[str, UPath],
    units: pd.DataFrame,
):
    """All synapse chunks of a version in one file, sorted by (pre, post), in bounded memory."""
    version = int(context.partition_key)
    paths = list(synapse_chunks.values())
    chunk_prov = [read_provenance(p) for p in paths]
    selections = {repr(p.get("selection")) for p in chunk_prov}
    if len(selections) != 1:
        raise dg.Failure(
            f"version {version}: the chunks were downloaded with different selections "
            f"({len(selections)} distinct); re-materialize all chunks with one selection.",
            allow_retries=False,
        )
    selection = chunk_prov[0]["selection"]
    order = ["pre_pt_root_id", "post_pt_root_id"]
    if selection["mode"] == "individual":
        order.append("id")
    sums = checks.totals_expressions(selection["mode"])
    chunk_totals = totals(paths, sums)
    matrix = checks.class_matrix(paths, units, selection["mode"])
    reader = sorted_batches(paths, order, temp_dir=str(UPath(paths[0]).parent))
    prov = provenance(
        datastack=chunk_prov[0].get("datastack"),
        version=version,
        synapse_table=chunk_prov[0].get("synapse_table"),
        selection=selection,
        chunks=len(paths),
        sorted_by=order,
        totals=chunk_totals,
    )
    context.log.info(f"v{version}: rolling up {len(paths)} chunks, {chunk_totals}")
    streamed = Streamed(reader, prov, tally=checks.tallied_columns(selection["mode"]))
    yield dg.Output(
        streamed,
        metadata={
            **{f"total_{k}": v for k, v in chunk_totals.items()},
            "chunks": len(paths),
            "mode": selection["mode"],
            "synapses_by_class": dg.MetadataValue.md(matrix.to_markdown()),
            "connectivity": png_markdown(connectivity_png(matrix), "synapses by cell class"),
        },
    )
    yield from checks.rollup_results(streamed.written, chunk_totals, selection["mode"])
