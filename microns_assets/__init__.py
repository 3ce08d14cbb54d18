"""microns_assets: the MICrONS mm3 dataset from CAVE as versioned, analysis-ready Dagster assets.

Importing the package does no work: no network, no file I/O.
"""

__version__ = "0.1.0"
