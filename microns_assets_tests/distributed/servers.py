"""Real servers for the distributed tests, started on free loopback ports and stopped after.

Postgres: Debian's `postgresql` binaries (`.ci/run` installs them), a new cluster in a folder
under /tmp (not pytest's mode-700 tmp dirs, which the `postgres` user cannot enter), run as the
`postgres` user when we are root (Postgres refuses to run as root), trust authentication on
127.0.0.1 only, `fsync=off` (a throwaway cluster).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
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
