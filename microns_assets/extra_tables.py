"""Which further CAVE tables become assets `cave_extra/<table>`: the setting, the file, `all`.

- `MICRONS_EXTRA_TABLES`: table names separated by commas, or `all`; unset: the
  `extra_tables:` list of `versions.yaml` (empty as shipped).
- `all`: every table the datastack's versions list, except the tables behind a role (they are
  `cave_raw/<role>` already) and the synapse table (downloaded in chunks). Asset keys must be
  known when the code location loads, so `all` is the one setting that makes loading ask the
  server: once, then the answer is kept for a day in `<data dir>/<datastack>/cave_tables.json`
  (later loads, run processes and code-server reloads read that file). With the `embedded`
  server the emulator's own catalog answers, without starting it.

No Dagster imports.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping

from upath import UPath

from microns_assets.config import ROLES, VersionsConfig
from microns_assets.settings import EMBEDDED, Settings, SettingsError

ENV_EXTRA_TABLES = "MICRONS_EXTRA_TABLES"
ALL = "all"
CACHE_NAME = "cave_tables.json"
CACHE_TTL_S = 24 * 3600
_NAME = re.compile(r"^[A-Za-z0-9_]+$")


def requested_extra_tables(
    config: VersionsConfig, environ: Mapping[str, str] = os.environ
) -> tuple[str, ...] | str:
    """The table names the setting or the versions file asks for, or `ALL`."""
    raw = (environ.get(ENV_EXTRA_TABLES) or "").strip()
    if not raw:
        return tuple(config.extra_tables)
    if raw.lower() == ALL:
        return ALL
    names = tuple(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    bad = [n for n in names if not _NAME.match(n)]
    if bad or not names:
        raise SettingsError(
            f"{ENV_EXTRA_TABLES}={raw!r}: give CAVE table names separated by commas (letters, "
            f"digits, _), e.g. allen_v1_column_types_slanted_ref,baylor_log_reg_cell_type_coarse_v1"
            f", or `all`{'; not table names: ' + ', '.join(map(repr, bad)) if bad else ''}"
        )
    return names


def role_tables(config: VersionsConfig) -> set[str]:
    """Every CAVE table behind a role in some version of the file."""
    return {
        t for v in config.versions for r in ROLES if (t := config.get(v).table_for(r)) is not None
    }


def extra_tables(
    config: VersionsConfig,
    settings: Settings,
    environ: Mapping[str, str] = os.environ,
    list_tables: Callable[[Settings], tuple[dict[int, list[str]], str]] | None = None,
) -> tuple[str, ...]:
    """The extra tables to define assets for, sorted; `all` resolved (see the module doc).

    `list_tables(settings)` returns `({version: tables}, synapse table)` from the server
    (default: through `CaveConnection`).
    """
    requested = requested_extra_tables(config, environ)
    roles = role_tables(config)
    if requested != ALL:
        taken = sorted(set(requested) & roles)
        if taken:
            raise SettingsError(
                f"{taken} back a role already (assets cave_raw/<role>); leave them out of "
                f"{ENV_EXTRA_TABLES} / extra_tables"
            )
        return tuple(sorted(requested))
    by_version, synapse_table = _listed(settings, list_tables or _list_from_server)
    every = {t for tables in by_version.values() for t in tables}
    return tuple(sorted(every - roles - {synapse_table}))


def _listed(
    settings: Settings, list_tables: Callable[[Settings], tuple[dict[int, list[str]], str]]
) -> tuple[dict[int, list[str]], str]:
    """The server's tables per version, from the day-old cache or the server."""
    if settings.server == EMBEDDED:
        from microns_assets.emulator import catalog

        return {v.number: catalog.tables_in(v.number) for v in catalog.VERSIONS}, catalog.SYNAPSES
    cache = UPath(settings.data_dir) / settings.datastack / CACHE_NAME
    try:
        kept = json.loads(cache.read_text())
        if kept["server"] == settings.server and time.time() - kept["listed_at"] < CACHE_TTL_S:
            return {int(v): t for v, t in kept["tables"].items()}, kept["synapse_table"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache, or one we cannot use: ask the server
    try:
        by_version, synapse_table = list_tables(settings)
    except Exception as err:
        raise SettingsError(
            f"{ENV_EXTRA_TABLES}=all needs the list of {settings.datastack}'s tables, and "
            f"{settings.server} could not give it ({err}). Retry when the server answers, or "
            "name the tables instead of `all`."
        ) from err
    record = {
        "server": settings.server,
        "listed_at": time.time(),
        "synapse_table": synapse_table,
        "tables": {str(v): t for v, t in by_version.items()},
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(record, indent=1))
    return by_version, synapse_table


def _list_from_server(settings: Settings) -> tuple[dict[int, list[str]], str]:
    from microns_assets.cave import CaveConnection, CaveSettings

    token = os.environ.get("CAVE_TOKEN") or None
    conn = CaveConnection(CaveSettings(settings.datastack, settings.server, token=token))
    by_version = {v: conn.tables(v) for v in conn.versions()}
    return by_version, str(conn.datastack_info().get("synapse_table") or "")
