"""The roll-up `synapses` (per version) of the `synapse_chunks` (version x chunk, `chunks.py`).

The roll-up streams all chunks of a version through DuckDB into one file sorted by (pre, post),
in bounded memory. Only chunks that passed their blocking checks are ever stored, and the
roll-up refuses chunk files of different selections or of another chunk code version. While it
sorts, the helper process reads the same chunks once (`summary.submit`) for their totals
(which the roll-up's check holds the written file against), synapses by cell class and the
version's `connectome` (`connectome.py`), which the step stores once the merged file passed its
check: one step, so a version stays three runs.
"""

import dagster as dg
import pandas as pd
from upath import UPath

from microns_assets import catalogue
from microns_assets.carry_down import CARRY_DOWN
from microns_assets.metadata import markdown_table, png_markdown
from microns_assets.partitions import by_version, mat_version
from microns_assets.processing.connectome import ChunkSummary
from microns_assets.processing.painter import painter
from microns_assets.provenance import provenance
from microns_assets.storage import read_provenance
from microns_assets.storage.rollup import Streamed, sorted_batches, spill_dir
from microns_assets.synapses import checks, connectome, summary
from microns_assets.synapses.chunks import stale_chunks, synapse_chunks

__all__ = ["synapse_chunks", "synapses"]


_CHUNKS, _UNITS = dg.AssetKey(catalogue.SYNAPSE_CHUNKS.key), dg.AssetKey(catalogue.UNITS.key)
_ROLLUP, _MATRIX = catalogue.SYNAPSES, catalogue.CONNECTOME
_CLASS_PICTURE = "synapses by cell class"


@dg.multi_asset(
    name=_ROLLUP.name,
    partitions_def=mat_version,
    outs={
        _ROLLUP.name: dg.AssetOut(
            group_name=_ROLLUP.group,
            kinds={"duckdb", "parquet"},
            automation_condition=CARRY_DOWN,
            description=_ROLLUP.description,
        ),
        _MATRIX.name: dg.AssetOut(
            group_name=_MATRIX.group,
            kinds={"scipy"},
            automation_condition=CARRY_DOWN,
            description=_MATRIX.description,
            is_required=False,  # not built when the roll-up fails its check
        ),
    },
    ins={
        "chunk_files": dg.AssetIn(key=_CHUNKS, partition_mapping=by_version),
        "unit_table": dg.AssetIn(key=_UNITS),
    },
    # lineage as the data flows: the connectome is made from the roll-up (and the units)
    internal_asset_deps={
        _ROLLUP.name: {_CHUNKS, _UNITS},
        _MATRIX.name: {dg.AssetKey(_ROLLUP.key), _UNITS},
    },
    check_specs=[*checks.ROLLUP_SPECS, connectome.CHECK],
)
def synapses(
    context: dg.AssetExecutionContext,
    chunk_files: dict[str, UPath],
    unit_table: pd.DataFrame,
):
    """All chunks of a version in one file, sorted by (pre, post); then its connectome.

    The roll-up streams in bounded memory; the connectome is built from the same chunks.
    """
    version = int(context.partition_key)
    paths = list(chunk_files.values())
    chunk_prov = [read_provenance(p) for p in paths]
    selections = {repr(p.get("selection")) for p in chunk_prov}
    if len(selections) != 1:
        raise dg.Failure(
            f"version {version}: the chunks were downloaded with different selections "
            f"({len(selections)} distinct); re-materialize all chunks with one selection.",
            allow_retries=False,
        )
    selection = chunk_prov[0]["selection"]
    labels = [UPath(p).stem for p in paths]
    stale = stale_chunks(version, unit_table, selection, dict(zip(labels, chunk_prov, strict=True)))
    if stale:
        whys = "; ".join(f"{label}: {why}" for label, why in sorted(stale.items()))
        raise dg.Failure(
            f"version {version}: {len(stale)} chunk file(s) were not made from this version's "
            f"current units table with one selection by this code ({whys}); materialize "
            "synapse_chunks of this version again: those chunks are redone, the others reused.",
            allow_retries=False,
        )
    # the helper reads the chunks once for their totals, synapses by class (and its picture)
    # and connectome, while this process sorts and writes them
    answer = summary.submit(version, paths, unit_table, selection["mode"])
    if summary.asked_early(answer):
        context.log.info(f"v{version}: the chunks' summary was asked for with their last chunk")
    order = ["pre_pt_root_id", "post_pt_root_id"]
    if selection["mode"] == "individual":
        order.append("id")
    prov = provenance(
        datastack=chunk_prov[0].get("datastack"),
        version=version,
        synapse_table=chunk_prov[0].get("synapse_table"),
        selection=selection,
        chunks=len(paths),
        sorted_by=order,
    )
    context.log.info(f"v{version}: rolling up {len(paths)} chunks, sorted by {', '.join(order)}")
    with spill_dir(paths) as spill:  # the IO manager writes the stream before we resume
        # on one thread while the helper reads the same chunks: the helper is the longer path
        # (at `real` 4.4 s instead of 5.2 s for the step, at 30000 ~0.1 s less)
        threads = 1 if painter().pid() is not None and not answer.done() else None
        reader = sorted_batches(paths, order, temp_dir=spill, threads=threads)
        tally = checks.tallied_columns(selection["mode"])
        streamed = Streamed(
            reader,
            prov,
            tally=tally,
            sorted_by=tuple(order),
            later=lambda: _summary_metadata(summary.summary_of(answer)),
        )  # fmt: skip  (the summary is attached once the file is written: made meanwhile)
        yield dg.Output(
            streamed,
            output_name=_ROLLUP.name,
            metadata={"chunks": len(paths), "mode": selection["mode"]},
        )
    built = summary.summary_of(answer)
    chunk_totals = built.totals
    results = list(checks.rollup_results(streamed.written, chunk_totals, selection["mode"]))
    yield from results
    if not all(r.passed for r in results):
        return  # a roll-up that failed its blocking check is not carried into a connectome
    written = streamed.written
    matrix, metadata, check = connectome.finish(
        built.connectome,
        written["rows"] if selection["mode"] == "individual" else written["n_synapses"],
        {**prov, "built_from": _CHUNKS.to_user_string(), "weight": "n_synapses"},
    )
    yield dg.Output(matrix, output_name=_MATRIX.name, metadata=metadata)
    yield check


def _summary_metadata(chunks: ChunkSummary) -> dict:
    """The roll-up's metadata from the chunks' summary: totals, synapses by class, heatmap."""
    metadata = {
        **{f"total_{k}": v for k, v in chunks.totals.items()},
        "synapses_by_class": markdown_table(chunks.by_class, index=True),
    }
    if chunks.class_png is not None:
        metadata["connectivity"] = png_markdown(chunks.class_png, _CLASS_PICTURE)
    return metadata
