"""Asset checks of `units` and `layer_segments`: specs, and results from `processing.quality`."""

from collections.abc import Callable, Iterator

import dagster as dg
import pandas as pd

from microns_assets import catalogue
from microns_assets.processing import quality
from microns_assets.processing.quality import Outcome

UNITS = dg.AssetKey(catalogue.UNITS.key)
SEGMENTS = dg.AssetKey(catalogue.LAYER_SEGMENTS.key)

#: (asset, rule, blocking). Blocking checks stop downstream assets on bad data.
RULES: list[tuple[dg.AssetKey, Callable[[pd.DataFrame], Outcome], bool]] = [
    (UNITS, quality.unique_keys, True),
    (UNITS, quality.no_zero_root, True),
    (UNITS, quality.value_sets, True),
    (UNITS, quality.layer_share, False),
    (SEGMENTS, quality.regions_well_formed, True),
    (SEGMENTS, quality.all_layers_found, False),
]

CHECK_SPECS = [
    dg.AssetCheckSpec(rule.__name__, asset=key, blocking=blocking, description=rule.__doc__)
    for key, rule, blocking in RULES
]


def check_results(units: pd.DataFrame, segments: pd.DataFrame) -> Iterator[dg.AssetCheckResult]:
    """Evaluate every rule on the freshly built tables."""
    frames = {UNITS: units, SEGMENTS: segments}
    for key, rule, blocking in RULES:
        outcome = rule(frames[key])
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=rule.__name__,
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            description=outcome.description,
            metadata=outcome.metadata,
        )
