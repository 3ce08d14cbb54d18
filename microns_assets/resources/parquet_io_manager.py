"""`ParquetIOManager`: the one place assets are stored and loaded (see `storage/parquet.py`)."""

import dagster as dg
import pandas as pd
from upath import UPath

from microns_assets.partitions import CHUNK_DIM, VERSION_DIM
from microns_assets.storage import asset_path, read_frame, write_frame

PREVIEW_ROWS = 8


def _version_and_chunk(key: str | dg.MultiPartitionKey) -> tuple[str, str | None]:
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[VERSION_DIM], dims[CHUNK_DIM]
    return key, None


class ParquetIOManager(dg.ConfigurableIOManager):
    """Stores DataFrames as zstd Parquet under `<data_dir>/<datastack>/v<version>/`."""

    data_dir: str
    datastack: str

    def path_for(self, asset_key: dg.AssetKey, partition_key: str | dg.MultiPartitionKey) -> UPath:
        """The file of one asset partition."""
        version, chunk = _version_and_chunk(partition_key)
        return asset_path(self.data_dir, self.datastack, version, list(asset_key.path), chunk)

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        """Write the partition atomically and attach path, row count and a preview."""
        path = self.path_for(context.asset_key, context.partition_key)
        provenance = dict(obj.attrs.get("provenance", {}))
        written = write_frame(obj, path, provenance)
        preview = obj.head(PREVIEW_ROWS).to_markdown(index=False) if len(obj) else "(no rows)"
        context.add_output_metadata(
            {
                "dagster/row_count": dg.MetadataValue.int(written.rows),
                "path": dg.MetadataValue.path(str(written.path)),
                "size_bytes": dg.MetadataValue.int(written.bytes),
                "columns": dg.MetadataValue.int(len(obj.columns)),
                "preview": dg.MetadataValue.md(preview),
                "provenance": dg.MetadataValue.json(provenance),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        """Read the upstream partition of the same version."""
        path = self.path_for(context.asset_key, context.asset_partition_key)
        return read_frame(path)
