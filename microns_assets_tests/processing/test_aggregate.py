"""`aggregate` against pandas' own groupby, on 64-bit root ids such as MICrONS uses."""

import numpy as np
import pandas as pd

from microns_assets.processing.synapses import aggregate


def test_aggregate_equals_a_sorted_groupby_on_64_bit_ids():
    rng = np.random.default_rng(7)
    cells = rng.integers(2**62, 2**63 - 1, 300, dtype=np.int64)  # beyond float precision
    cells[:2] = [2**63 - 1, 2**63 - 2]  # neighbours a float64 cannot tell apart
    n = 5_000
    rows = pd.DataFrame(
        {
            "pre_pt_root_id": pd.array(rng.choice(cells, n), dtype="Int64"),
            "post_pt_root_id": pd.array(rng.choice(cells[:40], n), dtype="Int64"),
            "size": pd.array(rng.integers(1, 10_000, n), dtype="Int64"),
        }
    )
    expected = (
        rows.astype("int64")
        .groupby(["pre_pt_root_id", "post_pt_root_id"], sort=True)["size"]
        .agg(size="sum", n_synapses="count")
        .reset_index()
    )
    got = aggregate(rows)
    assert len(got) < n  # pairs repeat, so rows were really summed
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert (got.dtypes == "int64").all()


def test_aggregate_of_no_rows_is_empty():
    rows = pd.DataFrame({c: pd.array([], dtype="Int64") for c in
                         ("pre_pt_root_id", "post_pt_root_id", "size")})  # fmt: skip
    got = aggregate(rows)
    assert len(got) == 0
    assert list(got.columns) == ["pre_pt_root_id", "post_pt_root_id", "size", "n_synapses"]
