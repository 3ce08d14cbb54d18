"""`build_units` on small hand-built tables: every step and functional mode, exact values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import standard_transform

from microns_assets.processing import InputTableError, build_units

# Voxel positions chosen so the standard transform puts them at distinct cortical depths.
POS = {
    1: (200_000, 120_000, 20_000),
    2: (210_000, 150_000, 21_000),
    3: (220_000, 160_000, 22_000),
    4: (230_000, 170_000, 20_500),
    5: (240_000, 180_000, 20_600),
    6: (250_000, 190_000, 20_700),
    7: (260_000, 200_000, 20_800),
    8: (270_000, 230_000, 20_900),
}
ROOTS = {1: 101, 2: 102, 3: 0, 4: 104, 5: 104, 6: 106, 7: 107, 8: 108}


def nucleus(nullable: bool = True) -> pd.DataFrame:
    ids = list(POS)
    frame = pd.DataFrame(
        {
            "id": ids,
            "volume": [100.0] * len(ids),
            "pt_position_x": [POS[i][0] for i in ids],
            "pt_position_y": [POS[i][1] for i in ids],
            "pt_position_z": [POS[i][2] for i in ids],
            "pt_supervoxel_id": [7 * 10**16 + i for i in ids],
            "pt_root_id": [ROOTS[i] for i in ids],
        }
    )
    if nullable:
        frame = frame.astype({"id": "Int64", "pt_root_id": "Int64", "pt_position_x": "Int32"})
    return frame


def reference(rows: list[dict], nullable: bool = True) -> pd.DataFrame:
    """A reference table in caveclient's joined form (own id, target_id, nucleus root)."""
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", range(1, len(frame) + 1))
    frame["pt_root_id"] = [ROOTS[t] for t in frame["target_id"]]
    if nullable:
        frame = frame.astype({"id": "Int64", "target_id": "Int64", "pt_root_id": "Int64"})
        for c in frame.columns:
            if frame[c].dtype == object:
                frame[c] = frame[c].astype("string")
    return frame


def tables(nullable: bool = True) -> dict[str, pd.DataFrame]:
    types = [
        (1, "excitatory_neuron", "23P"), (2, "inhibitory_neuron", "BC"),
        (3, "excitatory_neuron", "4P"), (4, "excitatory_neuron", "4P"),
        (5, "excitatory_neuron", "5P-IT"), (7, "excitatory_neuron", "6P-IT"),
        (8, "excitatory_neuron", "5P-IT"),
    ]  # fmt: skip
    areas = [(1, "V1"), (2, "RL"), (3, "V1"), (4, "V1"), (5, "V1"), (6, "AL"), (8, "AL")]
    proof = pd.DataFrame(
        {
            "id": [1, 2],
            "valid_id": [101, 999],
            "pt_root_id": [101, 999],
            "status_axon": [True, True],
            "status_dendrite": [True, False],
            "strategy_axon": ["axon_fully_extended", "axon_column_truncated"],
            "strategy_dendrite": ["dendrite_clean", "none"],
        }
    )
    func = [
        dict(target_id=1, session=4, scan_idx=7, unit_id=11, pref_ori=0.1, pref_dir=0.2,
             gOSI=0.5, gDSI=0.1, cc_abs=0.3),
        dict(target_id=1, session=5, scan_idx=3, unit_id=12, pref_ori=1.1, pref_dir=1.2,
             gOSI=0.6, gDSI=0.2, cc_abs=0.8),
        dict(target_id=8, session=6, scan_idx=2, unit_id=13, pref_ori=2.1, pref_dir=2.2,
             gOSI=0.7, gDSI=0.3, cc_abs=0.5),
        dict(target_id=3, session=6, scan_idx=2, unit_id=14, pref_ori=0.0, pref_dir=0.0,
             gOSI=0.0, gDSI=0.0, cc_abs=0.9),  # root 0: ignored
    ]  # fmt: skip
    coreg = [
        dict(target_id=1, session=4, scan_idx=7, unit_id=11, field=1, residual=1.0, score=5.0),
        dict(target_id=2, session=9, scan_idx=4, unit_id=21, field=2, residual=2.0, score=6.0),
    ]
    return {
        "nucleus": nucleus(nullable),
        "cell_types": reference(
            [dict(target_id=t, classification_system=c, cell_type=k) for t, c, k in types],
            nullable,
        ),
        "brain_areas": reference([dict(target_id=t, tag=a, value=1.0) for t, a in areas], nullable),
        "proofreading": proof,
        "functional_properties": reference(func, nullable),
        "coregistration": reference(coreg, nullable),
    }


