"""Provenance records: where a table came from and with which software. No Dagster imports."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("microns_assets", "caveclient", "dagster", "pandas", "pyarrow", "numpy")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape our outputs (looked up once a process)."""
    return dict(_package_versions())


@cache
def _package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(**facts: object) -> dict:
    """A provenance record: the given facts plus package versions and the time of writing."""
    return {
        **facts,
        "packages": package_versions(),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
