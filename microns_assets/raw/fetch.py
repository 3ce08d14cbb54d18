"""One CAVE table of a version, downloaded verified: what the raw role and extra assets share.

`fetch_table` runs `cave.fetch_verified` (capped answers split and re-queried, rows held
against the server's own count, orphan annotations of a reference table identified) and says
what to store and report: the frame with its provenance, the asset metadata, log lines.
`fetch_static_table` does the same from the static dump of an expired version.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from microns_assets.cave import ServerCount, fetch_verified
from microns_assets.emulator import DATASTACK as SYNTHETIC_DATASTACK
from microns_assets.provenance import provenance
from microns_assets.resources.cave import CaveResource


@dataclass
class Fetched:
    """A table, its CAVE table (None: absent), the server's count, what to report."""

    frame: pd.DataFrame
    table: str | None
    count: ServerCount | None
    metadata: dict
    log: list[tuple[str, str]] = field(default_factory=list)  # (level, message)


def source_facts(cave: CaveResource, version: int, stamp: str) -> dict:
    """Where a table of `version` comes from, for its provenance."""
    settings = cave.connection.settings
    return {
        "datastack": settings.datastack,
        "server": cave.effective_server,
        "server_setting": cave.server_address,
        "synthetic": settings.datastack == SYNTHETIC_DATASTACK,
        "version": version,
        "version_timestamp": stamp,
    }


def fetch_table(
    cave: CaveResource,
    version: int,
    table: str,
    facts: dict,
    validate: Callable[[pd.DataFrame], None] | None = None,
    tables: list[str] | None = None,
) -> Fetched:
    """Download `table` of `version`, verified; `validate(frame)` may raise before storing.

    `tables`: the version's tables, if already listed (else listed here).
    """
    conn = cave.connection
    conn.check_table(version, table, tables)
    queries = []
    result, count = fetch_verified(
        conn, version, table, attempts=conn.settings.call_attempts, on_query=queries.append
    )
    frame = result.frame
    if validate is not None:
        validate(frame)
    query = {"split_key": "id", "queries": result.queries, "capped_and_split": result.capped}
    log: list[tuple[str, str]] = []
    if count.orphan_ids:
        query["orphans_dropped_by_join"] = len(count.orphan_ids)
        log.append(
            (
                "warning",
                f"{table} v{version}: {len(count.orphan_ids)} of {count.table_rows} annotations "
                "have no target (their target_id is missing from the target table, or null); "
                "the server's join drops them, as caveclient does (annotation ids "
                f"{_sample(count.orphan_ids)})",
            )
        )
    frame.attrs["provenance"] = provenance(**facts, present=True, query=query)
    log.append(
        (
            "info",
            f"{table} v{version}: {len(frame)} rows in {result.queries} queries "
            f"({result.capped} capped and split)",
        )
    )
    metadata = {
        "present": True,
        "cave_table": table,
        "version_timestamp": facts.get("version_timestamp"),
        "queries": result.queries,
        "capped_queries_split": result.capped,
        "query_seconds": round(sum(r.elapsed_s for r in queries), 3),
        "synthetic_data": facts.get("synthetic"),
        "server_count": count.table_rows,
        "orphans_dropped_by_join": len(count.orphan_ids),
        **({"orphan_annotation_ids": _sample(count.orphan_ids)} if count.orphan_ids else {}),
    }
    return Fetched(frame, table, count, metadata, log)


def fetch_static_table(
    cave: CaveResource,
    version: int,
    table: str,
    facts: dict,
    target: str | None,
    validate: Callable[[pd.DataFrame], None] | None = None,
) -> Fetched:
    """`table` of expired `version` from its static dump.

    A reference table is joined to `target` (the table it references, see `reference_targets`)
    as the server's join would.
    """
    synapse_table = cave.connection.datastack_info().get("synapse_table")
    got = cave.static.table(version, table, target, synapse_table)
    frame = got.frame
    if validate is not None:
        validate(frame)
    files = [{"url": f.url, "bytes": f.bytes, "reused": f.reused} for f in got.files]
    static = {"source": "static", "files": files, "joined_to": got.joined_to}
    frame.attrs["provenance"] = provenance(**facts, present=True, **static)
    count = ServerCount(got.rows_in_dump, got.orphan_ids)
    log: list[tuple[str, str]] = []
    if got.orphan_ids:
        log.append(
            (
                "warning",
                f"{table} v{version} (static dump): {len(got.orphan_ids)} of {got.rows_in_dump} "
                f"annotations have no target in {target}; the join drops them, as the server's "
                f"does (annotation ids {_sample(got.orphan_ids)})",
            )
        )
    downloaded = sum(f.bytes for f in got.files if not f.reused)
    log.append(
        (
            "info",
            f"{table} v{version}: {len(frame)} rows from the static dump "
            f"({downloaded:,} bytes downloaded, {len(got.files)} files)",
        )
    )
    metadata = {
        "present": True,
        "cave_table": table,
        "source": "static",
        "dump_urls": dg_text([f.url for f in got.files]),
        "dump_bytes": sum(f.bytes for f in got.files),
        "version_timestamp": facts.get("version_timestamp"),
        "synthetic_data": facts.get("synthetic"),
        "server_count": got.rows_in_dump,
        "orphans_dropped_by_join": len(got.orphan_ids),
        **({"orphan_annotation_ids": _sample(got.orphan_ids)} if got.orphan_ids else {}),
    }
    return Fetched(frame, table, count, metadata, log)


def reference_targets(cave: CaveResource, tables: list[str]) -> dict[str, str | None]:
    """The table each of `tables` references, from the newest current version listing it.

    An expired version serves no metadata, so a current one is asked: the versions are listed
    once, each version's tables at most once. None: the table references no table, or no
    current version lists it.
    """
    conn = cave.connection
    current = sorted(conn.versions(expired=False), reverse=True)
    listed: dict[int, set[str]] = {}
    targets: dict[str, str | None] = {}
    for table in tables:
        targets[table] = None
        for version in current:
            if version not in listed:
                listed[version] = set(conn.tables(version))
            if table in listed[version]:
                meta = conn.table_metadata(version, table)
                targets[table] = meta.get("reference_table") or None
                break
    return targets


def dg_text(urls: list[str]) -> str:
    """URLs one per line (metadata shows them as text)."""
    return "\n".join(urls)


def _sample(ids: tuple[int, ...], n: int = 20) -> str:
    more = f" and {len(ids) - n} more" if len(ids) > n else ""
    return ", ".join(map(str, ids[:n])) + more
