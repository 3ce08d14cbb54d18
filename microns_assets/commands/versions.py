"""`microns-assets versions`: what the server lists, what has expired, what is here locally.

An expired version's status reads `static`: it is materialized from CAVE's static dumps.
"""

from __future__ import annotations

import argparse
import sys

from microns_assets import catalogue
from microns_assets.commands.environment import cave_connection, resolve
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.storage import asset_path


def local_state(data_dir: str, datastack: str, version: int) -> str:
    """Which assets of `version` have files in the data dir, e.g. `raw 7/7, units, chunks 32/32`."""

    def exists(asset: catalogue.Asset, chunk: str | None = None) -> bool:
        path = asset_path(data_dir, datastack, version, list(asset.key), chunk, asset.suffix)
        return path.exists()

    parts = []
    for stage in (1, 2, 3):
        of_stage = [a for a in catalogue.PER_VERSION if a.stage == stage]
        raw = [a for a in of_stage if a.group == catalogue.RAW_GROUP]
        if raw and (found := sum(exists(a) for a in raw)):
            parts.append(f"raw {found}/{len(raw)}")
        for asset in (a for a in of_stage if a.group != catalogue.RAW_GROUP):
            if asset == catalogue.SYNAPSE_CHUNKS:
                found = sum(exists(asset, c) for c in CHUNK_KEYS)
                parts += [f"chunks {found}/{len(CHUNK_KEYS)}"] if found else []
            elif exists(asset):
                parts.append(asset.name)
    return ", ".join(parts) or "-"


def _expiry(expires_on: object) -> str:
    """The expiry date, or `never`: caveclient turns the server's null into pandas' max time."""
    import pandas as pd

    if expires_on is None or getattr(expires_on, "year", None) == pd.Timestamp.max.year:
        return "never"
    return str(expires_on)[:10]


def versions(args: argparse.Namespace) -> int:
    """Print one line per version the server lists (expired ones included)."""
    from microns_assets.cave.errors import CaveError

    settings, _ = resolve(args)
    try:
        with cave_connection(settings) as conn:
            listed = conn.versions_metadata(expired=True)
    except CaveError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"Versions of {settings.datastack} at {settings.server}; local data in {settings.data_dir}"
    )
    print(f"{'version':>8}  {'published':<19}  {'status':<9}  {'expires':<10}  local files")
    unreadable = None  # why the data dir could not be read, once it failed
    for meta in listed:
        version = int(meta["version"])
        expired = not meta.get("valid", True) or meta.get("status") == "EXPIRED"
        expires = _expiry(meta.get("expires_on"))
        published = str(meta.get("time_stamp", ""))[:19].replace("T", " ")
        status = "static" if expired else "current"  # expired: read from its static dumps
        local = "?"
        if unreadable is None:
            try:
                local = local_state(settings.data_dir, settings.datastack, version)
            except Exception as err:  # whatever the storage raises (credentials, network)
                unreadable = f"{type(err).__name__}: {err}"
        print(f"{version:>8}  {published:<19}  {status:<9}  {expires:<10}  {local}")
    if unreadable is not None:
        print(
            f"error: cannot read the data dir {settings.data_dir} ({unreadable}); local files "
            "are shown as ?. Check its credentials and endpoint (docs/configuration.md).",
            file=sys.stderr,
        )
        return 1
    return 0
