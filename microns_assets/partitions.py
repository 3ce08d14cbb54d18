"""Partitions of the asset graph: CAVE materialization versions (dynamic) and synapse chunks."""

import warnings

import dagster as dg

from microns_assets.processing.chunks import CHUNK_KEYS

VERSION_DIM = "mat_version"
CHUNK_DIM = "synapse_chunk"

#: CAVE materialization versions, added by the version sensor and by the CLI.
mat_version = dg.DynamicPartitionsDefinition(name=VERSION_DIM)

#: Hash buckets of postsynaptic root ids (`processing.chunks.chunk_of`).
synapse_chunk = dg.StaticPartitionsDefinition(list(CHUNK_KEYS))

#: One synapse chunk of one version.
version_chunk = dg.MultiPartitionsDefinition({VERSION_DIM: mat_version, CHUNK_DIM: synapse_chunk})

#: A per-version asset reading its version from a version x chunk asset, or the reverse.
#: (Beta in Dagster 1.13; its warning would be printed by every process that loads us.)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    by_version = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=VERSION_DIM)
