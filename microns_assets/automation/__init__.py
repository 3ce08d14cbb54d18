"""Refreshes: what runs without a click once turned on.

- `versions.py`: which CAVE versions are new, which to download, the sensor's cursor (no Dagster).
- `versions_sensor.py`: the `cave_versions` sensor that adds new versions to `mat_version`.
- `conditions.py`: the automation sensor that evaluates `CARRY_DOWN` (`carry_down.py`, outside
  this package: the asset modules carry it, and this package imports the jobs, which import
  the assets).
- `schedules.py`: the periodic refresh of the newest known version.

Every sensor and schedule here starts STOPPED: each one downloads from CAVE once turned on.
"""
