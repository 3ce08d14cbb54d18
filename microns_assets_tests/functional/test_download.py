"""Downloading the functional recordings: resumed after cut connections, checked by SHA-256."""

from __future__ import annotations

import hashlib

import pytest
import requests

from microns_assets.emulator import Faults
from microns_assets.static_dumps.download import DownloadError, download
from microns_assets_tests.functional.conftest import recordings_url


def _served(emulator) -> bytes:
    return requests.get(recordings_url(emulator), timeout=30).content


def test_a_cut_connection_resumes_to_the_same_bytes_and_the_checksum_is_checked(emulator, tmp_path):
    served = _served(emulator)
    emulator.server.stats.reset()
    emulator.server.faults = Faults(drop_rate=0.5, seed=4)
    got = download(requests.Session(), recordings_url(emulator), tmp_path / "f.h5", backoff_s=0.01)
    assert got.resumed >= 1 and emulator.server.stats.faults >= 1
    assert (tmp_path / "f.h5").read_bytes() == served
    assert got.sha256 == hashlib.sha256(served).hexdigest()
    assert not (tmp_path / "f.h5.part").exists()


def test_bytes_that_differ_from_the_servers_checksum_are_downloaded_again(emulator, tmp_path):
    served = _served(emulator)
    emulator.server.functional.corrupt_answers = 1  # right length, one byte wrong
    download(requests.Session(), recordings_url(emulator), tmp_path / "f.h5", backoff_s=0.01)
    assert emulator.server.functional.corrupt_answers == 0  # the bad answer was received
    assert (tmp_path / "f.h5").read_bytes() == served


def test_bytes_that_never_match_the_checksum_are_never_stored(emulator, tmp_path):
    emulator.server.functional.corrupt_answers = 100
    with pytest.raises(DownloadError, match="do not have the server's SHA-256"):
        download(
            requests.Session(), recordings_url(emulator), tmp_path / "f.h5", attempts=3,
            backoff_s=0.01,
        )  # fmt: skip
    assert not (tmp_path / "f.h5").exists()


def test_a_file_without_a_stated_checksum_is_checked_by_length_only(emulator, tmp_path):
    # the static dumps' server gives no SHA-256 ETag: nothing is claimed about a checksum
    name = "nucleus_detection_v0_merged_header.csv"
    url = f"{emulator.url}/static/{emulator.datastack}/v1412/{name}"
    got = download(requests.Session(), url, tmp_path / name)
    assert got.sha256 is None
    assert (tmp_path / name).read_bytes() == emulator.server.static.get(1412, name)
