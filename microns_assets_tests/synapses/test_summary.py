"""`synapses.summary`: the roll-up takes a summary asked early only for the same question."""

import os

import numpy as np
import pandas as pd
import pytest
from upath import UPath

from microns_assets.processing.connectome import summarize_chunks
from microns_assets.processing.painter import HelperError, painter
from microns_assets.storage import write_frame
from microns_assets.synapses import summary

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


def _totals(files: list[UPath]) -> dict:
    return summarize_chunks(files, UNITS.iloc[:3], counted=False).totals


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
    summary.forget_early(1300)


def _asked_early(files: list[UPath]):
    summary.expect_rollup(1300)
    assert summary.ask_early(1300, files, UNITS, "individual")
    return summary._EARLY.asked[1300].pending


def test_the_roll_up_takes_the_answer_asked_early_for_the_same_files(files, helper):
    assert not summary.ask_early(1300, files, UNITS, "individual")  # no roll-up expected
    early = _asked_early(files)
    taken = summary.submit(1300, list(reversed(files)), UNITS.copy(), "individual")
    assert taken is early and summary.asked_early(taken)  # the same request: not asked twice
    assert summary.summary_of(taken).totals == _totals(files)
    # taken once: asking again is a new request (with the same answer)
    again = summary.submit(1300, files, UNITS, "individual")
    assert again is not early and not summary.asked_early(again)
    assert summary.summary_of(again).totals == _totals(files)


def test_another_question_is_asked_again(files, helper):
    early = _asked_early(files)
    other_cells = UNITS.assign(classification_system="excitatory")
    assert summary.submit(1300, files, other_cells, "individual") is not early
    early = _asked_early(files)
    assert summary.submit(1300, files, UNITS, "aggregate") is not early
    early = _asked_early(files)
    assert summary.submit(1300, files[:2], UNITS, "individual") is not early
    early = _asked_early(files)
    assert summary.submit(1301, files, UNITS, "individual") is not early  # another version
    assert summary.submit(1300, files, UNITS, "individual") is early  # (still there for 1300)
    # a file written again after the early question: its answer is of the old rows
    early = _asked_early(files)
    before = early.result().totals
    _write(files[1], seed=7)
    stat = files[1].stat()  # (a rewrite within the clock's tick: its time moves on)
    os.utime(files[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    fresh = summary.submit(1300, files, UNITS, "individual")
    assert fresh is not early
    assert summary.summary_of(fresh).totals == _totals(files) != before


def test_an_early_answer_that_failed_is_asked_for_again_once(files, helper):
    good = files[1].read_bytes()
    files[1].write_bytes(b"\0" * len(good))  # not Parquet yet, of the same size
    mtime = files[1].stat().st_mtime_ns
    early = _asked_early(files)
    with pytest.raises(HelperError):
        early.result()
    files[1].write_bytes(good)  # mended, with the same size and time: the same files to us
    os.utime(files[1], ns=(mtime, mtime))
    taken = summary.submit(1300, files, UNITS, "individual")
    assert taken is early
    assert summary.summary_of(taken).totals == _totals(files)  # asked again
    assert summary.summary_of(taken).totals == _totals(files)  # (and only once)
    assert len([p for p in summary._EARLY.again.values()]) == 1


def test_nothing_is_asked_early_without_a_helper_or_of_files_not_local(files, helper):
    summary.expect_rollup(1300)
    remote = [UPath(f"memory://chunks/{f.name}") for f in files]
    for local, path in zip(files, remote, strict=True):
        path.write_bytes(local.read_bytes())
    assert not summary.ask_early(1300, remote, UNITS, "individual")
    painter().close()
    assert painter().pid() is None
    assert not summary.ask_early(1300, files, UNITS, "individual")
    assert 1300 not in summary._EARLY.asked


def test_what_was_asked_early_for_a_roll_up_that_does_not_follow_is_let_go(files, helper):
    early = _asked_early(files)
    summary.forget_early(1300)  # (materialize, when its roll-up did not run)
    assert 1300 not in summary._EARLY.asked
    assert not summary.ask_early(1300, files, UNITS, "individual")  # no longer expected
    assert summary.submit(1300, files, UNITS, "individual") is not early
