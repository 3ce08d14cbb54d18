"""`emulator.query`: the column index picks exactly the rows whose key is wanted."""

import numpy as np
import pyarrow as pa

from microns_assets.emulator.query import _Index


def test_the_index_finds_every_row_of_the_wanted_keys_in_table_order_or_any():
    rng = np.random.default_rng(11)
    keys = rng.integers(0, 50, 2000)  # many rows a key, some keys absent
    index = _Index(pa.chunked_array([keys[:700], keys[700:]]))
    wanted = np.array([3, 3, 17, 49, 1000, 0])  # repeated and unknown keys too
    truth = np.flatnonzero(np.isin(keys, wanted))
    assert truth.size > 0
    np.testing.assert_array_equal(index.rows(wanted), truth)  # table order, as a scan gives
    unordered = index.rows(wanted, ordered=False)
    np.testing.assert_array_equal(np.sort(unordered), truth)  # the same rows, each once
    assert index.rows(np.array([1000])).size == 0
