"""Voxel positions to µm in the MICrONS standard frame (pia at y = 0).

The map is `standard_transform`'s minnie65 transform at voxel resolution
(`standard_transform.minnie_transform(resolution="vx")`, as the seed uses it), written out as
the affine map it is: voxels times the voxel size (4, 4, 40 nm), rotated 5° about z, moved
396,671.03 nm up in y, in µm. Written out because importing `standard_transform` imports most of
scipy (~0.3 s of every run that builds units); `test_coordinates` checks it against the library
itself. No Dagster imports.
"""

from __future__ import annotations

import numpy as np

VOXEL_NM = np.array([4.0, 4.0, 40.0])
_ANGLE = np.deg2rad(5.0)
#: Rotation by 5° about z, applied to row vectors (`points @ ROTATION.T`).
ROTATION = np.array(
    [
        [np.cos(_ANGLE), -np.sin(_ANGLE), 0.0],
        [np.sin(_ANGLE), np.cos(_ANGLE), 0.0],
        [0.0, 0.0, 1.0],
    ]
)
TRANSLATE_NM = np.array([0.0, -396671.03221028, 0.0])


def voxels_to_microns(voxels: np.ndarray) -> np.ndarray:
    """(n, 3) voxel positions of minnie65 to µm in the standard frame."""
    voxels = np.asarray(voxels, dtype=float)
    if len(voxels) == 0:
        return np.empty((0, 3))
    return ((voxels * VOXEL_NM) @ ROTATION.T + TRANSLATE_NM) / 1000.0
