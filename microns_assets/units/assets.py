"""`units` and `layer_segments` of a version, built from its raw role tables.

Runs `processing.build_units` (the seed's `process_nucleus_data`) and attaches what a scientist
looks at first: counts by layer and class, the layer boundaries, a depth profile picture.
"""

from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from microns_assets import catalogue
from microns_assets.carry_down import CARRY_DOWN
from microns_assets.config import ROLES
from microns_assets.metadata import markdown_table, png_markdown
from microns_assets.partitions import mat_version
from microns_assets.processing import InputTableError, build_units
from microns_assets.processing.painter import painter
from microns_assets.processing.plots import DEPTH_COLUMNS
from microns_assets.provenance import provenance
from microns_assets.units.checks import CHECK_SPECS, check_results


class UnitsConfig(dg.Config):
    """How to build the units table (defaults: the seed's)."""

    functional: Literal["none", "match", "all", "best_only"] = Field(
        "none",
        description="Functional data: none; match (coregistration ids); all (one row per "
        "scan); best_only (the scan with the highest cc_abs).",
    )
    l23_threshold: int | None = Field(
        None,
        description="L2/3 cells a 10 µm bin needs to end L1. Empty: automatic, the seed's 300 "
        "at MICrONS scale (>= 50,000 units), scaled down with cell density on smaller data.",
    )
    bin_um: float = Field(10.0, gt=0, description="Depth bin size for layer segmentation (µm).")


def _provenance(tables: dict[str, pd.DataFrame], version: int, config: UnitsConfig, **extra):
    sources = {role: t.attrs.get("provenance", {}) for role, t in tables.items()}
    nucleus = sources["nucleus"]
    return provenance(
        datastack=nucleus.get("datastack"),
        server=nucleus.get("server"),
        synthetic=nucleus.get("synthetic"),
        version=version,
        version_timestamp=nucleus.get("version_timestamp"),
        cave_tables={role: s.get("cave_table") for role, s in sources.items()},
        functional=config.functional,
        bin_um=config.bin_um,
        **extra,
    )


@dg.multi_asset(
    outs={
        asset.name: dg.AssetOut(
            group_name=asset.group,
            kinds={"pandas", "parquet"},
            automation_condition=CARRY_DOWN,
            description=asset.description,
        )
        for asset in (catalogue.UNITS, catalogue.LAYER_SEGMENTS)
    },
    ins={role: dg.AssetIn(key=catalogue.ROLE[role].key) for role in ROLES},
    partitions_def=mat_version,
    check_specs=CHECK_SPECS,
)
def units_and_layers(context: dg.AssetExecutionContext, config: UnitsConfig, **tables):
    """Build the units table and the layer segments of one version (`tables`: by role)."""
    version = int(context.partition_key)
    tables = {role: tables[role] for role in ROLES}
    try:
        units, segments = build_units(
            tables,
            version=version,
            functional=config.functional,
            l23_threshold=config.l23_threshold,
            bin_um=config.bin_um,
        )
    except InputTableError as err:
        raise dg.Failure(f"version {version}: {err}", allow_retries=False) from err
    threshold = units.attrs.pop("l23_threshold")
    prov = _provenance(tables, version, config, l23_threshold=threshold)
    units.attrs["provenance"] = prov
    segments.attrs["provenance"] = prov
    context.log.info(f"v{version}: {len(units)} units, layers {segments['layer'].tolist()}")

    # drawn meanwhile (checks, counts and the segments' file are done while it draws), from
    # the columns it shows (pickling the whole table: 10x the bytes)
    picture = painter().submit("depth_profile_png", units[DEPTH_COLUMNS], segments)
    checked = list(check_results(units, segments))  # (yielded after the outputs they check)
    cells = units.drop_duplicates("nucleus_id")
    by_layer = pd.crosstab(
        cells["layer"].fillna("(none)"), cells["classification_system"], margins=True
    )
    yield dg.Output(
        segments,
        output_name=catalogue.LAYER_SEGMENTS.name,
        metadata={
            "boundaries": markdown_table(segments.round(1)),
            "layers": ", ".join(segments["layer"]),
        },
    )
    yield dg.Output(
        units,
        output_name=catalogue.UNITS.name,
        metadata={
            "unique_nuclei": dg.MetadataValue.int(len(cells)),
            "functional_mode": config.functional,
            "l23_threshold": dg.MetadataValue.int(threshold),
            "units_by_layer_and_class": markdown_table(by_layer, index=True),
            "depth_profile": png_markdown(picture.result(), "depth profile"),
        },
    )
    yield from checked
