"""`microns-assets dev`: the web UI on our code location, with its own emulator, cleaned up."""

from __future__ import annotations

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


def test_dev_serves_our_assets_with_an_emulator_and_cleans_up(tmp_path, emulator_cache):
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
            "-p",
            str(port),
        ],
        env=clean_env(emulator_cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        first = child.stdout.readline()
        assert first.startswith("Embedded CAVE emulator serving minnie65_synthetic at http")
        emulator_url = first.split(" at ")[1].strip()
        # keep reading its output: a full pipe would block the command (and its shutdown)
        threading.Thread(target=child.stdout.read, daemon=True).start()
        assert requests.get(f"{emulator_url}/info/version", timeout=10).ok
        assets = wait_for_assets(f"http://127.0.0.1:{port}/graphql", child)
        assert {"units", "layer_segments", "synapse_chunks", "synapses"} <= assets
        assert "cave_raw/nucleus" in assets
        child.send_signal(signal.SIGTERM)  # what a service manager sends
        assert child.wait(timeout=300) is not None  # dagster dev stops its servers; slow under load
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    try:
        requests.get(f"{emulator_url}/info/version", timeout=5)
        raise AssertionError("the emulator still answers after dev stopped")
    except requests.ConnectionError:
        pass
    deadline = time.monotonic() + 60  # dagster dev stops its webserver, daemon, code server
    while time.monotonic() < deadline:
        try:
            os.killpg(child.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    leftover = subprocess.run(["ps", "-o", "pid,args", "-g", str(child.pid)], capture_output=True)
    raise AssertionError(f"processes of `dev` still run after it stopped:\n{leftover.stdout}")


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
