"""Each quality rule passes on a good table and fails on a corrupted one."""

from __future__ import annotations

import pandas as pd
import pytest

from microns_assets.processing import quality


def good_units() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "nucleus_id": pd.array([1, 2, 3], dtype="Int64"),
            "pt_root_id": pd.array([11, 12, 13], dtype="Int64"),
            "cell_type": ["23P", "BC", "oligo"],
            "classification_system": ["excitatory_neuron", "inhibitory_neuron", "nonneuron"],
            "brain_area": ["V1", "RL", "AL"],
            "strategy_axon": ["none", "axon_fully_extended", "none"],
            "strategy_dendrite": ["none", "dendrite_clean", "none"],
            "layer": pd.array(["L2/3", "L4", "L6"], dtype="string"),
        }
    )


def good_segments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "layer": ["L1", "L2/3", "L4", "L5", "L6"],
            "region_index": [0] * 5,
            "y_start": [0.0, 70.0, 250.0, 360.0, 510.0],
            "y_end": [70.0, 250.0, 360.0, 510.0, 830.0],
            "height": [70.0, 180.0, 110.0, 150.0, 320.0],
        }
    )


@pytest.mark.parametrize(
    ("rule", "corrupt"),
    [
        (quality.unique_keys, lambda u: u.assign(pt_root_id=pd.array([11, 11, 13], dtype="Int64"))),
        (quality.unique_keys, lambda u: pd.concat([u, u.iloc[[0]].assign(pt_root_id=99)])),
        (quality.unique_keys, lambda u: pd.concat([u, u.iloc[[0]]])),
        (quality.no_zero_root, lambda u: u.assign(pt_root_id=pd.array([0, 12, 13], dtype="Int64"))),
        (quality.no_zero_root, lambda u: u.assign(pt_root_id=pd.array([None, 12, 13], dtype="Int64"))),  # noqa: E501
        (quality.value_sets, lambda u: u.assign(brain_area=["V1", "V2", "AL"])),
        (quality.value_sets, lambda u: u.assign(cell_type=["23P", "BC", "Oligo"])),
        (quality.value_sets, lambda u: u.assign(layer=["L2/3", "WM", "L6"])),
        (quality.layer_share, lambda u: u.assign(layer=pd.array([None, "L4", "L6"], dtype="string"))),  # noqa: E501
    ],
)  # fmt: skip
def test_unit_rules(rule, corrupt):
    assert rule(good_units()).passed
    outcome = rule(corrupt(good_units()))
    assert not outcome.passed and outcome.description


def test_functional_rows_per_scan_are_not_duplicates():
    units = pd.concat([good_units()] * 2, ignore_index=True)
    units["session"], units["scan_idx"] = 4, 7
    units["functional_unit_id"] = range(len(units))
    assert quality.unique_keys(units).passed


@pytest.mark.parametrize(
    ("rule", "corrupt"),
    [
        (quality.regions_well_formed, lambda s: s.iloc[[1, 0, 2, 3, 4]]),
        (quality.regions_well_formed, lambda s: s.assign(y_end=[70.0, 240.0, 360.0, 510.0, 830.0])),
        (quality.regions_well_formed, lambda s: s.assign(y_end=[70.0, 260.0, 360.0, 510.0, 830.0])),
        (quality.regions_well_formed, lambda s: s.assign(height=1.0)),
        (quality.regions_well_formed, lambda s: s.iloc[0:0]),
        (quality.all_layers_found, lambda s: s[s["layer"] != "L4"]),
    ],
)  # fmt: skip
def test_segment_rules(rule, corrupt):
    assert rule(good_segments()).passed
    assert not rule(corrupt(good_segments())).passed
