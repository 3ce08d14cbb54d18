"""The roll-up `synapses` (per version) of the `synapse_chunks` (version x chunk, `chunks.py`).

The roll-up streams all chunks of a version through DuckDB into one file sorted by (pre, post),
in bounded memory. Only chunks that passed their blocking checks are ever stored, and the
roll-up refuses chunk files of different selections or of another chunk code version. The same
step builds the version's `connectome` (`connectome.py`) from the same chunks, in the helper
process while it sorts, and stores it once the merged file passed the roll-up check: one step,
so a version stays three runs.
"""

import dagster as dg
import pandas as pd
from upath import UPath

from microns_assets import catalogue
from microns_assets.carry_down import CARRY_DOWN
from microns_assets.metadata import png_markdown
from microns_assets.partitions import by_version, mat_version
from microns_assets.processing.painter import painter
from microns_assets.provenance import provenance
from microns_assets.storage import read_provenance
from microns_assets.storage.rollup import Streamed, sorted_batches, spill_dir, totals
from microns_assets.synapses import checks, connectome
from microns_assets.synapses.chunks import CHUNK_CODE_VERSION, synapse_chunks

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
    stale = sorted(
        chunk
        for chunk, p in zip(chunk_files, chunk_prov, strict=True)
        if p.get("chunk_code_version") != CHUNK_CODE_VERSION
    )
    if stale:
        raise dg.Failure(
            f"version {version}: chunk(s) {stale} were written by an older version of this "
            "code; materialize synapse_chunks of this version again (they are redone).",
            allow_retries=False,
        )
    selection = chunk_prov[0]["selection"]
    # the helper builds the connectome from the chunks, then draws the class picture, while
    # this process sums, sorts and writes them
    matrix_of_chunks = connectome.submit(paths, unit_table, selection["mode"])
    order = ["pre_pt_root_id", "post_pt_root_id"]
    if selection["mode"] == "individual":
        order.append("id")
    sums = checks.totals_expressions(selection["mode"])
    chunk_totals = totals(paths, sums)
    matrix = checks.class_matrix(paths, unit_table, selection["mode"])
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
    picture = painter().submit("connectivity_png", matrix)  # (after the connectome)
    with spill_dir(paths) as spill:  # the IO manager writes the stream before we resume
        reader = sorted_batches(paths, order, temp_dir=spill)
        tally = checks.tallied_columns(selection["mode"])
        streamed = Streamed(
            reader,
            prov,
            tally=tally,
            sorted_by=tuple(order),
            later=lambda: {"connectivity": png_markdown(picture.result(), _CLASS_PICTURE)},
        )  # fmt: skip  (the picture is attached once the file is written: drawn meanwhile)
        yield dg.Output(
            streamed,
            output_name=_ROLLUP.name,
            metadata={
                **{f"total_{k}": v for k, v in chunk_totals.items()},
                "chunks": len(paths),
                "mode": selection["mode"],
                "synapses_by_class": dg.MetadataValue.md(matrix.to_markdown()),
            },
        )
    results = list(checks.rollup_results(streamed.written, chunk_totals, selection["mode"]))
    yield from results
    if not all(r.passed for r in results):
        return  # a roll-up that failed its blocking check is not carried into a connectome
    written = streamed.written
    built, metadata, check = connectome.finish(
        matrix_of_chunks.result(),
        written["rows"] if selection["mode"] == "individual" else written["n_synapses"],
        {**prov, "built_from": _CHUNKS.to_user_string(), "weight": "n_synapses"},
    )
    yield dg.Output(built, output_name=_MATRIX.name, metadata=metadata)
    yield check
