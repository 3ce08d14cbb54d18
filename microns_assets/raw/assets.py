"""One asset per role: the role's CAVE table for a materialization version, complete and typed.

All roles are one multi-asset (`download_raw_tables`, subsettable): a run downloads the selected
roles of a version concurrently over one CAVE connection. The CAVE table behind a role comes
from `versions.yaml`; rows come through `CaveResource` with
`fetch_verified`: a result the server capped is split and re-queried, and the rows must equal
the server's own count of the table (less the orphan annotations of a reference table, whose
target no longer exists and which the server's join drops), or nothing is stored. A version
CAVE lists as expired is read from its static dumps instead (`fetch_static_table`): the same
frames, joined locally.
"""

from concurrent.futures import Future, ThreadPoolExecutor, as_completed

import dagster as dg

from microns_assets import catalogue
from microns_assets.cave.errors import UnknownTableError
from microns_assets.config import ROLES, VersionConfig, load_versions_config
from microns_assets.config.versions import ENV_VERSIONS_FILE
from microns_assets.partitions import mat_version
from microns_assets.processing.painter import painter
from microns_assets.provenance import provenance
from microns_assets.raw import checks
from microns_assets.raw.fetch import Fetched, fetch_static_table, fetch_table, source_facts
from microns_assets.resources.cave import CaveResource, cave_errors_as_failures
from microns_assets.roles import TableContentError, check_columns, empty_frame
from microns_assets.units.assets import units_and_layers


def _fetch(
    cave: CaveResource,
    role: str,
    cfg: VersionConfig,
    stamp: str,
    listed: Future[list[str]] | None,
) -> Fetched:
    """Download one role's table of a version, verified (runs on a worker thread).

    `listed`: the version's tables, being listed; None when the version has expired (its
    tables then come from its static dumps).
    """
    version = cfg.version
    static = listed is None
    tables = None if static else listed.result()
    table = cfg.table_for(role)
    inherited = table is not None and cfg.inherited_from is not None and not static
    if inherited and table not in tables:
        # a renamed table would otherwise leave the units table silently without it
        raise UnknownTableError(
            f"v{version} has no table {table!r} for role {role!r}: versions.yaml does not list "
            f"v{version}, so it inherits the table map of v{cfg.inherited_from}. Add v{version} "
            f"to the versions file ({ENV_VERSIONS_FILE}, default microns_assets/config/"
            f"versions.yaml) with its table for {role!r}, or `{role}: null` if it has none. "
            f"v{version}'s tables: {', '.join(sorted(tables))}."
        )
    facts = {**source_facts(cave, version, stamp), "role": role, "cave_table": table}
    if table is None:
        frame = empty_frame(role)
        frame.attrs["provenance"] = provenance(**facts, present=False)
        metadata = {"present": False, "cave_table": "(absent)"}
        return Fetched(frame, None, None, metadata, [("info", f"role {role!r} is absent")])
    validate = lambda f: check_columns(f, role, table)  # noqa: E731
    if static:
        target = cfg.table_for("nucleus")
        return fetch_static_table(cave, version, table, facts, target, validate=validate)
    return fetch_table(cave, version, table, facts, validate=validate, tables=tables)


def expired_version(
    context: dg.AssetExecutionContext,
    cave: CaveResource,
    cfg: VersionConfig,
    pool: ThreadPoolExecutor | None = None,
) -> bool:
    """Whether CAVE lists `cfg`'s version as expired (to be read from static dumps).

    Checks that the server knows the version at all; warns when `versions.yaml`'s `archived`
    disagrees with CAVE. With a `pool`, the current versions are asked for beside the check.
    """
    conn = cave.connection
    current = pool.submit(conn.versions, expired=False) if pool is not None else None
    conn.check_version(cfg.version, allow_expired=True)
    listed = current.result() if current is not None else conn.versions(expired=False)
    expired = cfg.version not in listed
    if expired != cfg.archived:
        context.log.warning(
            f"v{cfg.version}: CAVE lists it as {'expired' if expired else 'current'} but "
            f"versions.yaml says archived: {str(cfg.archived).lower()}; going by CAVE (correct "
            "versions.yaml)"
        )
    return expired


def role_key(role: str) -> dg.AssetKey:
    """The asset key of a role's raw table."""
    return dg.AssetKey(catalogue.ROLE[role].key)


@dg.multi_asset(
    outs={
        role: dg.AssetOut(
            key=role_key(role),
            group_name=catalogue.RAW_GROUP,
            description=catalogue.ROLE[role].description,
            kinds={"pandas", "parquet"},
            tags={"microns/role": role},
            is_required=False,
        )
        for role in ROLES
    },
    partitions_def=mat_version,
    check_specs=[spec for role in ROLES for spec in checks.check_specs(role_key(role))],
    can_subset=True,
    pool="cave",
)
def download_raw_tables(context: dg.AssetExecutionContext, cave: CaveResource):
    """Download the selected roles' tables of a version concurrently, over one connection."""
    cfg = load_versions_config().get(int(context.partition_key))
    roles = [r for r in ROLES if role_key(r) in context.selected_asset_keys]
    plan = context.get_step_execution_context().plan_data.execution_plan
    if units_and_layers.op.name in plan.step_keys_to_execute:  # in this process, after us:
        painter().warm()  # a helper imports matplotlib for its picture while we download
    with (
        cave_errors_as_failures(context, cfg.retry),
        ThreadPoolExecutor(cave.max_in_flight, thread_name_prefix="cave-raw") as pool,
    ):
        conn = cave.connection
        # the version's record, tables and the current versions are asked while it is checked:
        # one wait, not four
        metadata = pool.submit(conn.version_metadata, cfg.version)
        listed = pool.submit(conn.tables, cfg.version)
        static = expired_version(context, cave, cfg, pool)
        stamp = metadata.result()["time_stamp"].isoformat()
        if static:
            context.log.info(f"v{cfg.version} has expired: reading its static dumps")
        tables = None if static else listed
        futures = {pool.submit(_fetch, cave, role, cfg, stamp, tables): role for role in roles}
        for future in as_completed(futures):
            role = futures[future]
            try:
                got = future.result()
            except TableContentError as err:
                raise dg.Failure(str(err), allow_retries=False) from err
            for level, message in got.log:
                getattr(context.log, level)(message)
            yield dg.Output(got.frame, output_name=role, metadata=got.metadata)
            yield from checks.check_results(role_key(role), got.frame, got.table, got.count)


raw_assets = [download_raw_tables]
