"""The code location: assets, resources and jobs assembled from their modules. Nothing else."""

import dagster as dg

from microns_assets.raw.assets import GROUP as RAW_GROUP
from microns_assets.raw.assets import raw_assets
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.settings import Settings
from microns_assets.synapses.assets import synapse_chunks, synapses
from microns_assets.units.assets import units_and_layers

settings = Settings.from_env()

raw_tables_job = dg.define_asset_job(
    "cave_raw_tables",
    selection=dg.AssetSelection.groups(RAW_GROUP),
    description="Download every raw CAVE table (one asset per role) for a version.",
)

units_job = dg.define_asset_job(
    "raw_tables_and_units",
    selection=dg.AssetSelection.groups(RAW_GROUP, "units"),
    description="Raw CAVE tables of a version, then its units table and layer segments.",
)

defs = dg.Definitions(
    assets=[*raw_assets, units_and_layers, synapse_chunks, synapses],
    jobs=[raw_tables_job, units_job],
    resources={
        "cave": CaveResource(datastack=settings.datastack, server_address=settings.server),
        "io_manager": ParquetIOManager(data_dir=settings.data_dir, datastack=settings.datastack),
    },
)
