"""Connectome selection: the seed's filters (with its bugs fixed), samples, ids, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microns_assets.processing.selection import SelectionError, Side, select_roots


def units() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "nucleus_id": [1, 2, 3, 4, 5, 6],
            "pt_root_id": [16, 12, 13, 14, 15, 11],
            "layer": ["L2/3", "L2/3", "L4", "L5", "L6", "L1"],
            "brain_area": ["V1", "RL", "V1", "AL", "V1", "V1"],
            "classification_system": ["excitatory_neuron"] * 4 + ["nonneuron", "inhibitory_neuron"],
            "cell_type": ["23P", "23P", "4P", "5P-IT", "oligo", "NGC"],
            "strategy_axon": ["axon_fully_extended", "axon_partially_extended", "none", "none",
                              "none", "axon_column_truncated"],
            "strategy_dendrite": ["dendrite_extended", "dendrite_clean", "none", "none", "none",
                                  "dendrite_extended"],
            "tuning_type": ["matched", "not_matched", "matched", "not_matched", "not_matched",
                            "not_matched"],
        }
    )  # fmt: skip


@pytest.mark.parametrize(
    ("side", "expected"),
    [
        (Side(), [11, 12, 13, 14, 15, 16]),
        (Side(layer=("L2/3",)), [12, 16]),
        (Side(layer=("L2/3", "L4"), brain_area=("V1",)), [13, 16]),
        (Side(classification_system=("excitatory_neuron",)), [12, 13, 14, 16]),
        (Side(cell_type=("23P", "NGC")), [11, 12, 16]),
        (Side(proofread=("ax_non",)), [13, 14, 15]),
        (Side(proofread=("ax_clean",)), [11, 12, 16]),
        (Side(proofread=("ax_extended",)), [16]),  # the seed selected the opposite
        (Side(proofread=("dn_clean",)), [11, 12, 16]),
        (Side(proofread=("dn_extended",)), [11, 16]),
        (Side(proofread=("ax_clean", "dn_extended")), [11, 16]),
        (Side(tuning="matched"), [13, 16]),
        (Side(root_ids=(14, 12)), [12, 14]),
    ],
)
def test_filters(side, expected):
    assert select_roots(units(), side).tolist() == expected


def test_sample_is_seeded_and_sized():
    a = select_roots(units(), Side(sample=3, sample_seed=1))
    assert a.size == 3 and np.array_equal(a, select_roots(units(), Side(sample=3, sample_seed=1)))
    assert set(a) <= {11, 12, 13, 14, 15, 16}
    others = {tuple(select_roots(units(), Side(sample=3, sample_seed=s))) for s in range(10)}
    assert len(others) > 1


def test_everything_and_description():
    assert Side().is_everything() and Side(sample_seed=3).is_everything()
    assert not Side(layer=("L4",)).is_everything()
    assert Side(layer=("L4",), sample=2).describe() == {
        "layer": ["L4"],
        "sample": 2,
        "sample_seed": 0,
    }


@pytest.mark.parametrize(
    ("side", "message"),
    [
        (Side(layer=("L7",)), "unknown layer"),
        (Side(proofread=("ax_great",)), "unknown proofread"),
        (Side(tuning="tuned"), "unknown tuning"),
        (Side(layer=("L1",), classification_system=("excitatory_neuron",)), "matches no unit"),
        (Side(sample=99), "a sample of 99"),
        (Side(root_ids=(99,)), "not units"),
    ],
)
def test_bad_selections_are_clear_errors(side, message):
    with pytest.raises(SelectionError, match=message):
        select_roots(units(), side)
