"""Checks of synapse chunks and their roll-up, and the totals both are compared on.

The chunk checks are partitioned like the chunks (version x chunk): a run covers many chunks,
and each chunk gets its own evaluation of each check (`chunk_evaluation`), shown per partition
in the UI.
"""

import warnings
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData as TargetMaterialization,  # no public name
)

from microns_assets import catalogue
from microns_assets.partitions import version_chunk

CHUNKS = dg.AssetKey(catalogue.SYNAPSE_CHUNKS.key)
ROLLUP = dg.AssetKey(catalogue.SYNAPSES.key)

CHUNK_CHECKS = {
    "no_duplicates": "No pair twice (aggregate) and no synapse id twice (individual).",
    "within_selection": "Every pre cell is selected; every post cell is selected and in this "
    "chunk.",
    "matches_server_count": "Rows received equal the server's own count of rows matching the "
    "same queries (a warning that nothing was verified when the config's verify_counts is "
    "false).",
}
# Partitioned checks are a preview feature of Dagster 1.13; its warning would be printed by
# every process that loads us.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.PreviewWarning)
    CHUNK_SPECS = [
        dg.AssetCheckSpec(
            name, asset=CHUNKS, blocking=True, description=text, partitions_def=version_chunk
        )
        for name, text in CHUNK_CHECKS.items()
    ]
ROLLUP_SPECS = [
    dg.AssetCheckSpec(
        "totals_match_chunks",
        asset=ROLLUP,
        blocking=True,
        description="Rows, synapses and summed size written equal the sums over the chunk "
        "files, and no row was written twice (no row equals the one before it in the sorted file).",
    ),
]


def chunk_results(
    out: pd.DataFrame,
    pre: np.ndarray,
    post: np.ndarray,
    mode: str,
    *,
    server_rows: int | None = None,
    received_rows: int | None = None,
    static: bool = False,
) -> Iterator[dg.AssetCheckResult]:
    """Results of the chunk checks on the freshly built chunk.

    `server_rows` is the server's count of the rows the chunk's queries match, `received_rows`
    the rows that arrived (before local filtering); None means no count was asked for, or
    (`static`) the rows come from a static dump, which no server counts.
    """
    keys = ["id"] if mode == "individual" else ["pre_pt_root_id", "post_pt_root_id"]
    duplicated = duplicated_rows(out, keys)
    yield dg.AssetCheckResult(
        asset_key=CHUNKS,
        check_name="no_duplicates",
        passed=duplicated == 0,
        metadata={"duplicated_rows": duplicated, "key": ", ".join(keys)},
    )
    stray_pre = int((~out["pre_pt_root_id"].isin(pre)).sum())
    stray_post = int((~out["post_pt_root_id"].isin(post)).sum())
    yield dg.AssetCheckResult(
        asset_key=CHUNKS,
        check_name="within_selection",
        passed=stray_pre == 0 and stray_post == 0,
        metadata={"rows_with_unselected_pre": stray_pre, "rows_with_foreign_post": stray_post},
    )
    yield server_count_result(server_rows, received_rows, static)


def duplicated_rows(frame: pd.DataFrame, keys: list[str]) -> int:
    """Rows whose `keys` repeat an earlier row's (as `DataFrame.duplicated`).

    Rows sorted by `keys` (an aggregate chunk is) are compared with their neighbours, 70x
    faster than hashing; anything else, or keys with missing values, is hashed.
    """
    try:
        columns = [frame[k].to_numpy(dtype=np.int64) for k in keys]
    except (TypeError, ValueError):  # missing values, or not integers
        return int(frame.duplicated(subset=keys).sum())
    if len(frame) < 2:
        return 0
    same = np.ones(len(frame) - 1, dtype=bool)  # equal on every key so far
    after = np.zeros(len(frame) - 1, dtype=bool)  # greater on the first key that differs
    for column in columns:
        after |= same & (column[1:] > column[:-1])
        same &= column[1:] == column[:-1]
    if not np.all(after | same):
        return int(frame.duplicated(subset=keys).sum())
    return int(np.count_nonzero(same))


