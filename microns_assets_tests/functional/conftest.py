"""The emulator's functional recordings file, downloaded once per session for the reader tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from microns_assets.static_dumps.download import download


def recordings_url(emulator) -> str:
    return f"{emulator.url}/functional/{emulator.datastack}/microns.h5"


@pytest.fixture(scope="session")
def recordings(session_emulator, tmp_path_factory) -> Path:
    """The file as served, downloaded to a temporary folder."""
    path = tmp_path_factory.mktemp("functional") / "microns.h5"
    download(requests.Session(), recordings_url(session_emulator), path)
    return path
