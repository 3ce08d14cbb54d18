"""The weekly refresh: re-download the raw tables of the newest known `mat_version` partition.

Automation conditions (`conditions.py`) then rebuild its units, chunks and roll-up. Reads only
the Dagster instance (no CAVE call), so a tick never fails on the network.
"""

import dagster as dg

from microns_assets.automation.versions import newest_version
from microns_assets.jobs import raw_tables_job
from microns_assets.partitions import mat_version

REFRESH_CRON = "0 6 * * 1"  # Mondays 06:00 UTC


@dg.schedule(
    name="refresh_newest_version",
    cron_schedule=REFRESH_CRON,
    execution_timezone="UTC",
    job=raw_tables_job,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-download the raw tables of the newest mat_version partition; automation "
    "conditions rebuild what depends on them.",
)
def refresh_newest_version(
    context: dg.ScheduleEvaluationContext,
) -> dg.RunRequest | dg.SkipReason:
    """A raw tables run for the newest partition, or a skip saying how to get one."""
    newest = newest_version(context.instance.get_dynamic_partitions(mat_version.name))
    if newest is None:
        return dg.SkipReason(
            "No mat_version partition yet: start the cave_versions sensor, or add a version "
            "under the mat_version partitions in the UI."
        )
    return dg.RunRequest(
        job_name=raw_tables_job.name,
        partition_key=str(newest),
        tags={"microns/trigger": "weekly_refresh"},
    )
