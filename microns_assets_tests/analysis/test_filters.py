"""`microns_assets.analysis` filters on small frames whose answers are read off by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from microns_assets.analysis import (
    connections_from,
    connections_to,
    filter_connections,
    filter_neurons,
    merge_table,
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


#: Two 64-bit root ids one apart: a float64 cannot tell them apart.
A, B = 864691135194387242, 864691135194387243


def test_synapse_ids_with_none_or_a_set_stay_exact():
    synapses = pd.DataFrame({"pre_pt_root_id": [A, B], "post_pt_root_id": [B, A]})
    assert float(A) == float(B)  # why a float on the way would lose the match
    assert synapses_by_id(synapses, pre_ids=[A, None])["pre_pt_root_id"].tolist() == [A]
    assert synapses_by_id(synapses, pre_ids={B})["pre_pt_root_id"].tolist() == [B]
    assert synapses_by_id(synapses, post_ids=A)["post_pt_root_id"].tolist() == [A]
    ids = pd.Series([B, None], dtype="Int64")
    assert synapses_by_id(synapses, pre_ids=ids)["pre_pt_root_id"].tolist() == [B]
    with pytest.raises(ValueError, match=r"pre_ids holds floats .* lose their last digits"):
        synapses_by_id(synapses, pre_ids=pd.Series([float(A), None]))
    with pytest.raises(ValueError, match="post_ids must be integer ids"):
        synapses_by_id(synapses, post_ids=["abc"])


def test_positional_arguments_in_microns_combiners_order():
    # filter_neurons(units, layer, brain_area, cell_type, tuning, proofread), as the peer's
    assert roots(filter_neurons(UNITS, None, "V1", None, "matched")) == [11, 13]
    assert roots(filter_neurons(UNITS, "L5", None, "MC", None, "ax_non")) == [15]


def test_filters_take_one_value_of_any_kind_and_name_missing_columns():
    assert filter_neurons(UNITS, tuning=["matched"])["pt_root_id"].tolist() == [11, 13]
    assert filter_neurons(UNITS, brain_area={"RL"})["pt_root_id"].tolist() == [15]
    with pytest.raises(ValueError, match=r"tuning.*''"):  # an empty value: not "no rows"
        filter_neurons(UNITS, tuning="")
    with pytest.raises(ValueError, match="tuning takes one value"):
        filter_neurons(UNITS, tuning=["matched", "not_matched"])
    with pytest.raises(ValueError, match=r"unknown layer|layer.*4"):
        filter_neurons(UNITS, layer=4)  # a number is one value, not an iterable
    without = UNITS.drop(columns=["brain_area"])
    with pytest.raises(ValueError, match=r"no column\(s\) \['brain_area'\].*\['brain_area'\]"):
        filter_neurons(without, brain_area="V1")
    assert len(filter_neurons(without, layer="L5")) == 2  # other filters need not it
    with pytest.raises(ValueError, match=r"no column\(s\) \['strategy_axon'\].*proofread"):
        filter_neurons(UNITS.drop(columns=["strategy_axon"]), proofread="ax_clean")
    dendrites_only = UNITS.drop(columns=["strategy_axon"])  # the axon filter is not asked
    assert roots(filter_neurons(dendrites_only, proofread="dn_extended")) == [11]


def test_merge_table_keeps_the_units_index_and_refuses_what_cannot_join():
    units = pd.DataFrame(
        {"nucleus_id": [1, 2, 3, 4], "pt_root_id": [A, B, A + 10, B + 10]}, index=[10, 11, 12, 13]
    )
    subset = units.loc[[11, 13]]  # a filtered units table
    table = pd.DataFrame({"target_id": [4, 2], "mtype": ["x", "y"]})
    left = merge_table(subset, table, ["mtype"])
    assert left.index.tolist() == [11, 13] and left["mtype"].tolist() == ["y", "x"]
    assert subset.assign(mtype=left["mtype"])["mtype"].tolist() == ["y", "x"]  # lines up
    inner = merge_table(units, table, ["mtype"], how="inner")
    assert (
        inner.index.tolist() == [11, 13] and inner["nucleus_id"].dtype == units["nucleus_id"].dtype
    )
    by_root = pd.DataFrame({"pt_root_id": pd.array([B], dtype="Int64"), "tag": ["t"]})
    tagged = merge_table(units, by_root, ["tag"], on="pt_root_id")
    assert tagged["tag"].notna().tolist() == [False, True, False, False]  # B only, not A
    floats = pd.DataFrame({"pt_root_id": [float(B)], "tag": ["t"]})
    with pytest.raises(ValueError, match="holds floats"):
        merge_table(units, floats, ["tag"], on="pt_root_id")
    on_synapses = pd.DataFrame(
        {"target_id": [2], "pre_pt_root_id": [A], "post_pt_root_id": [B], "tag": ["spine"]}
    )
    with pytest.raises(ValueError, match="references synapses, not nuclei"):
        merge_table(units, on_synapses, ["tag"])
