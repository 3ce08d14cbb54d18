"""What docs/assets.md promises the web UI shows: keys, groups, lineage, checks.

Written out by hand from the documents, not read from the code under test.
"""

from __future__ import annotations

ROLES = (
    "nucleus",
    "cell_types",
    "cell_type_corrections",
    "proofreading",
    "brain_areas",
    "coregistration",
    "functional_properties",
)
RAW = tuple(f"cave_raw/{role}" for role in ROLES)
TABLES = (*RAW, "units", "layer_segments", "synapses")  # Parquet files, by version only
VERSIONED = (*TABLES, "connectome")  # partitioned by version only
BACKFILLED = (*VERSIONED, "synapse_chunks")  # what "Materialize all" of a version targets
UNPARTITIONED = ("functional_recordings",)  # not per version: materialized on its own
KEYS = (*BACKFILLED, *UNPARTITIONED)

GROUPS = {
    **dict.fromkeys(RAW, "cave_raw"),
    "units": "units",
    "layer_segments": "units",
    "synapse_chunks": "synapses",
    "synapses": "synapses",
    "connectome": "synapses",
    "functional_recordings": "functional",
}

#: Lineage: raw -> units/segments -> chunks -> synapses -> connectome; the roll-up also reads
#: `units` for its synapses-by-cell-class heatmap, the connectome for its rows and columns.
EDGES = {
    *((raw, "units") for raw in RAW),
    *((raw, "layer_segments") for raw in RAW),
    ("units", "synapse_chunks"),
    ("synapse_chunks", "synapses"),
    ("units", "synapses"),
    ("synapses", "connectome"),
    ("units", "connectome"),
}

#: Asset checks docs/assets.md documents (the code may add more).
CHECKS = {
    "units": {"unique_keys", "no_zero_root", "value_sets", "layer_share"},
    "layer_segments": {"regions_well_formed", "all_layers_found"},
    "synapse_chunks": {"no_duplicates", "within_selection"},
    "synapses": {"totals_match_chunks"},
    "connectome": {"sums_match_synapses"},
}

N_CHUNKS = 32
CHUNKS = tuple(f"{i:02d}" for i in range(N_CHUNKS))

#: Roles a version lacks (corrections exist from 1718).
ABSENT_IN_1300 = {"cave_raw/cell_type_corrections"}
