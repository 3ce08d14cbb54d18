"""The code location: assets, resources and jobs assembled from their modules. Nothing else."""

import dagster as dg

from microns_assets.raw.assets import GROUP as RAW_GROUP
from microns_assets.raw.assets import raw_assets
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.settings import Settings

settings = Settings.from_env()

raw_tables_job = dg.define_asset_job(
    "cave_raw_tables",
    selection=dg.AssetSelection.groups(RAW_GROUP),
    description="Download every raw CAVE table (one asset per role) for a version.",
)

defs = dg.Definitions(
    assets=raw_assets,
    jobs=[raw_tables_job],
    resources={
        "cave": CaveResource(datastack=settings.datastack, server_address=settings.server),
        "io_manager": ParquetIOManager(data_dir=settings.data_dir, datastack=settings.datastack),
    },
)
