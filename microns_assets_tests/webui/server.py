"""Start `dagster-webserver` (and `dagster-daemon`) for the repo's workspace, wait, stop them.

Test plumbing only: each a subprocess in its own session (so it and the code server it spawns
are stopped together), logs to a file. The webserver is ready when `/server_info` answers and
the code location has loaded (a load error fails at once with the error and the server's log);
the daemon when its backfill daemon has sent a heartbeat to the instance.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from microns_assets_tests.loopback import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = REPO_ROOT / "workspace.yaml"
LOCATION = "microns_assets"
HTTP_TIMEOUT_S = 30

_LOCATIONS = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } } } }
    ... on PythonError { message } } }
"""


class WebserverError(RuntimeError):
    """The webserver did not start, or the code location did not load."""


def graphql(url: str, query: str, variables: Mapping | None = None) -> dict:
    """POST a GraphQL query; the `data`, or an AssertionError with the server's errors."""
    response = requests.post(
        f"{url}/graphql",
        json={"query": query, "variables": dict(variables or {})},
        timeout=HTTP_TIMEOUT_S,
    )
    body = response.json()
    assert response.status_code == 200 and not body.get("errors"), body.get("errors", body)
    return body["data"]


def _location_status(url: str) -> str:
    """`LOADED` once our location is up, `LOADING` before; raises on a load error."""
    data = graphql(url, _LOCATIONS)["workspaceOrError"]
    if data["__typename"] != "Workspace":
        raise WebserverError(f"workspace failed to load: {data.get('message')}")
    entries = {e["name"]: e for e in data["locationEntries"]}
    entry = entries.get(LOCATION)
    if entry is None:
        raise WebserverError(f"code location {LOCATION!r} missing; got {sorted(entries)}")
    error = entry["locationOrLoadError"]
    if error and error["__typename"] == "PythonError":
        raise WebserverError(f"code location failed to load: {error['message']}{error['stack']}")
    return "LOADED" if error and entry["loadStatus"] == "LOADED" else "LOADING"


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise WebserverError(f"dagster-webserver exited with code {proc.returncode}")
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok and (
                _location_status(url) == "LOADED"
            ):
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.25)
    raise WebserverError(f"dagster-webserver not ready at {url} after {timeout_s:.0f} s")


def _spawn(command: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """`command` in the repo root, in its own session, its output to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it and its code server), SIGKILL if it lingers."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@contextmanager
def running_webserver(env: Mapping[str, str], log: Path, timeout_s: float = 120) -> Iterator[str]:
    """Serve `workspace.yaml` with `env` on a free loopback port; yield its base URL."""
    exe = Path(sys.executable).parent / "dagster-webserver"
    if not exe.exists():
        raise WebserverError(f"{exe} not found: install the package (`pip install -e .`)")
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(exe), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]]
    proc = _spawn(command, env, log)
    try:
        try:
            _wait_ready(url, proc, timeout_s)
        except WebserverError as err:
            tail = log.read_text(errors="replace")[-6000:]
            raise WebserverError(f"{err}\n--- dagster-webserver log ({log}) ---\n{tail}") from err
        yield url
    finally:
        _stop(proc)


@contextmanager
def running_daemon(
    env: Mapping[str, str], log: Path, timeout_s: float = 120, stock: bool = False
) -> Iterator[None]:
    """`dagster-daemon run` on `workspace.yaml` with `env`, until its backfill daemon beats.

    Tests get the daemon of `fast_daemon` (backfill ticks every few seconds, not 30); `stock`
    runs the shipped command as is (the benchmarks).
    """
    import dagster as dg

    if stock:
        command = [str(Path(sys.executable).parent / "dagster-daemon")]
    else:
        command = [sys.executable, "-m", "microns_assets_tests.fast_daemon"]
    proc = _spawn([*command, "run", "-w", str(WORKSPACE)], env, log)
    try:
        deadline = time.monotonic() + timeout_s
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            while "BACKFILL" not in instance.get_daemon_heartbeats():
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-6000:]
                    raise WebserverError(f"dagster-daemon did not start\n--- log ---\n{tail}")
                time.sleep(0.5)
        yield
    finally:
        _stop(proc)
