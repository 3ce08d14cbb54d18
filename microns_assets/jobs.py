"""Asset jobs, one per partition group: Dagster runs one partitions definition per run.

`cave_raw_tables` and `raw_tables_and_units` run per version; `synapse_chunk_download` over a
range of version x chunk partitions (a whole version's chunks in one run); `synapses_rollup` per
version. A backfill (the UI's "Materialize all") and `microns-assets materialize` make the same
runs.
"""

import dagster as dg

from microns_assets import catalogue
from microns_assets.synapses.assets import synapse_chunks, synapses

raw_tables_job = dg.define_asset_job(
    "cave_raw_tables",
    selection=dg.AssetSelection.groups(catalogue.RAW_GROUP),
    description="Download every raw CAVE table (one asset per role) for a version.",
)

units_job = dg.define_asset_job(
    "raw_tables_and_units",
    selection=dg.AssetSelection.groups(catalogue.RAW_GROUP, catalogue.UNITS_GROUP),
    description="Raw CAVE tables of a version, then its units table and layer segments.",
)

chunks_job = dg.define_asset_job(
    "synapse_chunk_download",
    selection=dg.AssetSelection.assets(synapse_chunks),
    description="Download the synapse chunks of a partition range (version x chunk), e.g. "
    "all 32 chunks of a version in one run.",
)

rollup_job = dg.define_asset_job(
    "synapses_rollup",
    selection=dg.AssetSelection.assets(synapses),
    description="Roll all synapse chunks of a version up into the merged `synapses` table.",
)

ALL_JOBS = [raw_tables_job, units_job, chunks_job, rollup_job]
