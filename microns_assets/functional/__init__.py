"""Functional recordings: the HDF5 file's reader and the join of units to their responses.

Plain Python (h5py, no Dagster); the asset that downloads the file is in `asset.py`.
"""

from microns_assets.functional.join import UnmatchedUnitsWarning, unit_responses
from microns_assets.functional.reader import FunctionalKeyError, FunctionalReader

__all__ = ["FunctionalKeyError", "FunctionalReader", "UnmatchedUnitsWarning", "unit_responses"]
