"""Resumable, verified download of one static dump file to a local path.

The bytes go to `<name>.part` and are renamed to the final name only once their count equals the
server's (`Content-Length` of a whole answer, the total of `Content-Range` of a partial one).
A cut connection, a 5xx or 429 resumes from the bytes already there with `Range: bytes=N-`; a
server that ignores `Range` (200 instead of 206) starts the file again. A sidecar
`<name>.json` records the URL and size, so a later call reuses a complete file and never a file
of another size. When the server gives the file's SHA-256 (an `ETag` or `X-Linked-Etag` of 64
hex digits, as Hugging Face does for large files), the complete file is checked against it too
and started again if it differs. Processes downloading the same file (several chunk runs of one
version) take turns through a lock file: the first downloads, the others then find the file
complete. Used for the static dumps and the functional recordings (`microns_assets.functional`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from microns_assets.cave.errors import CaveError

CHUNK_BYTES = 1 << 20
RETRY_STATUSES = {429, 500, 502, 503, 504}
STATIC_HINT = (
    "the static dump has no such file (is the version expired and published as a dump? see "
    "MICRONS_STATIC_BASE)"
)


class DownloadError(CaveError):
    """A dump file could not be downloaded completely; nothing was left under its final name.

    Retryable: the bytes received are kept and the next attempt resumes from them.
    """

    retryable = True
    outage = "Static dump download incomplete"


class DumpMissingError(CaveError):
    """The static dump has no such file (HTTP 404/403)."""


@dataclass(frozen=True)
class Downloaded:
    """A complete local copy of a dump file."""

    url: str
    path: Path
    bytes: int
    reused: bool  # complete from an earlier download: no request made
    resumed: int  # times the download continued from bytes already received
    sha256: str | None = None  # checked against the server's, when it gave one


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _complete(path: Path) -> dict | None:
    """The sidecar of a complete earlier download at `path` (`url`, `bytes`, ...), else None."""
    try:
        facts = json.loads(_sidecar(path).read_text())
        size = facts["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return facts if path.is_file() and path.stat().st_size == size else None


def _reused(url: str, path: Path, facts: dict) -> Downloaded:
    return Downloaded(url, path, facts["bytes"], True, 0, facts.get("sha256"))


def _server_sha256(response: requests.Response) -> str | None:
    """The file's SHA-256 as the server states it (64 hex digits in an ETag), else None."""
    for name in ("X-Linked-Etag", "ETag"):
        value = response.headers.get(name, "").removeprefix("W/").strip('"').lower()
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    return None


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def _total(response: requests.Response) -> int | None:
    if response.status_code == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _start(response: requests.Response) -> int | None:
    """The first byte of a 206 answer (`Content-Range: bytes START-END/TOTAL`)."""
    value = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-", 1)[0]
    return int(value) if value.isdigit() else None


def download(
    session: requests.Session,
    url: str,
    path: Path,
    *,
    attempts: int = 8,
    backoff_s: float = 0.5,
    timeout_s: tuple[float, float] = (10.0, 300.0),
    on_bytes: Callable[[int, int | None], None] | None = None,
    missing_hint: str = STATIC_HINT,
) -> Downloaded:
    """Download `url` to `path` (resuming a `.part` left by an earlier try); verified size.

    `on_bytes(received, total)` is called as data arrives. Raises `DumpMissingError` when the
    server answers 401/403/404 (its message: the URL, the status and `missing_hint`), and
    `DownloadError` naming the URL when the download stays incomplete or corrupt after
    `attempts` requests.
    """
    if (facts := _complete(path)) is not None:
        return _reused(url, path, facts)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(path.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if (facts := _complete(path)) is not None:  # another process finished it meanwhile
            return _reused(url, path, facts)
        how = (attempts, backoff_s, timeout_s, on_bytes, missing_hint)
        return _download(session, url, path, *how)


def _download(
    session: requests.Session,
    url: str,
    path: Path,
    attempts: int,
    backoff_s: float,
    timeout_s: tuple[float, float],
    on_bytes: Callable[[int, int | None], None] | None,
    missing_hint: str,
) -> Downloaded:
    part = path.with_name(path.name + ".part")
    resumed, last_error, sha256 = 0, "no attempt made", None
    for attempt in range(max(1, attempts)):
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        try:
            with session.get(url, headers=headers, stream=True, timeout=timeout_s) as response:
                if response.status_code == 416 and have:  # nothing after `have`: start again
                    part.unlink()
                    last_error = "the server refused to resume (416)"
                    continue
                if response.status_code in RETRY_STATUSES:
                    last_error = f"HTTP {response.status_code}"
                    time.sleep(min(backoff_s * 2**attempt, 30.0))
                    continue
                if response.status_code in (401, 403, 404):
                    raise DumpMissingError(f"{url}: HTTP {response.status_code}: {missing_hint}")
                if response.status_code not in (200, 206):
                    raise DownloadError(f"{url}: unexpected HTTP {response.status_code}")
                total = _total(response)
                sha256 = _server_sha256(response) or sha256
                if response.status_code == 206 and _start(response) != have:
                    part.unlink(missing_ok=True)  # not the part asked for: start again
                    last_error = f"the server sent another range than bytes={have}-"
                    continue
                mode = "ab" if response.status_code == 206 else "wb"
                if mode == "ab" and have:
                    resumed += 1
                received = have if mode == "ab" else 0
                # keep what arrives before a cut (urllib3 would drop its last read and raise):
                # the length check below finds the file short, and the next attempt resumes
                response.raw.enforce_content_length = False
                with part.open(mode) as out:
                    for block in response.iter_content(CHUNK_BYTES):
                        out.write(block)
                        received += len(block)
                        if on_bytes is not None:
                            on_bytes(received, total)
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as err:
            last_error = f"{type(err).__name__}: {err}"
            time.sleep(min(backoff_s * 2**attempt, 30.0))
            continue
        size = part.stat().st_size
        if total is None:
            raise DownloadError(f"{url}: the server sent no length; cannot verify the file")
        if size == total and sha256 is not None and file_sha256(part) != sha256:
            part.unlink()  # complete but not the server's bytes: start again
            last_error = f"the {size} bytes received do not have the server's SHA-256 {sha256}"
            continue
        if size == total:
            os.replace(part, path)
            facts = {"url": url, "bytes": size, **({"sha256": sha256} if sha256 else {})}
            _sidecar(path).write_text(json.dumps(facts))
            return Downloaded(url, path, size, reused=False, resumed=resumed, sha256=sha256)
        if size > total:
            part.unlink()
        last_error = f"received {size} of {total} bytes"
    raise DownloadError(
        f"{url}: incomplete after {attempts} attempts ({last_error}); the bytes received are kept "
        f"in {part} and the next run resumes from them"
    )
