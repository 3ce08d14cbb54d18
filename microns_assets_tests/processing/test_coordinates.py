"""`processing.coordinates`: the written-out transform equals `standard_transform`'s own."""

import numpy as np
import standard_transform

from microns_assets.processing.coordinates import voxels_to_microns


def test_voxels_to_microns_is_the_standard_transform():
    rng = np.random.default_rng(11)
    # across and beyond minnie65's extent (~ 450k x 330k x 28k voxels), negatives included
    voxels = rng.uniform([-1e4, -1e4, -1e3], [5e5, 4e5, 3e4], size=(5000, 3)).round()
    library = standard_transform.minnie_transform(resolution="vx").apply(voxels)
    ours = voxels_to_microns(voxels)
    assert ours.shape == (5000, 3)
    np.testing.assert_allclose(ours, library, rtol=0, atol=1e-9)  # to the femtometre
    # integer voxels and one point as the library takes them
    one = np.array([[240_000, 160_000, 21_000]])
    np.testing.assert_allclose(
        voxels_to_microns(one),
        standard_transform.minnie_transform(resolution="vx").apply(one.astype(float)),
        rtol=0,
        atol=1e-9,
    )


def test_no_voxels_give_no_microns():
    assert voxels_to_microns(np.empty((0, 3))).shape == (0, 3)
