"""Pictures drawn by a helper process, so matplotlib's import and drawing leave the run's process.

A run's process is busy on one core (Python holds one lock); a picture costs it matplotlib's
import (~0.5 s) and the drawing. `painter().warm()`, called where a run starts the work that
precedes a picture, starts `python -m microns_assets.processing.painter` on the other core,
which imports matplotlib while the run downloads; `painter().draw("depth_profile_png", ...)`
then sends the function's name and arguments (pickled, through a pipe) and gets the PNG back.
The functions are those of `processing.plots`, the same bytes as drawn in process. `submit`
asks for a picture without waiting, so that the run's process goes on with other work (a
DuckDB sort, say) while the helper draws; its `result()` waits for the bytes. One picture is in
the pipes at a time: asking for the next first reads the answer to the one before.

If the helper cannot be started or dies, the picture is drawn in this process instead (a
picture is never lost to the helper); an error of the drawing itself is raised here, with the
helper's traceback. The helper is ended when this process exits, and ends by itself when its
pipe closes (this process killed). A forked child starts a helper of its own. No Dagster imports.
"""

from __future__ import annotations

import atexit
import os
import pickle
import struct
import subprocess
import sys
import threading
import traceback
from collections import deque
from contextlib import suppress
from typing import Any

from microns_assets.processing import plots

_HEADER = struct.Struct("<Q")


class PictureError(RuntimeError):
    """Drawing a picture failed in the helper process (its traceback is in the message)."""


class Pending:
    """A picture asked for: `result()` waits for its PNG bytes."""

    def __init__(self, painter: Painter, name: str, args: tuple) -> None:
        self._painter, self.name, self.args = painter, name, args
        self.answer: tuple[bool, Any] | None = None  # None: not answered (drawn here if never)

    def result(self) -> bytes:
        """The picture's PNG bytes (`PictureError` if the helper failed to draw it)."""
        ok, value = self._painter._collect(self)
        if not ok:
            raise PictureError(f"drawing {self.name} failed in the picture helper:\n{value}")
        return getattr(plots, self.name)(*self.args) if value is None else value


class Painter:
    """One helper process for this process's pictures (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._owner = 0  # the pid that started the helper
        self._asked: deque[Pending] = deque()  # sent to the helper, answers not yet read

    def warm(self) -> None:
        """Start the helper now (if it is not running), so that it is ready when needed."""
        with self._lock:
            if self._running() is None:
                self._start()

    def submit(self, name: str, *args: Any) -> Pending:
        """Ask for `plots.<name>(*args)` without waiting: to the helper if one was warmed."""
        getattr(plots, name)  # a name plots does not have fails here, not there
        pending = Pending(self, name, args)
        with self._lock:
            # one request at a time in the pipes: a helper blocked writing a large answer
            # nobody reads would never read a large request either
            self._read_answers()
            process = self._running()
            if process is not None:
                try:
                    _send(process.stdin, (name, args))
                    self._asked.append(pending)
                except (OSError, ValueError, pickle.PickleError):
                    self._forget()  # drawn here instead
        return pending

    def draw(self, name: str, *args: Any) -> bytes:
        """PNG bytes of `plots.<name>(*args)`: by the helper if one was warmed, else here."""
        return self.submit(name, *args).result()

    def _collect(self, pending: Pending) -> tuple[bool, Any]:
        """`pending`'s answer, reading the helper's answers in order until it is in."""
        with self._lock:
            self._read_answers()
        return pending.answer or (True, None)

    def _read_answers(self) -> None:
        """Read the answers to what was asked (with the lock held)."""
        while self._asked:
            try:
                answer = _receive(self._process.stdout)
            except (OSError, EOFError, ValueError, pickle.PickleError):
                self._forget()  # what was asked is drawn here instead
                return
            self._asked.popleft().answer = answer

    def close(self, kill: bool = False) -> None:
        """End the helper: it exits when its pipe closes (`kill`: at once, busy or not)."""
        with self._lock:
            self._asked.clear()
            process, self._process = self._process, None
            if process is not None and self._owner == os.getpid():
                for pipe in (process.stdin, process.stdout):
                    with suppress(OSError):
                        pipe.close()
                if kill:
                    process.kill()
                process.wait(timeout=30)

    def pid(self) -> int | None:
        """The helper's process id, if one runs for this process."""
        process = self._process
        return process.pid if process is not None and self._owner == os.getpid() else None

    def _running(self) -> subprocess.Popen | None:
        """This process's helper if it is alive; a dead or inherited one is let go."""
        process = self._process
        if process is not None and self._owner == os.getpid() and process.poll() is None:
            return process
        self._forget()
        return None

    def _start(self) -> None:
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
                # the modules this process imports, wherever they were found
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
        except OSError:
            return  # no helper: pictures are drawn in process
        self._owner = os.getpid()

    def _forget(self) -> None:
        """Drop a helper that is dead, broken or another process's (a fork's parent's)."""
        self._asked.clear()  # their answers will not come: drawn in process
        process, self._process = self._process, None
        if process is None:
            return
        for pipe in (process.stdin, process.stdout):
            with suppress(OSError):
                pipe.close()
        if self._owner == os.getpid():
            process.kill()
            process.wait(timeout=30)


def _send(pipe, message: object) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(_HEADER.pack(len(body)) + body)
    pipe.flush()


def _receive(pipe) -> Any:
    header = pipe.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the picture helper closed its pipe")
    (size,) = _HEADER.unpack(header)
    body = pipe.read(size)
    if len(body) < size:
        raise EOFError("the picture helper's answer was cut")
    return pickle.loads(body)


_PAINTER = Painter()


def _after_fork_in_child() -> None:
    """A forked child lets go of its parent's helper (its copies of the pipes are closed)."""
    _PAINTER._lock = threading.Lock()
    _PAINTER._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
# at exit, the helper goes with this process (even while still importing matplotlib)
atexit.register(_PAINTER.close, kill=True)


def painter() -> Painter:
    """This process's painter."""
    return _PAINTER


def _serve() -> None:
    """The helper: import matplotlib, then draw what comes in until the pipe closes."""
    requests, answers = sys.stdin.buffer, os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # nothing but answers goes down the pipe
    plots.warm()
    while True:
        try:
            name, args = _receive(requests)
        except EOFError:
            return
        try:
            answer = (True, getattr(plots, name)(*args))
        except Exception:  # reported to the caller, who raises it
            answer = (False, traceback.format_exc())
        _send(answers, answer)


if __name__ == "__main__":
    _serve()
