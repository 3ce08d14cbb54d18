"""The code location: assets, jobs, sensors, schedules and resources from their modules. No more."""

import dagster as dg

from microns_assets.automation.conditions import automation_sensor
from microns_assets.automation.schedules import refresh_newest_version
from microns_assets.automation.versions_sensor import build_versions_sensor
from microns_assets.config import load_versions_config
from microns_assets.executors import executor_from_settings
from microns_assets.extra_tables import extra_tables
from microns_assets.functional.asset import functional_recordings
from microns_assets.jobs import ALL_JOBS
from microns_assets.raw.assets import raw_assets
from microns_assets.raw.extra import build_extra_assets
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.settings import (
    Settings,
    check_data_dir,
    check_server,
    chunk_runs_from_env,
    chunks_per_run,
    in_flight_from_env,
    poll_minutes_from_env,
    static_base_from_env,
    static_dir_from_env,
)
from microns_assets.synapses.assets import synapse_chunks, synapses
from microns_assets.units.assets import units_and_layers

settings = Settings.from_env()
check_server(settings)  # a mistyped server or data dir fails loading, saying what to set
check_data_dir(settings)
#: Further CAVE tables as `cave_extra/<table>` (MICRONS_EXTRA_TABLES or versions.yaml)
extra_assets = build_extra_assets(extra_tables(load_versions_config(), settings))
chunk_runs = chunk_runs_from_env()
if chunk_runs > 1:  # a backfill splits a version's chunks into `chunk_runs` runs
    synapse_chunks = synapse_chunks.with_attributes(
        backfill_policy=dg.BackfillPolicy.multi_run(chunks_per_run(chunk_runs))
    )

defs = dg.Definitions(
    assets=[
        *raw_assets,
        *extra_assets,
        units_and_layers,
        synapse_chunks,
        synapses,
        functional_recordings,
    ],
    jobs=ALL_JOBS,
    sensors=[build_versions_sensor(poll_minutes_from_env()), automation_sensor],
    schedules=[refresh_newest_version],
    # steps are I/O-bound: in one process by default (`MICRONS_EXECUTOR`, see `settings.py`)
    executor=executor_from_settings(),
    resources={
        "cave": CaveResource(
            datastack=settings.datastack,
            server_address=settings.server,
            max_in_flight=in_flight_from_env(),
            static_base=static_base_from_env(),
            static_dir=static_dir_from_env(settings),
        ),
        "io_manager": ParquetIOManager(data_dir=settings.data_dir, datastack=settings.datastack),
    },
)
