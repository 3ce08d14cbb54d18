"""Asset checks of the raw role tables: annotation ids unique, every row the server holds stored.

`complete` records the comparison of the stored rows with the server's own count of the table
(an uncapped `count(*)` on the same query endpoint), less the orphan annotations of a reference
table that the server's join drops (their target no longer exists). The download already
refuses to store a table whose rows differ from that (`cave.fetch_verified`), so this check
shows in the UI what was verified, and guards that rule. A role the version lacks passes both
checks with a description saying so.
"""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from microns_assets.cave import ServerCount

CHECKS = {
    "unique_ids": "Annotation ids (`id`) are present and unique.",
    "complete": "The stored rows equal the server's count of the table's rows (less the "
    "annotations whose reference target no longer exists, which the join drops).",
}


def check_specs(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The blocking checks of one raw role asset."""
    return [
        dg.AssetCheckSpec(name, asset=key, blocking=True, description=description)
        for name, description in CHECKS.items()
    ]


def check_results(
    key: dg.AssetKey, frame: pd.DataFrame, table: str | None, count: ServerCount | None
) -> Iterator[dg.AssetCheckResult]:
    """Results of both checks for a freshly fetched table (`table` None: role absent)."""
    if table is None:
        for name in CHECKS:
            yield dg.AssetCheckResult(
                asset_key=key, check_name=name, passed=True, description="role absent: no rows"
            )
        return
    ids = frame["id"]
    duplicated = int(ids.duplicated().sum())
    missing = int(ids.isna().sum())
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name="unique_ids",
        passed=duplicated == 0 and missing == 0,
        description=f"{duplicated} duplicated and {missing} missing ids in {len(frame)} rows",
        metadata={"duplicated_ids": duplicated, "missing_ids": missing},
    )
    passed = count is not None and count.expected == len(frame)
    orphans = len(count.orphan_ids) if count is not None else 0
    server_rows = count.table_rows if count is not None else None
    dropped = f" less {orphans} orphan annotations the join drops" if orphans else ""
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name="complete",
        passed=passed,
        description=(
            f"{len(frame)} rows stored, the server counts {server_rows} in {table}{dropped}"
            + ("" if passed else ": materialize again; if it persists, report it to CAVE's admins")
        ),
        metadata={
            "rows_stored": len(frame),
            "server_count": server_rows,
            "orphans_dropped_by_join": orphans,
            "cave_table": table,
        },
    )
