"""Further CAVE tables of a version as assets `cave_extra/<table>` (group `cave_extra`).

Which tables: `extra_tables.py` (`MICRONS_EXTRA_TABLES`, or `extra_tables:` in versions.yaml).
They come through the same verified, cap-safe path as the role tables (`raw/fetch.py`: split
capped answers, rows held against the server's count, orphans of a reference table reported)
and carry the same two blocking checks. A table is stored as the server sends it (a reference
table joined with its target, the target's columns suffixed `_ref` where names clash). A table
that a version does not have is not materialized for that version: the step logs it, records
an observation saying so, and succeeds. An expired version's dump of a reference table is
joined to the table that a current version's metadata names as its target (the nucleus table,
the synapse table, ...); when no current version names one, the table is not stored, and said
so the same way.
"""

import re
from concurrent.futures import ThreadPoolExecutor, as_completed

import dagster as dg

from microns_assets import catalogue
from microns_assets.config import load_versions_config
from microns_assets.partitions import mat_version
from microns_assets.raw import checks
from microns_assets.raw.assets import expired_version
from microns_assets.raw.fetch import (
    Fetched,
    fetch_static_table,
    fetch_table,
    reference_targets,
    source_facts,
)
from microns_assets.resources.cave import CaveResource, cave_errors_as_failures
from microns_assets.static_dumps.download import DumpMissingError
from microns_assets.static_dumps.tables import UnknownReferenceError


def extra_key(table: str) -> dg.AssetKey:
    """The asset key of an extra table."""
    return dg.AssetKey(catalogue.extra(table).key)


def _output(table: str) -> str:
    """An op output name for `table` (Dagster names allow letters, digits and _)."""
    return "t_" + re.sub(r"\W", "_", table)


def build_extra_assets(tables: tuple[str, ...]) -> list[dg.AssetsDefinition]:
    """One subsettable multi-asset downloading the selected `tables` of a version ([] if none)."""
    if not tables:
        return []

    @dg.multi_asset(
        name="download_extra_tables",
        outs={
            _output(t): dg.AssetOut(
                key=extra_key(t),
                group_name=catalogue.EXTRA_GROUP,
                description=catalogue.extra(t).description,
                kinds={"pandas", "parquet"},
                tags={"microns/cave_table": t},
                is_required=False,
            )
            for t in tables
        },
        partitions_def=mat_version,
        check_specs=[spec for t in tables for spec in checks.check_specs(extra_key(t))],
        can_subset=True,
        pool="cave",
    )
    def download_extra_tables(context: dg.AssetExecutionContext, cave: CaveResource):
        """Download the selected extra tables of a version concurrently, over one connection."""
        cfg = load_versions_config().get(int(context.partition_key))
        selected = [t for t in tables if extra_key(t) in context.selected_asset_keys]
        with cave_errors_as_failures(context, cfg.retry):
            conn = cave.connection
            version = cfg.version
            static = expired_version(context, cave, cfg)
            # an expired version has no table listing: a table its dump lacks is absent
            listed = set(selected) if static else set(conn.tables(version))
            absent = [t for t in selected if t not in listed]
            yield from _absent(context, absent, version)
            present = [t for t in selected if t in listed]
            stamp = conn.version_metadata(version)["time_stamp"].isoformat()
            facts = source_facts(cave, version, stamp)
            targets = reference_targets(cave, present) if static else {}

            def fetch(table: str) -> Fetched:
                table_facts = {**facts, "cave_table": table}
                if static:
                    return fetch_static_table(cave, version, table, table_facts, targets[table])
                return fetch_table(cave, version, table, table_facts)

            with ThreadPoolExecutor(cave.max_in_flight, thread_name_prefix="cave-extra") as pool:
                futures = {pool.submit(fetch, t): t for t in present}
                for future in as_completed(futures):
                    table = futures[future]
                    try:
                        got = future.result()
                    except DumpMissingError:
                        yield from _absent(context, [table], version)
                        continue
                    except UnknownReferenceError as err:
                        yield from _not_stored(context, table, str(err))
                        continue
                    for level, message in got.log:
                        getattr(context.log, level)(message)
                    yield dg.Output(got.frame, output_name=_output(table), metadata=got.metadata)
                    yield from checks.check_results(extra_key(table), got.frame, table, got.count)

    return [download_extra_tables]


def _absent(context: dg.AssetExecutionContext, tables: list[str], version: int):
    """Say that `tables` are not tables of `version`: a warning and an observation each."""
    for table in tables:
        yield from _not_stored(
            context, table, f"{table} is not a table of v{version}: nothing stored for it"
        )


def _not_stored(context: dg.AssetExecutionContext, table: str, message: str):
    """Say why nothing is stored for `table` in this version: a warning and an observation."""
    context.log.warning(message)
    yield dg.AssetObservation(
        asset_key=extra_key(table),
        partition=context.partition_key,
        metadata={"present": False, "note": message},
    )
