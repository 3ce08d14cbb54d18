"""Pure data processing (no Dagster): the units table and layer segments.

`build_units` is the entry point; `layers` holds the depth segmentation, `inputs` the checks of
what goes in.
"""

from microns_assets.processing.inputs import InputTableError
from microns_assets.processing.units import FUNCTIONAL_MODES, build_units, to_microns

__all__ = ["FUNCTIONAL_MODES", "InputTableError", "build_units", "to_microns"]