def chunk_evaluation(
    result: dg.AssetCheckResult, partition: str, target: dg.EventLogRecord | None = None
) -> dg.AssetCheckEvaluation:
    """A chunk check's result as the evaluation of one chunk partition.

    `target` is the materialization it judges, recorded with its run and storage id so that
    the UI shows the check against that materialization (None: the chunk was not stored).
    Dagster fills this in itself for a check result of a single-partition step; a step over
    many partitions must name each partition's materialization.
    """
    return dg.AssetCheckEvaluation(
        asset_key=CHUNKS,
        check_name=result.check_name,
        passed=result.passed,
        metadata=result.metadata,
        severity=result.severity,
        description=result.description,
        blocking=True,
        partition=partition,
        target_materialization_data=None
        if target is None
        else TargetMaterialization(
            run_id=target.run_id, storage_id=target.storage_id, timestamp=target.timestamp
        ),
    )


def failed_blocking(results: list[dg.AssetCheckResult]) -> list[str]:
    """Names of the checks among `results` that failed with ERROR severity (they block)."""
    return [
        r.check_name for r in results if not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
    ]


def server_count_result(
    server_rows: int | None, received_rows: int | None, static: bool = False
) -> dg.AssetCheckResult:
    """The `matches_server_count` check: every row the server counted arrived, and no more.

    Without a count (verify_counts off, or rows from a static dump) it is a warning, not a
    pass: nothing was verified. A blocking check must report on every run, so it cannot simply
    be left out.
    """
    received = int(received_rows or 0)
    if server_rows is None:
        why = (
            "the rows come from the version's static dump, which no server counts (the dump "
            "file was checked whole: its size, and its SHA-256 where the server gives one); "
            "verify_counts applies to CAVE's live API only."
            if static
            else "verify_counts is false, so the server counted nothing. Set verify_counts: "
            "true to check that no row was lost."
        )
        return dg.AssetCheckResult(
            asset_key=CHUNKS,
            check_name="matches_server_count",
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"not verified: {why}",
            metadata={"rows_received": received, "verified": False},
        )
    missing = server_rows - received
    if missing > 0:
        description = (
            f"{missing} of the {server_rows} rows the server counts never arrived: the server "
            "answered queries with rows missing and no error. Re-materialize this chunk; if rows "
            "are still missing, report it to the CAVE administrators."
        )
    elif missing < 0:
        description = f"{-missing} rows more than the server's count of {server_rows} arrived."
    else:
        description = f"all {server_rows} rows the server counts arrived"
    return dg.AssetCheckResult(
        asset_key=CHUNKS,
        check_name="matches_server_count",
        passed=missing == 0,
        description=description,
        metadata={
            "server_count": server_rows,
            "rows_received": received,
            "rows_missing": missing,
            "verified": True,
        },
    )


def tallied_columns(mode: str) -> tuple[str, ...]:
    """Columns whose sums the writer tallies while streaming the roll-up."""
    return ("size",) if mode == "individual" else ("size", "n_synapses")


def rollup_results(written: dict[str, int], chunks: dict[str, int], mode: str):
    """The roll-up check: what was written against the chunk files' sums; no row written twice.

    `written` is the tally of a `Streamed` sorted by its keys (`repeated_keys`).
    """
    synapses_written = written["rows"] if mode == "individual" else written["n_synapses"]
    problems = []
    if written["rows"] != chunks["rows"]:
        problems.append(f"rows {written['rows']} != {chunks['rows']}")
    if written["size"] != chunks["size"]:
        problems.append(f"size {written['size']} != {chunks['size']}")
    if synapses_written != chunks["synapses"]:
        problems.append(f"synapses {synapses_written} != {chunks['synapses']}")
    if written["repeated_keys"]:  # the file is sorted by its keys: repeats are neighbours
        problems.append(f"{written['repeated_keys']} duplicated rows across chunks")
    yield dg.AssetCheckResult(
        asset_key=ROLLUP,
        check_name="totals_match_chunks",
        passed=not problems,
        description="; ".join(problems) or "written totals equal the chunks' totals",
        metadata={
            **{f"written_{k}": v for k, v in written.items()},
            **{f"chunks_{k}": v for k, v in chunks.items()},
        },
    )
