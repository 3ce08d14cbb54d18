"""Real servers for the distributed tests, started on free loopback ports and stopped after.

Postgres: Debian's `postgresql` binaries (`.ci/run` installs them), a new cluster in a folder
under /tmp (not pytest's mode-700 tmp dirs, which the `postgres` user cannot enter), run as the
`postgres` user when we are root (Postgres refuses to run as root), trust authentication on
127.0.0.1 only, `fsync=off` (a throwaway cluster).

S3: `moto[server]`'s `ThreadedMotoServer`, fake credentials, `AWS_EC2_METADATA_DISABLED` so
botocore never looks for instance metadata on the network.

Redis: Debian's `redis-server` (`.ci/run` installs it) on a free loopback port, no persistence,
its files in a temp folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from microns_assets_tests.loopback import free_port

PG_USER = "postgres"


def postgres_bin() -> Path:
    """The folder of Debian's Postgres server binaries, or a failure that says how to get them."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise AssertionError(
            "Postgres not found: the distributed tests need Debian's `postgresql` package. "
            "Install it with `sudo apt-get install -y postgresql` (.ci/run does this on CI)."
        )
    return Path(found[-1]).parent


def _as_owner() -> dict:
    """`subprocess` arguments that run a command as the `postgres` user when we are root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(PG_USER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@dataclass
class Postgres:
    """A running Postgres cluster: where it listens, and how to add a database to it."""

    bindir: Path
    port: int
    owner: dict

    def url(self, database: str) -> str:
        """The URL of `database` on this server."""
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        subprocess.run(
            [str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
             "-U", PG_USER, name],
            check=True, capture_output=True, text=True, **self.owner,
        )  # fmt: skip
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A new Postgres cluster on a free loopback port, stopped and deleted afterwards."""
    bindir = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="microns-pg-", dir="/tmp"))
    data = folder / "data"
    owner = _as_owner()
    if owner:
        os.chown(folder, owner["user"], owner["group"])
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, text=True, cwd=folder, **owner)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust", "-E", "UTF8")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
            "-w", "-t", "60", "start")  # fmt: skip
        try:
            yield Postgres(bindir, port, owner)
        finally:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as err:
        log = folder / "log"
        detail = log.read_text()[-2000:] if log.exists() else ""
        raise AssertionError(f"{err.cmd} failed: {err.stderr}\n{detail}") from err
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server on a free loopback port, without persistence; yields its URL (db 0)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise AssertionError(
            "redis-server not found: the Celery tests need Debian's `redis-server` package. "
            "Install it with `sudo apt-get install -y redis-server` (.ci/run does this on CI)."
        )
    folder = Path(tempfile.mkdtemp(prefix="microns-redis-", dir="/tmp"))
    port = free_port()
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(folder), "--logfile", str(folder / "log")]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = folder / "log"
                    detail = log.read_text()[-2000:] if log.exists() else ""
                    raise AssertionError(f"redis-server did not start: {detail}") from None
                time.sleep(0.1)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


BUCKET = "microns"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server with one empty bucket, `BUCKET`; yields its endpoint URL.

    The fake credentials are in this process's environment while it runs (pass `FAKE_AWS` to
    child processes yourself).
    """
    import boto3
    import pytest
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS.items():
            patch.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            url = f"http://{host}:{port}"
            boto3.client("s3", endpoint_url=url).create_bucket(Bucket=BUCKET)
            yield url
        finally:
            server.stop()


WORKER_YAML = Path(__file__).resolve().parents[2] / "deploy" / "celery" / "worker.yaml"


@dataclass
class CeleryWorkers:
    """Running `dagster-celery worker`s: their names and a Celery app to inspect them."""

    names: list[str]
    broker: str
    procs: list[subprocess.Popen]

    def app(self):
        """A Celery client of the broker (to inspect or ping the workers)."""
        from celery import Celery

        return Celery("dagster", broker=self.broker, backend=self.broker)


@contextmanager
def celery_workers(env: dict[str, str], count: int, logs: Path) -> Iterator[CeleryWorkers]:
    """`count` workers started as deploy/celery/README.md says, one step at a time each.

    Each in its own session, logs in `logs`; ready once every one answers a ping.
    """
    import signal

    exe = Path(sys.executable).parent / "dagster-celery"
    names = [f"worker{i}" for i in range(count)]
    procs = []
    for name in names:
        args = [str(exe), "worker", "start", "-A", "dagster_celery.app", "-y", str(WORKER_YAML),
                "-n", name, "--", "--concurrency", "1"]  # fmt: skip
        with (logs / f"{name}.log").open("wb") as log:
            procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))  # fmt: skip
    workers = CeleryWorkers(names, env["MICRONS_CELERY_BROKER"], procs)
    try:
        app = workers.app()
        deadline = time.monotonic() + 120
        while True:
            answered = {next(iter(r)).split("@")[0] for r in app.control.ping(timeout=1.0)}
            if answered >= set(names):
                break
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tails = {n: (logs / f"{n}.log").read_text()[-2000:] for n in names}
                raise AssertionError(f"Celery workers did not start: {tails}")
        yield workers
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
