"""`microns-assets dev`: `dagster dev` for this project, with the emulator when `embedded`.

With the embedded server, one emulator process serves the whole session (runs, sensors and
schedules all talk to it), and `dagster dev` gets its URL as `MICRONS_CAVE_SERVER`.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time

from microns_assets.commands.environment import resolve
from microns_assets.settings import EMBEDDED, ENV_DATASTACK, ENV_SERVER

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # else the parent's `finally` stops it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_emulator(extra: list[str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `microns-assets emulator` in a child process; return it and its URL.

    The child is stopped when this process dies, however it dies (`PR_SET_PDEATHSIG`).
    """
    child = subprocess.Popen(
        [sys.executable, "-m", "microns_assets.cli", "emulator", *(extra or [])],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    url = child.stdout.readline().strip()
    if not url.startswith("http"):
        child.kill()
        raise SystemExit(f"error: the emulator did not start (exit code {child.wait()})")
    return child, url


def dev(args: argparse.Namespace, dagster_args: list[str]) -> int:
    """Run `dagster dev -m microns_assets.definitions` until interrupted.

    `dagster dev` runs in its own session, so that this command can stop all of it: Ctrl-C
    and SIGTERM are passed on, and whatever of it still runs `args.stop_timeout` seconds
    later (the web server, daemon, code server and run processes) is killed, so that a stop
    is bounded, as a service manager expects.
    """
    settings, home = resolve(args)
    emulator = None
    if settings.server == EMBEDDED:
        emulator, url = start_emulator()
        os.environ[ENV_SERVER] = url
        os.environ[ENV_DATASTACK] = settings.datastack
        print(f"Embedded CAVE emulator serving {settings.datastack} at {url}", flush=True)
    dagster = [sys.executable, "-m", "dagster", "dev", "-m", "microns_assets.definitions"]
    print(f"Dagster instance: {home}\nData:             {settings.data_dir}", flush=True)
    try:
        child = subprocess.Popen(
            [*dagster, *dagster_args],
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        return _wait_and_stop(child, args.stop_timeout)
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=30)


def _wait_and_stop(child: subprocess.Popen, stop_timeout: float) -> int:
    """Wait for `child`; on SIGINT/SIGTERM pass the signal on, kill its group after the timeout."""
    asked: list[float] = []

    def forward(signum: int, frame: object) -> None:
        if not asked:
            asked.append(time.monotonic())
            print("stopping dagster dev ...", file=sys.stderr, flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    code = None
    while code is None:
        try:
            code = child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if asked and time.monotonic() - asked[0] > stop_timeout:
                print(
                    f"dagster dev did not stop within {stop_timeout:g} s of the signal: "
                    "killing it and what it started",
                    file=sys.stderr,
                    flush=True,
                )
                _kill_group(child.pid)
                child.wait()
                return 1
    _kill_group(child.pid)  # anything of it left behind (a server it did not stop)
    return code


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
