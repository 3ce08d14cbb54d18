"""`microns_assets.analysis` filters on small frames whose answers are read off by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from microns_assets.analysis import (
    connections_from,
    connections_to,
    filter_connections,
    filter_neurons,
    remove_autapses,
    synapses_by_id,
)

#: Six cells; each row's comment says what makes it special.
UNITS = pd.DataFrame(
    {
        "pt_root_id": [11, 12, 13, 14, 15, 16],
        "layer": ["L2/3", "L2/3", "L4", "L5", "L5", None],
        "brain_area": ["V1", "AL", "V1", "V1", "RL", "V1"],
        "classification_system": ["excitatory_neuron", "excitatory_neuron", "inhibitory_neuron",
                                  "excitatory_neuron", "inhibitory_neuron", "nonneuron"],
        "cell_type": ["23P", "23P", "BC", "5P-IT", "MC", "astrocyte"],
        "strategy_axon": ["axon_fully_extended", "none", "axon_partially_extended",
                          "axon_column_truncated", "none", None],
        "strategy_dendrite": ["dendrite_extended", "dendrite_clean", "none", "dendrite_clean",
                              "none", None],
        "tuning_type": ["matched", "not_matched", "matched", "not_matched", "not_matched",
                        "not_matched"],
    }
)  # fmt: skip
SYNAPSES = pd.DataFrame(
    {
        "pre_pt_root_id": [11, 11, 12, 13, 14, 14, 99],
        "post_pt_root_id": [12, 11, 13, 11, 15, 12, 11],
        "size": [100, 50, 70, 30, 20, 10, 5],
        "n_synapses": [2, 1, 1, 3, 1, 1, 1],
    }
)


def roots(frame: pd.DataFrame) -> list[int]:
    return frame["pt_root_id"].tolist()


def pairs(frame: pd.DataFrame) -> list[tuple[int, int]]:
    return list(zip(frame["pre_pt_root_id"], frame["post_pt_root_id"], strict=True))


def test_no_filter_keeps_every_unit_in_order():
    assert roots(filter_neurons(UNITS)) == [11, 12, 13, 14, 15, 16]


def test_one_value_or_a_list_per_property_and_properties_combine():
    assert roots(filter_neurons(UNITS, layer="L5")) == [14, 15]
    assert roots(filter_neurons(UNITS, layer=["L2/3", "L4"])) == [11, 12, 13]
    assert roots(filter_neurons(UNITS, layer="L2/3", brain_area="V1")) == [11]
    assert roots(filter_neurons(UNITS, brain_area="V1", tuning="matched")) == [11, 13]
    assert roots(filter_neurons(UNITS, layer="L1")) == []  # nothing matches: empty, no error


def test_cell_type_takes_cell_types_and_classification_systems():
    assert roots(filter_neurons(UNITS, cell_type="23P")) == [11, 12]
    # the peer's meaning: a classification system given as cell_type
    assert roots(filter_neurons(UNITS, cell_type="inhibitory_neuron")) == [13, 15]
    assert roots(filter_neurons(UNITS, cell_type=["BC", "excitatory_neuron"])) == [11, 12, 13, 14]
    assert roots(filter_neurons(UNITS, classification_system="nonneuron")) == [16]


def test_proofreading_shorthands_and_the_fixed_ax_extended():
    assert roots(filter_neurons(UNITS, proofread="ax_non")) == [12, 15]
    assert roots(filter_neurons(UNITS, proofread="ax_clean")) == [11, 13, 14]
    # fully extended axons only (microns-combiner 0.4.0 keeps 12, 13, 14, 15 here)
    assert roots(filter_neurons(UNITS, proofread="ax_extended")) == [11]
    assert roots(filter_neurons(UNITS, proofread="dn_clean")) == [11, 12, 14]
    assert roots(filter_neurons(UNITS, proofread="dn_extended")) == [11]
    assert roots(filter_neurons(UNITS, proofread=["ax_clean", "dn_clean"])) == [11, 14]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"layer": "L7"}, "unknown layer ['L7']"),
        ({"cell_type": "pyramidal"}, "unknown cell_type ['pyramidal']"),
        ({"proofread": "ax_full"}, "unknown proofread ['ax_full']"),
        ({"tuning": "tuned"}, "unknown tuning ['tuned']"),
        ({"brain_area": ["V1", "V9"]}, "unknown brain_area ['V9']"),
    ],
)
def test_an_unknown_value_is_an_error_naming_the_allowed_ones(kwargs, named):
    with pytest.raises(ValueError, match=r"use any of \[") as caught:
        filter_neurons(UNITS, **kwargs)
    assert named in str(caught.value)


def test_synapses_by_id_one_side_both_sides_and_either():
    pre = synapses_by_id(SYNAPSES, pre_ids=[11])
    assert pre["post_pt_root_id"].tolist() == [12, 11]
    post = synapses_by_id(SYNAPSES, post_ids=pd.Series([11]))
    assert post["pre_pt_root_id"].tolist() == [11, 13, 99]
    both = synapses_by_id(SYNAPSES, pre_ids=[11, 14], post_ids=[12])
    assert pairs(both) == [(11, 12), (14, 12)]
    either = synapses_by_id(SYNAPSES, pre_ids=[13], post_ids=[15], both=False)
    assert pairs(either) == [(13, 11), (14, 15)]
    assert synapses_by_id(SYNAPSES) is SYNAPSES


def test_filter_connections_applies_pre_and_post_filters():
    # excitatory pre cells onto inhibitory post cells: 12->13 and 14->15
    found = filter_connections(
        UNITS, SYNAPSES, cell_type=["excitatory_neuron", "inhibitory_neuron"]
    )
    assert pairs(found) == [(12, 13), (14, 15)]
    # pre in L2/3 (11, 12), post in V1 (11, 13, 14, 16): 11->12 goes to AL, left out
    found = filter_connections(UNITS, SYNAPSES, layer=["L2/3", None], brain_area=[None, "V1"])
    assert pairs(found) == [(11, 11), (12, 13)]
    with pytest.raises(ValueError, match=r"layer takes \[pre, post\]"):
        filter_connections(UNITS, SYNAPSES, layer="L5")


def test_autapses_and_partners():
    assert len(remove_autapses(SYNAPSES)) == len(SYNAPSES) - 1  # 11 -> 11
    assert sorted(connections_to(11, SYNAPSES)) == [11, 13, 99]
    assert sorted(connections_from(14, SYNAPSES)) == [12, 15]
    rows = connections_from(14, SYNAPSES, only_id=False)
    assert rows["size"].tolist() == [20, 10]


def test_the_dtypes_load_gives_filter_the_same():
    """`load` gives nullable ids (`Int64`) and `string` columns; missing values never match."""
    typed = UNITS.astype({c: "string" for c in UNITS.columns if c != "pt_root_id"})
    typed["pt_root_id"] = typed["pt_root_id"].astype("Int64")
    assert roots(filter_neurons(typed, layer=["L5", "L4"], cell_type="inhibitory_neuron")) == [
        13,
        15,
    ]
    assert roots(filter_neurons(typed, proofread="dn_non")) == [13, 15]  # 16's <NA> is no match
    # axon-proofread pre cells (11, 13, 14) onto dendrite-proofread post cells (11, 12, 14)
    found = filter_connections(typed, SYNAPSES, proofread=["ax_clean", "dn_clean"])
    assert pairs(found) == [(11, 12), (11, 11), (13, 11), (14, 12)]
