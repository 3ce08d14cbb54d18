"""Downloading a static dump file: resumed after cut connections, verified, never half a file."""

from __future__ import annotations

import pytest
import requests

from microns_assets.emulator import Faults
from microns_assets.static_dumps.download import DownloadError, DumpMissingError, download
from microns_assets.static_dumps.source import table_files

VERSION = 1412  # expired in the emulator
NUCLEUS = "nucleus_detection_v0"


def _url(emulator, name: str) -> str:
    return f"{emulator.url}/static/{emulator.datastack}/v{VERSION}/{name}"


def test_a_cut_connection_resumes_to_the_same_bytes(emulator, tmp_path):
    name = table_files(NUCLEUS)[1]
    served = emulator.server.static.get(VERSION, name)
    emulator.server.faults = Faults(drop_rate=0.5, seed=4)  # the first two bodies cut halfway
    got = download(requests.Session(), _url(emulator, name), tmp_path / name, backoff_s=0.01)
    assert got.resumed >= 2 and emulator.server.stats.faults >= 2
    assert (tmp_path / name).read_bytes() == served  # nothing lost, nothing twice
    assert got.bytes == len(served) and not got.reused
    assert not (tmp_path / f"{name}.part").exists()


def test_503s_are_retried(emulator, tmp_path):
    name = table_files(NUCLEUS)[0]
    emulator.server.faults = Faults(fail_rate=0.6, seed=1)
    got = download(requests.Session(), _url(emulator, name), tmp_path / name, backoff_s=0.01)
    assert emulator.server.stats.faults >= 1
    assert (tmp_path / name).read_bytes() == emulator.server.static.get(VERSION, name)
    assert got.resumed == 0


def test_a_complete_file_is_reused_without_a_request(emulator, tmp_path):
    name = table_files(NUCLEUS)[0]
    download(requests.Session(), _url(emulator, name), tmp_path / name)
    before = emulator.server.stats.requests
    again = download(requests.Session(), _url(emulator, name), tmp_path / name)
    assert again.reused and emulator.server.stats.requests == before


def test_a_file_of_another_size_is_downloaded_again(emulator, tmp_path):
    name = table_files(NUCLEUS)[0]
    download(requests.Session(), _url(emulator, name), tmp_path / name)
    (tmp_path / name).write_bytes(b"cut")  # someone truncated it
    again = download(requests.Session(), _url(emulator, name), tmp_path / name)
    assert not again.reused
    assert (tmp_path / name).read_bytes() == emulator.server.static.get(VERSION, name)


def test_an_incomplete_download_leaves_nothing_under_the_final_name(emulator, tmp_path):
    name = table_files(NUCLEUS)[1]
    emulator.server.faults = Faults(drop_rate=1.0)  # every body cut halfway
    with pytest.raises(DownloadError, match="incomplete after 3 attempts") as err:
        download(
            requests.Session(), _url(emulator, name), tmp_path / name, attempts=3, backoff_s=0.01
        )
    assert err.value.retryable
    assert not (tmp_path / name).exists()
    part = tmp_path / f"{name}.part"
    assert 0 < part.stat().st_size < len(emulator.server.static.get(VERSION, name))
    emulator.server.faults = Faults()  # the next run resumes from the bytes kept
    got = download(requests.Session(), _url(emulator, name), tmp_path / name)
    assert got.resumed == 1
    assert (tmp_path / name).read_bytes() == emulator.server.static.get(VERSION, name)


@pytest.mark.parametrize(
    ("version", "name"),
    [(1300, table_files(NUCLEUS)[1]), (VERSION, "no_such_table_merged.csv.gz")],
    ids=["current version", "unknown file"],
)
def test_a_missing_dump_file_is_named(emulator, tmp_path, version, name):
    url = f"{emulator.url}/static/{emulator.datastack}/v{version}/{name}"
    with pytest.raises(DumpMissingError, match="HTTP 404: the static dump has no such file"):
        download(requests.Session(), url, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_dumps_are_public_and_answer_ranges(emulator):
    emulator.server.token = "secret"  # the API needs a token; the bucket does not
    name = table_files(NUCLEUS)[1]
    served = emulator.server.static.get(VERSION, name)
    part = requests.get(_url(emulator, name), headers={"Range": "bytes=10-19"}, timeout=30)
    assert part.status_code == 206 and part.content == served[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(served)}"
    past = requests.get(_url(emulator, name), headers={"Range": f"bytes={len(served)}-"})
    assert past.status_code == 416
