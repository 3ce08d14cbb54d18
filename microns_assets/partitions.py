"""Partitions of the asset graph: CAVE materialization versions (dynamic)."""

import dagster as dg

VERSION_DIM = "mat_version"
CHUNK_DIM = "synapse_chunk"

#: CAVE materialization versions, added by the version sensor and by the CLI.
mat_version = dg.DynamicPartitionsDefinition(name=VERSION_DIM)
