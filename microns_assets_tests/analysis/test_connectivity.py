"""Sequential ids and connectivity matrices, checked against a plain loop over the pairs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microns_assets.analysis import (
    connectivity_matrix,
    remap_all_tables,
    synapses_outside,
    unit_cells,
)
from microns_assets.analysis.connectivity import connectivity_with_outside

UNITS = pd.DataFrame({"pt_root_id": [30, 10, 20], "layer": ["L4", "L2/3", "L5"]})
#: aggregated (one row per pair) as `load("synapses", v)` gives it; 99 is not a unit
AGGREGATED = pd.DataFrame(
    {
        "pre_pt_root_id": [10, 10, 20, 30, 99, 20],
        "post_pt_root_id": [20, 30, 10, 30, 10, 99],
        "size": [500, 40, 70, 12, 9, 3],
        "n_synapses": [3, 1, 2, 1, 1, 1],
    }
)


def test_remap_gives_row_numbers_and_marks_outsiders():
    units, synapses = remap_all_tables(UNITS, AGGREGATED)
    assert units["id_remapped"].tolist() == [0, 1, 2]  # the order of UNITS: 30, 10, 20
    assert units["pt_root_id"].tolist() == [30, 10, 20]
    assert synapses["pre_id"].tolist()[:4] == [1, 1, 2, 0]
    assert synapses["post_id"].tolist()[:4] == [2, 0, 1, 0]
    assert synapses["pre_id"].isna().tolist() == [False] * 4 + [True, False]
    assert synapses["post_id"].isna().tolist() == [False] * 5 + [True]
    assert str(synapses["pre_id"].dtype) == "Int64"
    assert "pre_pt_root_id" not in synapses.columns and "id_remapped" not in UNITS.columns


def test_matrix_weights_in_the_order_of_units():
    matrix, index = connectivity_matrix(UNITS, AGGREGATED)
    assert index.tolist() == [30, 10, 20]
    # rows pre, columns post, in units' order 30, 10, 20; pairs with 99 left out
    assert matrix.toarray().tolist() == [[1, 0, 0], [1, 0, 3], [0, 2, 0]]
    sizes, _ = connectivity_matrix(UNITS, AGGREGATED, weight="size")
    assert sizes.toarray().tolist() == [[12, 0, 0], [40, 0, 500], [0, 70, 0]]
    binary, _ = connectivity_matrix(UNITS, AGGREGATED, weight="binary")
    assert binary.toarray().tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]


def test_an_individual_table_counts_its_rows():
    individual = pd.DataFrame(
        {"pre_pt_root_id": [10, 10, 10, 20], "post_pt_root_id": [20, 20, 30, 10],
         "size": [1, 2, 4, 8], "id": [1, 2, 3, 4]}
    )  # fmt: skip
    counts, _ = connectivity_matrix(UNITS, individual)
    assert counts.toarray().tolist() == [[0, 0, 0], [1, 0, 2], [0, 1, 0]]
    sizes, _ = connectivity_matrix(UNITS, individual, weight="size")
    assert sizes.toarray().tolist() == [[0, 0, 0], [4, 0, 3], [0, 8, 0]]


def test_random_tables_equal_a_loop_over_the_pairs():
    rng = np.random.default_rng(7)
    roots = rng.choice(np.arange(10**17, 10**17 + 10**6), size=400, replace=False)
    units = pd.DataFrame({"pt_root_id": rng.permutation(roots)})
    n = 5000
    synapses = pd.DataFrame(
        {
            "pre_pt_root_id": rng.choice(np.append(roots, [1, 2]), size=n),
            "post_pt_root_id": rng.choice(np.append(roots, [3]), size=n),
            "size": rng.integers(1, 1000, size=n),
        }
    )
    expected = np.zeros((400, 400))
    row = {root: i for i, root in enumerate(units["pt_root_id"])}
    for pre, post, size in synapses.itertuples(index=False):
        if pre in row and post in row:
            expected[row[pre], row[post]] += size
    matrix, index = connectivity_matrix(units, synapses, weight="size")
    assert index.tolist() == units["pt_root_id"].tolist()
    np.testing.assert_array_equal(matrix.toarray(), expected)


def test_bad_weight_and_duplicate_units_are_errors():
    with pytest.raises(ValueError, match=r"unknown weight 'count'; use one of"):
        connectivity_matrix(UNITS, AGGREGATED, weight="count")
    twice = pd.concat([UNITS, UNITS.iloc[[1]]])
    with pytest.raises(ValueError, match=r"1 pt_root_id\(s\) appear in more than one row"):
        connectivity_matrix(twice, AGGREGATED)
    with pytest.raises(ValueError, match="drop_duplicates"):
        remap_all_tables(twice, AGGREGATED)
    with pytest.raises(ValueError, match=r"weight='size' sums the `size` column"):
        connectivity_matrix(UNITS, AGGREGATED.drop(columns=["size"]), weight="size")


def test_nullable_ids_as_load_gives_them():
    units = UNITS.astype({"pt_root_id": "Int64"})
    matrix, index = connectivity_matrix(units, AGGREGATED)
    assert matrix.toarray().tolist() == [[1, 0, 0], [1, 0, 3], [0, 2, 0]]
    assert index.dtype == np.int64


def test_unit_cells_one_row_per_segment_in_order():
    units = pd.DataFrame(
        {
            "nucleus_id": [1, 2, 3, 4, 5],
            "pt_root_id": pd.array([30, 0, 10, 30, None], dtype="Int64"),
            "session": [4, 4, 5, 6, 6],
        }
    )
    cells = unit_cells(units)
    assert cells["nucleus_id"].tolist() == [1, 3]  # no segment (0, <NA>) out, first of 30 kept
    synapses = pd.DataFrame({"pre_pt_root_id": [30, 10, 99], "post_pt_root_id": [10, 77, 30]})
    index = pd.Index(cells["pt_root_id"].astype("int64"))
    assert synapses_outside(index, synapses).tolist() == [False, True, True]


def test_the_rows_a_matrix_leaves_out_are_those_with_a_partner_outside():
    units = pd.DataFrame({"pt_root_id": [30, 10, 20]})
    synapses = pd.DataFrame(
        {
            "pre_pt_root_id": [30, 10, 99, 20, 30],
            "post_pt_root_id": [10, 77, 30, 20, 10],
            "n_synapses": [2, 5, 1, 4, 3],
        }
    )
    matrix, index, left_out = connectivity_with_outside(units, synapses)
    assert left_out.tolist() == [False, True, True, False, False]
    assert left_out.tolist() == synapses_outside(index, synapses).tolist()
    # every synapse is in the matrix or left out, once
    assert matrix.sum() + synapses["n_synapses"][left_out].sum() == synapses["n_synapses"].sum()
    assert matrix.toarray().tolist() == [[0, 5, 0], [0, 0, 0], [0, 0, 4]]
