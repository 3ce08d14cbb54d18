"""CAVE access through the real caveclient: connection, HTTP hardening, complete queries, errors.

Plain Python, no Dagster: `microns_assets.resources.cave` wraps it as the one Dagster resource
that owns CAVE access.
"""

from microns_assets.cave.complete import (
    CompleteResult,
    ServerCount,
    fetch_complete,
    fetch_verified,
)
from microns_assets.cave.connection import (
    GLOBAL_SERVER,
    CaveConnection,
    CaveSettings,
    QueryResult,
)
from microns_assets.cave.filters import NO_FILTERS, Filters
from microns_assets.cave.http import HttpPolicy

__all__ = [
    "GLOBAL_SERVER",
    "NO_FILTERS",
    "CaveConnection",
    "CaveSettings",
    "CompleteResult",
    "Filters",
    "HttpPolicy",
    "QueryResult",
    "ServerCount",
    "fetch_complete",
    "fetch_verified",
]
