"""`synapses.connectome`: the roll-up takes the summary asked early only for the same question."""

import os

import numpy as np
import pandas as pd
import pytest
from upath import UPath

from microns_assets.processing.connectome import summarize_chunks
from microns_assets.processing.painter import painter
from microns_assets.storage import write_frame
from microns_assets.synapses import connectome

UNITS = pd.DataFrame(
    {
        "pt_root_id": [30, 10, 20, 0],  # (0: a unit without a segment, not a cell)
        "layer": ["L4", "L2/3", None, "L4"],
        "cell_type": ["23P", None, "BC", "23P"],
        "classification_system": ["excitatory", "excitatory", "inhibitory", None],
    }
)


def _write(path: UPath, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.array([10, 20, 30, 99])
    frame = pd.DataFrame(
        {"pre_pt_root_id": rng.choice(ids, 50), "post_pt_root_id": rng.choice(ids, 50)}
    )
    frame["size"] = rng.integers(1, 900, 50)
    write_frame(frame.astype("int64"), path, {})


@pytest.fixture
def files(tmp_path) -> list[UPath]:
    paths = [UPath(tmp_path) / f"{i:02d}.parquet" for i in range(3)]
    for seed, path in enumerate(paths):
        _write(path, seed)
    return paths


@pytest.fixture
def helper():
    painter().warm()
    yield painter()
    painter().close()
    connectome.forget_early(1300)


def test_the_roll_up_takes_the_answer_asked_early_for_the_same_files(files, helper):
    assert not connectome.ask_early(1300, files, UNITS, "individual")  # no roll-up expected
    connectome.expect_rollup(1300)
    assert connectome.ask_early(1300, files, UNITS, "individual")
    early = connectome._EARLY.asked[1300][3]
    taken = connectome.submit(1300, list(reversed(files)), UNITS.copy(), "individual")
    assert taken is early  # the same request: not asked twice
    expected = summarize_chunks(files, UNITS.iloc[:3], counted=False)
    assert taken.result().totals == expected.totals
    # taken once: asking again is a new request (with the same answer)
    again = connectome.submit(1300, files, UNITS, "individual")
    assert again is not early and again.result().totals == expected.totals


def test_another_question_is_asked_again(files, helper):
    def asked_early():
        connectome.expect_rollup(1300)
        assert connectome.ask_early(1300, files, UNITS, "individual")
        return connectome._EARLY.asked[1300][3]

    early = asked_early()
    other_cells = UNITS.assign(classification_system="excitatory")
    assert connectome.submit(1300, files, other_cells, "individual") is not early
    early = asked_early()
    assert connectome.submit(1300, files, UNITS, "aggregate") is not early
    early = asked_early()
    assert connectome.submit(1300, files[:2], UNITS, "individual") is not early
    early = asked_early()
    assert connectome.submit(1301, files, UNITS, "individual") is not early  # another version
    connectome.forget_early(1300)
    # a file written again after the early question: its answer is of the old rows
    early = asked_early()
    before = early.result().totals
    _write(files[1], seed=7)
    stat = files[1].stat()  # (a rewrite within the clock's tick: its time moves on)
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    fresh = connectome.submit(1300, files, UNITS, "individual")
    assert fresh is not early
    now = summarize_chunks(files, UNITS.iloc[:3], counted=False).totals
    assert fresh.result().totals == now != before


def test_without_a_helper_nothing_is_asked_early(files):
    painter().close()
    assert painter().pid() is None
    connectome.expect_rollup(1300)
    try:
        assert not connectome.ask_early(1300, files, UNITS, "individual")
        assert 1300 not in connectome._EARLY.asked
    finally:
        connectome.forget_early(1300)


def test_what_was_asked_early_for_a_roll_up_that_does_not_follow_is_let_go(files, helper):
    connectome.expect_rollup(1300)
    assert connectome.ask_early(1300, files, UNITS, "individual")
    early = connectome._EARLY.asked[1300][3]
    connectome.forget_early(1300)  # (materialize, when its roll-up did not run)
    assert 1300 not in connectome._EARLY.asked
    assert not connectome.ask_early(1300, files, UNITS, "individual")  # no longer expected
    assert connectome.submit(1300, files, UNITS, "individual") is not early
