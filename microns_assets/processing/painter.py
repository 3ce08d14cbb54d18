"""Pictures (and the connectome) made by a helper process, on the core the run's process leaves.

A run's process is busy on one core (Python holds one lock); a picture costs it matplotlib's
import (~0.5 s) and the drawing, the connectome its reading and summing of every pair.
`painter().warm()`, called where a run starts the work that precedes a picture, starts
`python -m microns_assets.processing.painter` on the other core, which imports matplotlib
while the run downloads; `painter().draw("depth_profile_png", ...)` then sends the function's
name and arguments (pickled, through a pipe) and gets the PNG back.
The functions are those of `processing.plots` (by bare name) and `connectome.summarize_chunks`
(`processing.connectome`), giving the same results as in process. `submit` asks without
waiting, so that the run's process goes on with other work (a DuckDB sort, say) while the
helper works; its `result()` waits for that answer only. A courier thread carries the requests
to the helper one at a time, in order, and reads each answer before sending the next (a helper
blocked writing a large answer nobody reads would never read a large request either).

If the helper cannot be started or dies, the work is done in this process instead (nothing is
lost to the helper); an error of the work itself is raised here (`HelperError`), with the
helper's traceback. The helper is ended when this process exits, and ends by itself when its
pipe closes (this process killed). A forked child starts a helper of its own. No Dagster imports.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import traceback
from contextlib import suppress
from typing import Any

from microns_assets.processing import plots

_HEADER = struct.Struct("<Q")
#: The modules whose functions the helper runs, by qualified name (`plots` by bare name too);
#: imported on first use, so that the helper starts drawing as soon as matplotlib is in.
_MODULES = {
    "plots": "microns_assets.processing.plots",
    "connectome": "microns_assets.processing.connectome",
}


class HelperError(RuntimeError):
    """The work asked for failed in the helper process (its traceback is in the message)."""


def _function(name: str):
    """The function a request names: `connectome.summarize_chunks`, `connectivity_png`."""
    module, _, function = name.rpartition(".")
    return getattr(importlib.import_module(_MODULES[module or "plots"]), function)


class Pending:
    """Work asked for: `result()` waits for its answer (a picture's PNG bytes)."""

    def __init__(self, name: str, args: tuple) -> None:
        self.name, self.args = name, args
        self._answered = threading.Event()
        self._answer: tuple[bool, Any] | None = None  # None: no answer (done here instead)
        self._here = threading.Lock()  # (one asker does the work here; the others wait)

    def _settle(self, answer: tuple[bool, Any] | None) -> None:
        self._answer = answer
        self._answered.set()

    def done(self) -> bool:
        """Whether the answer is here (work waiting to be done in process is not done)."""
        return self._answered.is_set() and self._answer is not None

    def result(self) -> Any:
        """The answer: the function's return value (`HelperError` if it failed in the helper).

        Work done here (no helper) is done once, however often its answer is asked for.
        """
        self._answered.wait()
        with self._here:
            if self._answer is None:
                self._answer = (True, _function(self.name)(*self.args))
        ok, value = self._answer
        if not ok:
            raise HelperError(f"{self.name} failed in the helper process:\n{value}")
        return value


class Painter:
    """One helper process for this process's pictures (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None  # None: no helper (work done here)
        self._owner = 0  # the pid that started the helper
        self._requests: queue.SimpleQueue[tuple[Pending, bytes] | None] = queue.SimpleQueue()
        self._courier: threading.Thread | None = None

    def warm(self) -> None:
        """Start the helper now (if it is not running), so that it is ready when needed."""
        with self._lock:
            if self._running() is None:
                self._start()

    def submit(self, name: str, *args: Any) -> Pending:
        """Ask for `<name>(*args)` without waiting: to the helper if one was warmed."""
        _function(name)  # a name the helper does not know fails here, not there
        pending = Pending(name, args)
        with self._lock:
            if self._running() is not None:
                try:
                    body = pickle.dumps((name, args), protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:  # not picklable: done here (where a real error is raised)
                    body = None
                if body is not None:
                    self._requests.put((pending, body))
                    return pending
        pending._settle(None)
        return pending

    def draw(self, name: str, *args: Any) -> Any:
        """`<name>(*args)` (a picture's PNG bytes): by the helper if one was warmed, else here."""
        return self.submit(name, *args).result()

    def close(self, kill: bool = False) -> None:
        """End the helper once what was asked is answered (`kill`: at once, busy or not)."""
        with self._lock:
            process, courier = self._process, self._courier
            if process is None or self._owner != os.getpid():
                return
            self._requests.put(None)  # the courier ends after what was asked before
        if kill:
            process.kill()
        if courier is not None:
            courier.join(timeout=60)

    def pid(self) -> int | None:
        """The helper's process id, if one runs for this process."""
        process = self._process
        return process.pid if process is not None and self._owner == os.getpid() else None

    def _running(self) -> subprocess.Popen | None:
        """This process's helper if it is alive (with the lock held); a dead one is let go."""
        process = self._process
        if process is None or self._owner != os.getpid():
            return None
        if process.poll() is None:
            return process
        self._process = None
        self._requests.put(None)  # its courier closes the pipes and ends
        return None

    def _start(self) -> None:
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,  # raw pipes: no buffer lock a forked child could inherit taken
                close_fds=True,
                # the modules this process imports, wherever they were found
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except OSError:
            return  # no helper: pictures are drawn in process
        self._process, self._owner = process, os.getpid()
        self._requests = queue.SimpleQueue()
        self._courier = threading.Thread(
            target=self._carry, args=(process, self._requests), name="painter", daemon=True
        )
        self._courier.start()

    def _carry(self, process: subprocess.Popen, requests: queue.SimpleQueue) -> None:
        """The courier: each request to the helper and its answer back, in order, until closed.

        When the helper dies or a pipe breaks, it lets the helper go and settles what is still
        asked without an answer (done in process); it always ends the helper it carried for.
        """
        item = None
        try:
            while (item := requests.get()) is not None:
                pending, body = item
                _send(process.stdin, body)
                pending._settle(_receive(process.stdout))
        except Exception:
            pass  # the helper died, its pipes broke or its answer was unreadable: what is
            # left (that one included) is done in process
        finally:
            with self._lock:
                if self._process is process:
                    self._process = None
                left = [item] if item is not None else []
                with suppress(queue.Empty):
                    while True:
                        left.append(requests.get_nowait())
            for pipe in (process.stdin, process.stdout):
                with suppress(OSError):
                    pipe.close()  # the helper exits when its requests pipe closes
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            for pending, _ in filter(None, left):
                pending._settle(None)


def _write_all(pipe, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[pipe.write(view) :]
    pipe.flush()


def _read_exactly(pipe, size: int) -> bytearray:
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = pipe.readinto(view[got:])
        if not n:
            raise EOFError("the helper closed its pipe")
        got += n
    return buffer


def _send(pipe, body: bytes) -> None:
    """One pickled message, behind its length (what `_receive` reads)."""
    _write_all(pipe, _HEADER.pack(len(body)) + body)


def _receive(pipe) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(pipe, _HEADER.size))
    return pickle.loads(_read_exactly(pipe, size))


_PAINTER = Painter()


def _after_fork_in_child() -> None:
    """A forked child lets go of its parent's helper (its copies of the pipes are closed)."""
    process = _PAINTER._process
    _PAINTER.__init__()
    if process is not None:
        for pipe in (process.stdin, process.stdout):
            with suppress(OSError):
                pipe.close()  # raw pipes: closing takes no lock the parent's courier held


os.register_at_fork(after_in_child=_after_fork_in_child)
# at exit, the helper goes with this process (even while still importing matplotlib)
atexit.register(_PAINTER.close, kill=True)


def painter() -> Painter:
    """This process's painter."""
    return _PAINTER


def _serve() -> None:
    """The helper: import matplotlib, then do what comes in until the pipe closes."""
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing but answers goes down the pipe
    plots.warm()
    while True:
        try:
            name, args = _receive(requests)
        except EOFError:
            return
        try:
            answer = (True, _function(name)(*args))
        except Exception:  # reported to the caller, who raises it
            answer = (False, traceback.format_exc())
        _send(answers, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    _serve()
