"""`processing.painter`: pictures drawn by a helper process, the same as drawn in process."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from microns_assets.processing import plots
from microns_assets.processing.painter import HelperError, Painter
from microns_assets.processing.painter import painter as painter_of_this_process

PNG = b"\x89PNG\r\n\x1a\n"


def _classes() -> pd.DataFrame:
    names = ["excitatory_neuron", "inhibitory_neuron"]
    return pd.DataFrame([[120, 3], [45, 7]], index=names, columns=names)


def _gone(pid: int, within_s: float = 20.0) -> bool:
    """Whether the process has ended (exited, or a zombie nobody has reaped yet)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def painter():
    made = Painter()
    yield made
    made.close()


def test_a_warmed_helper_draws_the_pictures_this_process_would(painter):
    painter.warm()
    helper = painter.pid()
    assert helper is not None and helper != os.getpid()
    assert painter.draw("connectivity_png", _classes()) == plots.connectivity_png(_classes())
    cells = pd.DataFrame({"layer": ["L2/3", "L4", None], "cell_type": ["23P", None, "BC"]})
    matrix = sp.csr_matrix(np.array([[0, 2, 0], [1, 0, 0], [0, 0, 3]]))
    grid = plots.connectome_grid(matrix, cells)
    assert grid.grid.sum() == 6 and grid.labels == ["(none)", "L2/3", "L4"]
    assert painter.draw("connectome_grid_png", grid) == plots.connectome_png(matrix, cells)
    assert painter.pid() == helper  # one helper, kept for the next picture


def test_pictures_asked_for_together_each_get_their_own(painter):
    painter.warm()
    small = _classes().iloc[:1, :1]
    first = painter.submit("connectivity_png", _classes())
    second = painter.submit("connectivity_png", small)
    failing = painter.submit("connectivity_png", "not a matrix")
    third = painter.submit("connectivity_png", small * 10)
    # collected out of order: each answer goes to its own request
    assert third.result() == plots.connectivity_png(small * 10)
    with pytest.raises(HelperError):
        failing.result()
    assert first.result() == plots.connectivity_png(_classes())
    assert second.result() == plots.connectivity_png(small)
    assert second.result() == plots.connectivity_png(small)  # asked again: the same answer


def _noise(seed: int) -> plots.ConnectomeGrid:
    grid = np.random.default_rng(seed).integers(1, 10_000, (400, 400)).astype(float)
    empty = np.empty(0)
    return plots.ConnectomeGrid(grid, empty, empty, empty, [], 400, 160_000)


def test_large_pictures_asked_for_together_do_not_block_the_pipes(painter):
    # a 1.3 MB request and a PNG answer of noise, each larger than a pipe's buffer
    painter.warm()
    first = painter.submit("connectome_grid_png", _noise(1))
    second = painter.submit("connectome_grid_png", _noise(2))  # the helper is writing `first`
    assert len(first.result()) > 100_000
    assert second.result() == plots.connectome_grid_png(_noise(2))


def test_asking_never_waits_for_the_helper(painter):
    # a helper that reads nothing (stopped): requests far larger than a pipe's buffer still
    # return at once (the courier waits, not the asker), and each answer comes once it resumes
    painter.warm()
    assert painter.draw("connectivity_png", _classes()).startswith(PNG)  # ready
    os.kill(painter.pid(), signal.SIGSTOP)
    try:
        asked = []
        asking = threading.Thread(
            target=lambda: asked.extend(
                painter.submit("connectome_grid_png", _noise(seed)) for seed in range(3)
            )
        )
        asking.start()
        asking.join(timeout=10)
        assert not asking.is_alive() and len(asked) == 3
        assert not any(pending._answered.is_set() for pending in asked)
    finally:
        os.kill(painter.pid(), signal.SIGCONT)
    assert asked[0].result() == plots.connectome_grid_png(_noise(0))
    assert asked[2].result() == plots.connectome_grid_png(_noise(2))


def test_pictures_asked_for_when_the_helper_dies_are_drawn_here(painter):
    painter.warm()
    pending = painter.submit("connectivity_png", _classes())
    os.kill(painter.pid(), signal.SIGKILL)
    assert pending.result() == plots.connectivity_png(_classes())


def test_without_a_helper_pictures_are_drawn_in_process(painter):
    assert painter.draw("connectivity_png", _classes()) == plots.connectivity_png(_classes())
    assert painter.pid() is None  # drawing alone starts no process


def test_work_done_in_process_is_done_once_however_often_it_is_asked(painter, monkeypatch):
    drawn = []
    monkeypatch.setattr(plots, "warm", lambda: drawn.append("warm") or b"png")
    pending = painter.submit("warm")  # no helper: done here, when first asked
    assert drawn == []
    assert pending.result() == pending.result() == b"png"
    assert drawn == ["warm"]


def test_a_drawing_error_is_raised_here_with_the_helpers_traceback(painter):
    painter.warm()
    with pytest.raises(HelperError, match=r"(?s)connectivity_png failed.*Traceback.*to_numpy"):
        painter.draw("connectivity_png", "not a matrix")
    assert painter.draw("connectivity_png", _classes()).startswith(PNG)  # still serving
    with pytest.raises(AttributeError):
        painter.draw("no_such_picture")


def test_a_dead_helper_costs_no_picture(painter):
    painter.warm()
    helper = painter.pid()
    os.kill(helper, signal.SIGKILL)
    assert _gone(helper)  # (not yet reaped: the painter notices when it draws)
    assert painter.draw("connectivity_png", _classes()) == plots.connectivity_png(_classes())
    assert painter.pid() is None
    painter.warm()  # and a new one can be started
    assert painter.pid() not in (None, helper)


def test_the_helper_ends_with_the_process_that_started_it(tmp_path):
    code = (
        "import sys, time\n"
        "from microns_assets.processing.painter import painter\n"
        "painter().warm()\n"
        "print(painter().pid(), flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        helper = int(parent.stdout.readline())
        os.kill(helper, 0)  # running
    finally:
        parent.kill()  # no chance to clean up: the helper must see its pipe close
        parent.wait()
    assert _gone(helper), "the picture helper outlived the process that started it"


def test_a_process_that_exits_takes_its_helper_along_at_once():
    # the helper is still importing matplotlib when its parent exits: killed and reaped by then
    code = (
        "from microns_assets.processing.painter import painter\n"
        "painter().warm()\n"
        "print(painter().pid(), flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    helper = int(done.stdout)
    assert not Path(f"/proc/{helper}").exists()


def test_a_forked_child_lets_go_of_its_parents_helper():
    shared = painter_of_this_process()
    shared.warm()
    try:
        helper = shared.pid()
        child = os.fork()
        if child == 0:  # the child: not its helper; it draws in process
            ok = shared.pid() is None and shared.draw("connectivity_png", _classes())[:8] == PNG
            os._exit(0 if ok else 1)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert shared.pid() == helper  # the parent's helper still serves the parent
        assert shared.draw("connectivity_png", _classes()) == plots.connectivity_png(_classes())
    finally:
        shared.close()
