"""Dagster resources: `CaveResource` owns all CAVE access, `ParquetIOManager` all storage."""

from microns_assets.resources.cave import CaveResource, cave_errors_as_failures
from microns_assets.resources.parquet_io_manager import ParquetIOManager

__all__ = ["CaveResource", "ParquetIOManager", "cave_errors_as_failures"]
