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
    """Run `dagster dev -m microns_assets.definitions` until interrupted."""
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
        child = subprocess.Popen([*dagster, *dagster_args])
        signal.signal(signal.SIGTERM, lambda signum, frame: child.send_signal(signum))
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # Ctrl-C reached `dagster dev` too; let it shut down
                continue
    finally:
        if emulator is not None:
            emulator.terminate()
            emulator.wait(timeout=30)
