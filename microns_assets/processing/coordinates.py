"""Voxel positions to µm in the MICrONS standard frame (pia at y = 0), with `standard_transform`.

`standard_transform` (and scipy under it) is imported on first use, not when the code location
loads. No Dagster imports.
"""

from __future__ import annotations

import numpy as np


def voxels_to_microns(voxels: np.ndarray) -> np.ndarray:
    """(n, 3) voxel positions of minnie65 to µm in the standard frame."""
    import standard_transform

    if len(voxels) == 0:
        return np.empty((0, 3))
    return standard_transform.minnie_transform(resolution="vx").apply(voxels)
