"""`ParquetIOManager`: the one place assets are stored and loaded (see `storage/`).

Outputs are DataFrames (written whole), Arrow record-batch streams (written batch by batch,
for roll-ups bigger than memory) or a sparse `Connectome` (one `.npz` file, `storage.matrix`);
a step that completes many partitions one after the other writes each through `store` as it
completes. A per-version asset that depends on all chunks of a version x chunk asset receives
the chunk files as `{chunk: path}`, to stream rather than load. Synapse chunks, written while
their step's downloads wait and read once by the roll-up, are compressed for speed (lz4); every
other file for size (zstd).
"""

from collections.abc import Mapping

import dagster as dg
import pandas as pd
from upath import UPath

from microns_assets.catalogue import MATRIX_KEYS, SYNAPSE_CHUNKS
from microns_assets.metadata import markdown_table
from microns_assets.partitions import CHUNK_DIM, VERSION_DIM
from microns_assets.storage import (
    Connectome,
    MissingDataError,
    asset_path,
    read_connectome,
    read_frame,
    read_head,
    write_connectome,
    write_frame,
)
from microns_assets.storage.matrix import SUFFIX as MATRIX_SUFFIX
from microns_assets.storage.parquet import COMPACT, FAST, Written
from microns_assets.storage.reuse import reusable
from microns_assets.storage.rollup import Streamed, write_batches

PREVIEW_ROWS = 8


def _version_and_chunk(key: str | dg.MultiPartitionKey) -> tuple[str, str | None]:
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[VERSION_DIM], dims[CHUNK_DIM]
    return key, None


def _file_metadata(
    written: Written, head: pd.DataFrame, columns: int, provenance: dict
) -> dict[str, dg.MetadataValue]:
    return {
        "dagster/row_count": dg.MetadataValue.int(written.rows),
        "path": dg.MetadataValue.path(str(written.path)),
        "size_bytes": dg.MetadataValue.int(written.bytes),
        "columns": dg.MetadataValue.int(columns),
        "preview": markdown_table(head) if written.rows else dg.MetadataValue.md("(no rows)"),
        "provenance": dg.MetadataValue.json(provenance),
    }


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores assets as Parquet (zstd; chunks lz4) under `<data_dir>/<datastack>/v<version>/`."""

    data_dir: str
    datastack: str

    def path_for(
        self,
        asset_key: dg.AssetKey,
        partition_key: str | dg.MultiPartitionKey,
        suffix: str = ".parquet",
    ) -> UPath:
        """The file of one asset partition."""
        version, chunk = _version_and_chunk(partition_key)
        key = list(asset_key.path)
        return asset_path(self.data_dir, self.datastack, version, key, chunk, suffix)

    def handle_output(
        self, context: dg.OutputContext, obj: pd.DataFrame | Streamed | Connectome
    ) -> None:
        """Write the partition atomically and attach path, row count and a preview."""
        if isinstance(obj, Connectome):
            path = self.path_for(context.asset_key, context.partition_key, MATRIX_SUFFIX)
            written = write_connectome(obj, path)
            context.add_output_metadata(
                {
                    "path": dg.MetadataValue.path(str(written.path)),
                    "size_bytes": dg.MetadataValue.int(written.bytes),
                    "provenance": dg.MetadataValue.json(obj.provenance),
                }
            )
            return
        path = self.path_for(context.asset_key, context.partition_key)
        if isinstance(obj, Streamed):
            written = write_batches(obj, path)
            head = read_head(path, PREVIEW_ROWS) if written.rows else pd.DataFrame()
            metadata = _file_metadata(written, head, len(obj.reader.schema), obj.provenance)
            metadata.update(obj.later() if obj.later is not None else {})
        else:
            metadata = self.store(context.asset_key, context.partition_key, obj)
        context.add_output_metadata(metadata)

    def store(
        self, asset_key: dg.AssetKey, partition_key: str | dg.MultiPartitionKey, frame: pd.DataFrame
    ) -> dict[str, dg.MetadataValue]:
        """Write one partition now (for steps that write many partitions as they complete).

        Returns the metadata `handle_output` attaches: row count, path, size, preview,
        provenance (from `frame.attrs["provenance"]`).
        """
        provenance = dict(frame.attrs.get("provenance", {}))
        compression = FAST if tuple(asset_key.path) == tuple(SYNAPSE_CHUNKS.key) else COMPACT
        path = self.path_for(asset_key, partition_key)
        written = write_frame(frame, path, provenance, compression)
        return _file_metadata(written, frame.head(PREVIEW_ROWS), len(frame.columns), provenance)

    def describe(
        self, asset_key: dg.AssetKey, partition_key: str | dg.MultiPartitionKey, frame: pd.DataFrame
    ) -> dict[str, dg.MetadataValue]:
        """The metadata of a partition already stored, whose rows are `frame` (reused)."""
        path = self.path_for(asset_key, partition_key)
        written = Written(path, len(frame), path.stat().st_size)
        prov = frame.attrs.get("provenance", {})
        return _file_metadata(written, frame.head(PREVIEW_ROWS), len(frame.columns), prov)

    def reusable(
        self,
        asset_key: dg.AssetKey,
        partition_key: str | dg.MultiPartitionKey,
        expected: Mapping[str, object],
    ) -> tuple[pd.DataFrame | None, str]:
        """A partition's stored rows if they can stand in for new ones (`storage.reuse`)."""
        return reusable(self.path_for(asset_key, partition_key), expected)

    def read(self, asset_key: dg.AssetKey, partition_key: str) -> pd.DataFrame:
        """One stored partition (for a step spanning several versions, which reads each)."""
        return read_frame(self.path_for(asset_key, partition_key))

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | Connectome | dict[str, UPath]:
        """The upstream partition of the same version, or all its chunk files."""
        keys = context.asset_partition_keys
        if len(keys) == 1 and not isinstance(keys[0], dg.MultiPartitionKey):
            if tuple(context.asset_key.path) in MATRIX_KEYS:
                return read_connectome(self.path_for(context.asset_key, keys[0], MATRIX_SUFFIX))
            return read_frame(self.path_for(context.asset_key, keys[0]))
        paths = {
            key.keys_by_dimension[CHUNK_DIM]: self.path_for(context.asset_key, key) for key in keys
        }
        missing = sorted(chunk for chunk, path in paths.items() if not path.exists())
        if missing:
            raise MissingDataError(
                f"{context.asset_key.to_user_string()}: chunk(s) {missing} are not materialized "
                "yet; materialize them first (backfill the missing partitions)."
            )
        return dict(sorted(paths.items()))
