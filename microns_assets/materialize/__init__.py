"""The whole asset graph of one version from the command line (`microns-assets materialize`).

`plan` reads the instance to find what is not current, `worker` runs single Dagster runs in
worker processes, `dead_workers` marks the runs of killed workers failed, `driver` puts the
stages in order. Imported by the CLI only, never by assets.
"""

from microns_assets.materialize.driver import Report, materialize_version

__all__ = ["Report", "materialize_version"]
