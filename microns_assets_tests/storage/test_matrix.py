"""The connectome's `.npz` file: exact round trip, one atomic file, clear errors on bad files."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from upath import UPath

from microns_assets.storage import (
    Connectome,
    CorruptFileError,
    MissingDataError,
    read_connectome,
    write_connectome,
)

ROOTS = [864691137199116097, 864691134884743674, 2**63 - 1]


def _connectome() -> Connectome:
    matrix = sp.csr_matrix(np.array([[0, 3, 0], [1, 0, 0], [0, 0, 7]], dtype=np.int64))
    return Connectome(matrix, pd.Index(ROOTS, name="pt_root_id"), {"version": 1300})


def test_matrix_index_and_provenance_round_trip_exactly(tmp_path):
    path = UPath(tmp_path) / "v1300" / "connectome.npz"
    written = write_connectome(_connectome(), path)
    assert written.rows == 3 and written.bytes == path.stat().st_size
    back = read_connectome(path)
    matrix, index = back  # unpacks as (matrix, index)
    assert (matrix != _connectome().matrix).nnz == 0 and matrix.dtype == np.int64
    assert index.tolist() == ROOTS and index.name == "pt_root_id"
    assert back.provenance == {"version": 1300}
    assert [p.name for p in path.parent.iterdir()] == ["connectome.npz"]  # no temporary left


def test_column_numbers_are_stored_as_is_the_rest_deflated_and_numpy_reads_it(tmp_path):
    rng = np.random.default_rng(3)
    n = 2000
    matrix = sp.random(n, n, density=0.01, format="csr", random_state=rng, dtype=np.float64)
    matrix.data = rng.integers(1, 4, matrix.nnz).astype(np.int64)
    path = UPath(tmp_path) / "connectome.npz"
    write_connectome(Connectome(matrix, pd.Index(np.arange(n)), {}), path)
    with zipfile.ZipFile(path) as z:
        kinds = {i.filename: i.compress_type for i in z.infolist()}
    assert kinds.pop("indices.npy") == zipfile.ZIP_STORED
    assert set(kinds.values()) == {zipfile.ZIP_DEFLATED}
    with np.load(path, allow_pickle=False) as npz:  # plain numpy reads both kinds of member
        np.testing.assert_array_equal(npz["indices"], matrix.indices)
        np.testing.assert_array_equal(npz["data"], matrix.data)
    assert (read_connectome(path).matrix != matrix).nnz == 0


def test_a_matrix_must_fit_its_index():
    with pytest.raises(ValueError, match="does not fit an index of 2 cells"):
        Connectome(sp.csr_matrix((3, 3)), pd.Index(ROOTS[:2]))


def test_missing_truncated_and_foreign_files_are_named(tmp_path):
    path = UPath(tmp_path) / "connectome.npz"
    with pytest.raises(MissingDataError):
        read_connectome(path)
    write_connectome(_connectome(), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CorruptFileError, match="Delete it and materialize"):
        read_connectome(path)
    np.savez(str(path.with_suffix("")), other=np.arange(3))  # a valid .npz, not ours
    with pytest.raises(CorruptFileError, match="not a connectome file"):
        read_connectome(path)
