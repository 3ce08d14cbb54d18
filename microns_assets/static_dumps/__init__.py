"""Expired versions from CAVE's static dumps: download, read, join; no Dagster here.

CAVE retires materialization versions from its live API and publishes them as files (gzip CSV
plus a header file per table, see `microns_assets.emulator.static` for the layout). This package
downloads those files resumably (`download.py`), reads a table dump into exactly the frame the
live API gives (`tables.py`: same columns, dtypes and reference join).
"""
