"""`duplicated_rows` counts exactly what `DataFrame.duplicated` counts, sorted or not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microns_assets.synapses.checks import duplicated_rows

KEYS = ["pre_pt_root_id", "post_pt_root_id"]


def _pairs(n: int, repeats: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pre = rng.integers(2**60, 2**60 + 300, n)
    post = rng.integers(2**60, 2**60 + 300, n)
    frame = pd.DataFrame({"pre_pt_root_id": pre, "post_pt_root_id": post})
    frame = frame.drop_duplicates(ignore_index=True)
    return pd.concat([frame, frame.sample(repeats, random_state=seed)], ignore_index=True)


@pytest.mark.parametrize("repeats", [0, 1, 57])
@pytest.mark.parametrize("order", ["sorted", "shuffled", "sorted by post"])
def test_counts_as_pandas_does(repeats, order):
    frame = _pairs(5_000, repeats, seed=repeats)
    if order == "sorted":
        frame = frame.sort_values(KEYS, ignore_index=True)
    elif order == "sorted by post":  # sorted, but not by the keys in their order
        frame = frame.sort_values(KEYS[::-1], ignore_index=True)
    else:
        frame = frame.sample(frac=1, random_state=1, ignore_index=True)
    expected = int(frame.duplicated(subset=KEYS).sum())
    assert expected == repeats
    assert duplicated_rows(frame, KEYS) == expected


def test_one_key_missing_values_and_tiny_frames():
    ids = pd.DataFrame({"id": pd.array([5, 3, 5, None, None], dtype="Int64")})
    assert duplicated_rows(ids, ["id"]) == 2  # 5 again, and a second missing value
    assert duplicated_rows(ids.iloc[:1], ["id"]) == 0
    assert duplicated_rows(ids.iloc[:0], ["id"]) == 0
    assert duplicated_rows(pd.DataFrame({"id": [7, 7]}), ["id"]) == 1
