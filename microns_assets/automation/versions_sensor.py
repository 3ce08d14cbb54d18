"""The `cave_versions` sensor: adds CAVE's new materialization versions to `mat_version`.

Each tick lists the versions through `CaveResource` (with `embedded`, the emulator runs for the
tick only), asks `versions.plan_update` what is new, adds it to the partitions, and requests a
`cave_raw_tables` run per added version; automation conditions carry each one further.
"""

import dagster as dg

from microns_assets.automation.versions import (
    SeenVersions,
    VersionUpdate,
    plan_update,
    version_numbers,
)
from microns_assets.cave.deadline import DeadlineExceeded, call_within
from microns_assets.cave.errors import CaveUnavailableError
from microns_assets.jobs import raw_tables_job
from microns_assets.partitions import mat_version
from microns_assets.resources.cave import TICK_BUDGET_S, CaveResource
from microns_assets.settings import DEFAULT_POLL_MINUTES


def _listing(numbers: list[int]) -> str:
    return ", ".join(map(str, numbers)) or "none"


def _skip_message(update: VersionUpdate, datastack: str, valid: list[int]) -> str:
    added = ""
    if update.add:  # only on a first tick whose newest version already was a partition
        added = f" Added {_listing(update.add)}; the newest was already a partition."
    expired = _listing(sorted(update.state.expired))
    return (
        f"No new version of {datastack} to download.{added} Current on CAVE: "
        f"{_listing(valid)}; expired (recorded, not added): {expired}."
    )


def _listing_within_budget(cave: CaveResource) -> tuple[list[int], list[int]]:
    """(all versions, current versions), or `CaveUnavailableError` within `TICK_BUDGET_S`."""
    conn = cave.tick_connection()
    try:
        return call_within(
            TICK_BUDGET_S, lambda: (conn.versions(expired=True), conn.versions(expired=False))
        )
    except DeadlineExceeded as err:
        raise CaveUnavailableError(
            f"listing the versions of {conn.settings.datastack!r} at "
            f"{conn.settings.server_address}: no answer within {TICK_BUDGET_S:g} s, the "
            "tick's budget. Check the server address and your network; the next tick tries "
            "again."
        ) from err


def build_versions_sensor(poll_minutes: int = DEFAULT_POLL_MINUTES) -> dg.SensorDefinition:
    """The version sensor, polling CAVE every `poll_minutes` minutes once started."""

    @dg.sensor(
        name="cave_versions",
        job=raw_tables_job,
        minimum_interval_seconds=poll_minutes * 60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Add CAVE's new current versions to mat_version and download their raw "
        "tables (first tick: add all, download only the newest). Expired versions are recorded "
        "in the cursor, never added; no partition is ever removed.",
    )
    def cave_versions(context: dg.SensorEvaluationContext, cave: CaveResource) -> dg.SensorResult:
        listed, valid = _listing_within_budget(cave)
        partitions = version_numbers(context.instance.get_dynamic_partitions(mat_version.name))
        update = plan_update(SeenVersions.from_cursor(context.cursor), listed, valid, partitions)
        datastack = cave.datastack
        if update.newly_expired:
            context.log.info(
                f"{datastack}: expired, recorded and not added: {_listing(update.newly_expired)}"
                " (an expired version is read from its static dumps when you materialize it)"
            )
        if update.add:
            context.log.info(f"{datastack}: adding versions {_listing(update.add)}")
        requests = [
            dg.RunRequest(
                job_name=raw_tables_job.name,
                partition_key=str(v),
                run_key=f"cave_versions:{datastack}:{v}",
                tags={"microns/trigger": "new_version"},
            )
            for v in update.run
        ]
        skip = None if requests else _skip_message(update, datastack, valid)
        add = [mat_version.build_add_request([str(v) for v in update.add])] if update.add else []
        return dg.SensorResult(
            run_requests=requests,
            skip_reason=skip,
            cursor=update.state.to_cursor(),
            dynamic_partitions_requests=add,
        )

    return cave_versions
