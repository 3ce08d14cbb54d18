"""Reference-table annotations whose target was deleted: dropped by the join, counted, never lost.

The server counts a reference table's own rows but its join drops annotations whose target no
longer exists, so the joined rows fall short of the count without any row being lost.
"""

from __future__ import annotations

import pytest

from microns_assets.cave import fetch_verified
from microns_assets.cave.errors import RowsLostError
from microns_assets.emulator import Faults
from microns_assets_tests.conftest import DELETED_NUCLEI, connect

REF = "aibs_metamodel_celltypes_v661"
NUCLEUS = "nucleus_detection_v0"


@pytest.fixture(scope="module")
def truth(_orphan_emulator) -> tuple[set[int], set[int]]:
    """(ids of annotations whose target exists, ids of orphans), from the stored tables."""
    ref = _orphan_emulator.ground_truth(1300, REF)
    nuclei = set(_orphan_emulator.ground_truth(1300, NUCLEUS)["id"].astype("int64"))
    has_target = ref["target_id"].astype("int64").isin(nuclei)
    ids = ref["id"].astype("int64")
    return set(ids[has_target]), set(ids[~has_target])


def test_orphans_are_dropped_named_and_the_rest_is_complete(orphan_emulator, truth):
    joinable, orphans = truth
    assert len(orphans) == DELETED_NUCLEI  # one cell type annotation per deleted nucleus
    orphan_emulator.server.row_cap = 500  # far below the table: split, never truncated
    conn = connect(orphan_emulator, row_cap=500)
    _ = conn.client
    orphan_emulator.server.stats.reset()
    reported = []
    result, count = fetch_verified(conn, 1300, REF, on_query=reported.append)
    # every row query the server saw was reported, the orphan downloads' included; the
    # other two were the counts of the table and of its target
    assert len(reported) == orphan_emulator.server.stats.queries - 2
    assert result.capped > 0
    ids = result.frame["id"].astype("int64")
    assert set(ids) == joinable and len(ids) == len(joinable)
    assert set(count.orphan_ids) == orphans
    assert count.table_rows == len(joinable) + len(orphans) == count.expected + len(orphans)
    nuclei = orphan_emulator.ground_truth(1300, NUCLEUS).set_index("id")["pt_root_id"]
    joined = result.frame.set_index("id")  # the target's columns came with the join
    assert (joined["pt_root_id"] == nuclei.loc[joined["target_id"]].to_numpy()).all()


def test_a_table_without_orphans_never_looks_for_them(orphan_emulator):
    _, count = fetch_verified(connect(orphan_emulator), 1300, NUCLEUS)
    assert count.orphan_ids == () and count.expected == count.table_rows
    assert count.table_rows == len(orphan_emulator.ground_truth(1300, NUCLEUS))


def test_a_lossy_server_with_orphans_gives_the_true_table_or_an_error(orphan_emulator, truth):
    joinable, orphans = truth
    outcomes = {"complete": 0, "refused": 0}
    for seed in range(8):  # about one row lost per answer of the whole table
        orphan_emulator.server.faults = Faults(lose_rate=0.0005, seed=seed)
        try:
            result, count = fetch_verified(connect(orphan_emulator), 1300, REF, attempts=3)
        except RowsLostError as err:
            assert "Nothing was stored" in str(err)
            outcomes["refused"] += 1
            continue
        assert set(result.frame["id"].astype("int64")) == joinable
        assert len(result.frame) == len(joinable) and set(count.orphan_ids) == orphans
        outcomes["complete"] += 1
    assert orphan_emulator.server.stats.rows_lost > 0  # rows really went missing on the way
    assert outcomes["complete"] > 0 and outcomes["refused"] > 0  # both paths taken


def test_rows_lost_beyond_the_orphans_are_an_error(orphan_emulator):
    orphan_emulator.server.faults = Faults(lose_rate=0.3, seed=1)
    with pytest.raises(RowsLostError, match="Nothing was stored"):
        fetch_verified(connect(orphan_emulator), 1300, REF, attempts=2)
