"""The whole asset graph of one version from the command line (`microns-assets materialize`).

`stages` asks Dagster which runs a backfill of the version makes; `driver` executes them in
this process; `submit` hands the same backfill to the instance's daemon instead; `follow`
reads runs' event logs for the progress bar and failures; `validate` checks the input before
any run; `dead_workers` fails the runs of a killed `materialize`. Imported by the CLI only.
"""

from microns_assets.materialize.driver import Report, materialize_version

__all__ = ["Report", "materialize_version"]
