"""Refreshes: what runs without a click once turned on.

- `versions.py`: which CAVE versions are new, which to download, the sensor's cursor (no Dagster).
- `versions_sensor.py`: the `cave_versions` sensor that adds new versions to `mat_version`.
- `conditions.py`: the automation condition that carries a version from raw tables to synapses,
  and the automation sensor that evaluates it.
- `schedules.py`: the periodic refresh of the newest known version.

Every sensor and schedule here starts STOPPED: each one downloads from CAVE once turned on.
Nothing here is imported by this package's `__init__`, so asset modules can import
`conditions.py` without pulling in the jobs.
"""