def microns(nucleus_id: int) -> np.ndarray:
    """The seed's per-point transform of one nucleus position (independent of ours)."""
    transform = standard_transform.minnie_transform(resolution="vx")
    return np.ravel(transform.apply(np.array(POS[nucleus_id], dtype=float)))


def test_joins_filters_and_column_order():
    units, _ = build_units(tables(), version=1300, l23_threshold=1)
    # 3: root 0; 4 and 5: same root; 6: no cell type; 7: no brain area
    assert units["nucleus_id"].tolist() == [1, 2, 8]
    assert list(units.columns) == [
        "nucleus_id", "pt_root_id", "pt_position_x", "pt_position_y", "pt_position_z",
        "classification_system", "cell_type", "brain_area", "strategy_axon",
        "strategy_dendrite", "tuning_type", "layer",
    ]  # fmt: skip
    assert units["pt_root_id"].tolist() == [101, 102, 108]
    assert units["cell_type"].tolist() == ["23P", "BC", "5P-IT"]
    assert units["brain_area"].tolist() == ["V1", "RL", "AL"]
    assert units["strategy_axon"].tolist() == ["axon_fully_extended", "none", "none"]
    assert units["strategy_dendrite"].tolist() == ["dendrite_clean", "none", "none"]
    assert units["tuning_type"].tolist() == ["not_matched"] * 3
    for row, nid in enumerate([1, 2, 8]):
        got = units.loc[row, ["pt_position_x", "pt_position_y", "pt_position_z"]].to_numpy(float)
        assert np.allclose(got, microns(nid), rtol=0, atol=1e-9)
    assert units.index.tolist() == [0, 1, 2]


def test_numpy_and_nullable_inputs_give_the_same_table():
    a, sa = build_units(tables(nullable=True), version=1300, l23_threshold=1)
    b, sb = build_units(tables(nullable=False), version=1300, l23_threshold=1)
    pd.testing.assert_frame_equal(a.astype(object), b.astype(object), check_dtype=False)
    pd.testing.assert_frame_equal(sa, sb)


def test_best_only_keeps_the_highest_cc_abs_per_nucleus():
    units, _ = build_units(tables(), version=1300, functional="best_only", l23_threshold=1)
    assert units["nucleus_id"].tolist() == [1, 2, 8]
    assert units["unit_id"].tolist()[0] == 12 and units["unit_id"].tolist()[2] == 13
    assert pd.isna(units["unit_id"].iloc[1])
    assert units["cc_abs"].tolist()[0] == 0.8
    assert units["tuning_type"].tolist() == ["matched", "not_matched", "matched"]
    assert list(units.columns)[10:] == [
        "session", "scan_idx", "unit_id", "pref_ori", "pref_dir", "gOSI", "gDSI", "cc_abs",
        "tuning_type", "layer",
    ]  # fmt: skip


def test_all_keeps_every_scan():
    units, _ = build_units(tables(), version=1300, functional="all", l23_threshold=1)
    assert units["nucleus_id"].tolist() == [1, 1, 2, 8]
    assert units["functional_unit_id"].tolist()[:2] == [11, 12]
    assert "unit_id" not in units
    assert units["tuning_type"].tolist() == ["matched", "matched", "not_matched", "matched"]


