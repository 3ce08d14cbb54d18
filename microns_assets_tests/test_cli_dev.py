"""`microns-assets dev`: the web UI on our code location, with its own emulator, cleaned up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from microns_assets_tests.loopback import free_port
from microns_assets_tests.materialize.cli_helpers import clean_env

ASSETS_QUERY = "{ assetNodes { assetKey { path } } }"


def wait_for_assets(url: str, child: subprocess.Popen, timeout: float = 180) -> set[str]:
    """Asset keys the web UI lists once the code location has loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, "microns-assets dev exited early"
        try:
            answer = requests.post(url, json={"query": ASSETS_QUERY}, timeout=10).json()
            nodes = answer["data"]["assetNodes"]
            if nodes:
                return {"/".join(n["assetKey"]["path"]) for n in nodes}
        except (requests.RequestException, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"no assets at {url} after {timeout} s")


def _start_dev(tmp_path: Path, emulator_cache: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`microns-assets dev` on the embedded server, once the web UI lists our assets.

    Returns the command's process and its emulator's URL; its stderr goes to tmp_path/dev.log.
    """
    port = free_port()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microns_assets.cli",
            "dev",
            "--server",
            "embedded",
            "--data-dir",
            str(tmp_path / "d"),
            "--dagster-home",
            str(tmp_path / "home"),
            *extra,
            "-p",
            str(port),
        ],
        env=clean_env(emulator_cache),
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "dev.log").open("w"),
        text=True,
        start_new_session=True,
    )
    try:
        first = child.stdout.readline()
        assert first.startswith("Embedded CAVE emulator serving minnie65_synthetic at http")
        # keep reading its output: a full pipe would block the command (and its shutdown)
        threading.Thread(target=child.stdout.read, daemon=True).start()
        emulator_url = first.split(" at ")[1].strip()
        assert requests.get(f"{emulator_url}/info/version", timeout=10).ok
        assets = wait_for_assets(f"http://127.0.0.1:{port}/graphql", child)
        assert {"units", "layer_segments", "synapse_chunks", "synapses"} <= assets
        assert "cave_raw/nucleus" in assets
    except BaseException:
        os.killpg(child.pid, signal.SIGKILL)
        raise
    return child, emulator_url


def _dagster_dev_pid(parent: int) -> int:
    """The `dagster dev` process the command started (it leads its own process group)."""
    for line in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        if b"dagster\0dev" in Path(f"/proc/{line}/cmdline").read_bytes():
            return int(line)
    raise AssertionError(f"no `dagster dev` child of {parent}")


def _stop(child: subprocess.Popen, groups: list[int], log: Path, timeout: float = 120) -> int:
    """SIGTERM the command (what a service manager sends); its exit code once all is gone.

    All: the command and the process groups `groups`. Else fail, showing what is left and the
    command's log.
    """
    child.send_signal(signal.SIGTERM)
    try:
        code = child.wait(timeout=timeout)
        deadline = time.monotonic() + 30
        while any(_group_alive(g) for g in groups) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = [g for g in groups if _group_alive(g)]
        leftover = subprocess.run(
            ["ps", "-o", "pid,stat,args", "-g", ",".join(map(str, left or [0]))],
            capture_output=True,
            text=True,
        ).stdout
        assert not left, f"processes of `dev` still run after it stopped:\n{leftover}"
        return code
    except BaseException as error:
        tail = log.read_text(errors="replace")[-4000:]
        raise AssertionError(f"{error}\n--- dev's stderr ---\n{tail}") from error
    finally:
        for group in [child.pid, *groups]:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _emulator_gone(url: str) -> bool:
    try:
        requests.get(f"{url}/info/version", timeout=5)
    except requests.ConnectionError:
        return True
    return False


def test_dev_serves_our_assets_with_an_emulator_and_cleans_up(tmp_path, emulator_cache):
    child, emulator_url = _start_dev(tmp_path, emulator_cache)
    dagster_dev = _dagster_dev_pid(child.pid)
    code = _stop(child, [child.pid, dagster_dev], tmp_path / "dev.log")
    assert code == 0  # dagster dev stopped by itself, within the timeout
    assert "did not stop within" not in (tmp_path / "dev.log").read_text()
    assert _emulator_gone(emulator_url), "the emulator still answers after dev stopped"


def test_a_dagster_dev_that_cannot_stop_is_killed_after_the_stop_timeout(tmp_path, emulator_cache):
    """A bounded stop: a frozen `dagster dev` and its servers are killed after the timeout.

    Frozen by SIGSTOP, it never handles the SIGTERM passed on to it.
    """
    child, emulator_url = _start_dev(tmp_path, emulator_cache, "--stop-timeout", "3")
    dagster_dev = _dagster_dev_pid(child.pid)
    os.kill(dagster_dev, signal.SIGSTOP)
    started = time.monotonic()
    code = _stop(child, [child.pid, dagster_dev], tmp_path / "dev.log")
    assert code == 1
    assert time.monotonic() - started >= 3
    assert "did not stop within 3 s of the signal" in (tmp_path / "dev.log").read_text()
    assert _emulator_gone(emulator_url), "the emulator still answers after dev stopped"


def test_an_emulator_process_dies_with_the_command_that_started_it(tmp_path):
    """Even when the command is SIGKILLed (no `finally` runs): the kernel stops the emulator."""
    script = tmp_path / "killed.py"
    script.write_text(
        "import os, signal\n"
        "from microns_assets.commands.dev import start_emulator\n"
        "child, url = start_emulator()\n"
        "print(child.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == -signal.SIGKILL
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"emulator {pid} outlived the command"


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (the container's init may not reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
