"""`functional_recordings`: the functional recordings file, downloaded once and described.

Unpartitioned (the recordings do not change with the materialization version) and not part of a
version's backfill: materialize it on its own (web UI, group `functional`, or `dagster asset
materialize -m microns_assets.definitions --select functional_recordings`). The file (~20 GB
for MICrONS) goes to `settings.functional_file` through `static_dumps.download`: resumable with
`Range`, checked against its length and, when the server states it, its SHA-256, never half a
file under the final name. A complete file is reused unless run config `force: true`.
"""

import time

import dagster as dg
import numpy as np
import pandas as pd
import requests
from pydantic import Field

from microns_assets import catalogue
from microns_assets.functional.reader import FunctionalReader
from microns_assets.metadata import markdown_table
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.settings import Settings, SettingsError, functional_file, functional_url
from microns_assets.static_dumps.download import DownloadError, DumpMissingError, download

PROGRESS_EVERY_S = 10.0


class FunctionalConfig(dg.Config):
    """Run config of `functional_recordings`."""

    url: str = Field(
        "",
        description="URL of the HDF5 file; empty: MICRONS_FUNCTIONAL_URL or the datastack's "
        "default (see microns_assets.settings).",
    )
    force: bool = Field(False, description="Download again even if a complete file is there.")


def summary(reader: FunctionalReader) -> tuple[dict, pd.DataFrame]:
    """Counts for the metadata and a per-scan table (units, trials, areas)."""
    rows = []
    for key in reader.sessions():
        rows.append(
            {
                "scan": key,
                "units": int(reader.unit_ids(key).size),
                "trials": reader.trial_count(key),
                "areas": ", ".join(reader.get_available_brain_areas(key)),
            }
        )
    table = pd.DataFrame(rows, columns=["scan", "units", "trials", "areas"])
    sessions = {key.split("_")[0] for key in table["scan"]}
    counts = {
        "sessions": len(sessions),
        "scans": len(table),
        "trials": int(table["trials"].sum()),
        "units": int(table["units"].sum()),
    }
    return counts, table


class _Progress:
    """Logs the bytes received every `PROGRESS_EVERY_S` seconds."""

    def __init__(self, context: dg.AssetExecutionContext) -> None:
        self.context, self.last = context, time.monotonic()

    def __call__(self, received: int, total: int | None) -> None:
        if time.monotonic() - self.last < PROGRESS_EVERY_S:
            return
        self.last = time.monotonic()
        of = f" of {total / 1e9:,.2f} GB ({received / total:.0%})" if total else ""
        self.context.log.info(f"functional recordings: {received / 1e9:,.2f} GB{of}")


@dg.asset(
    key=catalogue.FUNCTIONAL_RECORDINGS.key,
    group_name=catalogue.FUNCTIONAL_RECORDINGS.group,
    kinds={"hdf5"},
    description=catalogue.FUNCTIONAL_RECORDINGS.description,
    retry_policy=dg.RetryPolicy(max_retries=2, delay=5),
)
def functional_recordings(
    context: dg.AssetExecutionContext,
    config: FunctionalConfig,
    cave: CaveResource,
    io_manager: dg.ResourceParam[ParquetIOManager],
) -> dg.MaterializeResult:
    """Download (or reuse) the recordings file and describe what it holds."""
    try:
        url = config.url or functional_url(cave.datastack, cave.effective_server)
    except SettingsError as err:
        raise dg.Failure(str(err), allow_retries=False) from err
    where = Settings(cave.effective_server, io_manager.datastack, io_manager.data_dir)
    path = functional_file(where)
    if config.force:
        for stale in (path, path.with_name(path.name + ".json")):
            stale.unlink(missing_ok=True)
    hint = "the functional recordings are not there; set MICRONS_FUNCTIONAL_URL"
    try:
        got = download(
            requests.Session(), url, path, on_bytes=_Progress(context), missing_hint=hint
        )
    except DumpMissingError as err:
        raise dg.Failure(str(err), allow_retries=False) from err
    except DownloadError as err:
        raise dg.Failure(str(err)) from err  # retried; the bytes received are kept
    how = "found complete" if got.reused else f"downloaded ({got.resumed} resumes)"
    context.log.info(f"{url}: {got.bytes:,} bytes {how} at {path}")
    try:
        with FunctionalReader(path) as reader:
            counts, table = summary(reader)
    except (OSError, KeyError) as err:
        raise dg.Failure(
            f"{path} is complete but not a readable recordings file ({err}); materialize "
            "functional_recordings with run config `force: true` to download it again.",
            allow_retries=False,
        ) from err
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "url": dg.MetadataValue.url(url),
            "bytes": got.bytes,
            "sha256": got.sha256 or "(not given by the server)",
            "reused": got.reused,
            "resumes": got.resumed,
            **counts,
            "units_per_scan": int(np.median(table["units"])) if len(table) else 0,
            "scans_preview": markdown_table(table),
        }
    )