def test_match_adds_coregistration_ids():
    units, _ = build_units(tables(), version=1300, functional="match", l23_threshold=1)
    assert units["nucleus_id"].tolist() == [1, 2, 8]
    assert units["session"].tolist()[:2] == [4, 9]
    assert units["functional_unit_id"].tolist()[:2] == [11, 21]
    assert units["tuning_type"].tolist() == ["matched", "matched", "not_matched"]
    assert list(units.columns)[10:] == [
        "session", "scan_idx", "functional_unit_id", "tuning_type", "layer",
    ]  # fmt: skip


@pytest.mark.parametrize("mode", ["none", "all"])
def test_corrections_overwrite_by_nucleus_latest_first(mode):
    t = tables()
    t["cell_type_corrections"] = pd.DataFrame(
        {
            "id": [9, 5, 7],
            "target_id": [8, 8, 1],
            "classification_system": ["excitatory_neuron", "excitatory_neuron", "nonneuron"],
            "cell_type": ["5P-ET", "5P-NP", "astrocyte"],
        }
    )
    units, _ = build_units(t, version=1718, functional=mode, l23_threshold=1)
    by_nucleus = units.drop_duplicates("nucleus_id").set_index("nucleus_id")
    assert by_nucleus.loc[8, "cell_type"] == "5P-ET"  # id 9 is later than id 5
    assert by_nucleus.loc[1, "cell_type"] == "astrocyte"
    assert by_nucleus.loc[1, "classification_system"] == "nonneuron"
    assert by_nucleus.loc[2, "cell_type"] == "BC"  # uncorrected
    assert (units[units["nucleus_id"] == 1]["cell_type"] == "astrocyte").all()


def test_missing_proofreading_means_none_strategies():
    t = tables()
    del t["proofreading"]
    units, _ = build_units(t, version=1300, l23_threshold=1)
    assert set(units["strategy_axon"]) == {"none"}


def test_every_unit_gets_a_layer_including_the_deepest():
    units, segments = build_units(tables(), version=1300, l23_threshold=1)
    assert units["layer"].notna().all()
    deepest = units["pt_position_y"].idxmax()
    assert units.loc[deepest, "layer"] == segments["layer"].iloc[-1]


@pytest.mark.parametrize(
    ("role", "change", "message"),
    [
        ("cell_types", lambda f: f.drop(columns="cell_type"),
         "'cell_types' table has no column 'cell_type'"),
        ("nucleus", lambda f: f.astype({"pt_root_id": "float64"}),
         "'pt_root_id' of the 'nucleus' table has dtype float64"),
        ("brain_areas", lambda f: f.astype({"tag": "int64"}, errors="ignore").assign(tag=1),
         "'tag' of the 'brain_areas' table has dtype int64"),
        ("cell_types", lambda f: f.iloc[0:0], "'cell_types' table is empty"),
        ("cell_types", lambda f: None, "'cell_types' table is required"),
    ],
)  # fmt: skip
def test_malformed_inputs_name_the_table_and_column(role, change, message):
    t = tables()
    t[role] = change(t[role])
    with pytest.raises(InputTableError, match=message):
        build_units(t, version=1300)


def test_functional_mode_without_its_table_says_which():
    t = tables()
    del t["functional_properties"]
    with pytest.raises(InputTableError, match="'functional_properties' table is required"):
        build_units(t, version=117, functional="best_only")
    with pytest.raises(ValueError, match="functional must be one of"):
        build_units(tables(), version=1300, functional="best")


@pytest.mark.parametrize(
    ("role", "change"),
    [
        ("cell_types", lambda f: f.assign(target_id=f["target_id"] + 10**9)),  # other ids
        ("nucleus", lambda f: f.assign(pt_root_id=0)),  # no root id anywhere
    ],
)
def test_inputs_that_leave_no_unit_say_so(role, change):
    t = tables()
    t[role] = change(t[role])
    with pytest.raises(InputTableError, match="no units: of the nucleus table's"):
        build_units(t, version=1300)
