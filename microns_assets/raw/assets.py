"""One asset per role: the role's CAVE table for a materialization version, complete and typed.

The CAVE table behind a role comes from `versions.yaml`; rows come through `CaveResource` with
`fetch_verified`: a result the server capped is split and re-queried, and the rows must equal
the server's own count of the table (less the orphan annotations of a reference table, whose
target no longer exists and which the server's join drops), or nothing is stored.
"""

import dagster as dg
import pandas as pd

from microns_assets.cave import ServerCount, fetch_verified
from microns_assets.config import ROLES, VersionConfig, load_versions_config
from microns_assets.emulator import DATASTACK as SYNTHETIC_DATASTACK
from microns_assets.partitions import mat_version
from microns_assets.provenance import provenance
from microns_assets.raw import checks
from microns_assets.resources.cave import CaveResource, cave_errors_as_failures
from microns_assets.roles import TableContentError, check_columns, empty_frame

GROUP = "cave_raw"
KEY_PREFIX = "cave_raw"

DESCRIPTIONS = {
    "nucleus": "Every detected nucleus: id, volume, position (voxels), root id.",
    "cell_types": "Cell type and classification system per nucleus (reference table, joined).",
    "cell_type_corrections": "Manual corrections of cell types (from version 1718).",
    "proofreading": "Proofreading status and strategy (axon, dendrite) per root id.",
    "brain_areas": "Visual area (V1, AL, RL, LM) per nucleus.",
    "coregistration": "Functional-to-EM coregistration: session, scan, unit per nucleus.",
    "functional_properties": "Functional tuning per coregistered unit (v3 BCM or digital twin).",
}


def _fetch(
    context: dg.AssetExecutionContext, cave: CaveResource, role: str, cfg: VersionConfig
) -> tuple[pd.DataFrame, str | None, ServerCount | None]:
    """The role's table, its CAVE table name (None: absent), and the server's count of it."""
    version = cfg.version
    conn = cave.connection
    conn.check_version(version)
    stamp = conn.version_metadata(version)["time_stamp"].isoformat()
    table = cfg.table_for(role)
    note = None
    if table is not None and cfg.inherited_from is not None and table not in conn.tables(version):
        note = f"{table} is not in v{version} (table map inherited from v{cfg.inherited_from})"
        table = None
    facts = {
        "datastack": conn.settings.datastack,
        "server": cave.effective_server,
        "server_setting": cave.server_address,
        "synthetic": conn.settings.datastack == SYNTHETIC_DATASTACK,
        "version": version,
        "version_timestamp": stamp,
        "role": role,
        "cave_table": table,
    }
    if table is None:
        frame = empty_frame(role)
        context.log.info(f"role {role!r} is absent from version {version}")
        frame.attrs["provenance"] = provenance(**facts, present=False, note=note)
        context.add_output_metadata(
            {"present": False, "cave_table": "(absent)", "note": note}, output_name="result"
        )
        return frame, None, None

    conn.check_table(version, table)
    queries = []
    result, count = fetch_verified(
        conn,
        version,
        table,
        attempts=conn.settings.call_attempts,
        on_query=lambda r: (
            queries.append(r)
            or context.log.debug(f"{table}: {len(r.frame)} rows, capped={r.truncated}")
        ),
    )
    frame = result.frame
    try:
        check_columns(frame, role, table)
    except TableContentError as err:
        raise dg.Failure(str(err), allow_retries=False) from err
    query = {"split_key": "id", "queries": result.queries, "capped_and_split": result.capped}
    if count.orphan_ids:
        query["orphans_dropped_by_join"] = len(count.orphan_ids)
        context.log.warning(
            f"{table} v{version}: {len(count.orphan_ids)} of {count.table_rows} annotations "
            "have no target (their target_id is missing from the target table, or null); the "
            f"server's join drops them, as caveclient does (annotation ids "
            f"{_sample(count.orphan_ids)})"
        )
    frame.attrs["provenance"] = provenance(**facts, present=True, query=query)
    context.log.info(
        f"{table} v{version}: {len(frame)} rows in {result.queries} queries "
        f"({result.capped} capped and split)"
    )
    context.add_output_metadata(
        {
            "present": True,
            "cave_table": table,
            "version_timestamp": stamp,
            "queries": result.queries,
            "capped_queries_split": result.capped,
            "query_seconds": round(sum(r.elapsed_s for r in queries), 3),
            "synthetic_data": facts["synthetic"],
            "server_count": count.table_rows,
            "orphans_dropped_by_join": len(count.orphan_ids),
            **({"orphan_annotation_ids": _sample(count.orphan_ids)} if count.orphan_ids else {}),
        },
        output_name="result",
    )
    return frame, table, count


def _sample(ids: tuple[int, ...], n: int = 20) -> str:
    more = f" and {len(ids) - n} more" if len(ids) > n else ""
    return ", ".join(map(str, ids[:n])) + more


def build_raw_asset(role: str) -> dg.AssetsDefinition:
    """The asset of one role, partitioned by materialization version."""

    @dg.asset(
        name=role,
        key_prefix=KEY_PREFIX,
        group_name=GROUP,
        partitions_def=mat_version,
        description=DESCRIPTIONS[role],
        kinds={"pandas", "parquet"},
        pool="cave",
        tags={"microns/role": role},
        check_specs=checks.check_specs(dg.AssetKey([KEY_PREFIX, role])),
    )
    def raw_table(context: dg.AssetExecutionContext, cave: CaveResource):
        cfg = load_versions_config().get(int(context.partition_key))
        with cave_errors_as_failures(context, cfg.retry):
            frame, table, count = _fetch(context, cave, role, cfg)
        yield dg.Output(frame)
        yield from checks.check_results(context.asset_key, frame, table, count)

    return raw_table


raw_assets = [build_raw_asset(role) for role in ROLES]
