"""Where the functional recordings come from and where they are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from microns_assets.settings import (
    Settings,
    SettingsError,
    functional_file,
    functional_url,
)

HF = "https://huggingface.co/datasets/NeuroBLab/MICrONS/resolve/main/microns.h5"


def test_the_public_datastack_reads_the_file_microns_combiner_reads():
    assert functional_url("minnie65_public", "https://global.daf-apis.com", {}) == HF


def test_the_synthetic_datastack_reads_its_emulator():
    url = functional_url("minnie65_synthetic", "http://127.0.0.1:5000/", {})
    assert url == "http://127.0.0.1:5000/functional/minnie65_synthetic/microns.h5"


def test_the_setting_wins_and_another_datastack_needs_it():
    env = {"MICRONS_FUNCTIONAL_URL": " https://example.org/rec.h5 "}
    assert functional_url("minnie65_public", "https://x", env) == "https://example.org/rec.h5"
    with pytest.raises(SettingsError, match="MICRONS_FUNCTIONAL_URL"):
        functional_url("h01_c3_flat", "https://x", {})


def test_the_file_is_beside_the_tables_or_in_the_cache_for_remote_data():
    local = Settings("embedded", "minnie65_synthetic", "/data/here")
    assert functional_file(local) == Path("/data/here/minnie65_synthetic/functional/microns.h5")
    remote = Settings("embedded", "minnie65_public", "s3://bucket/tables")
    cache = Path.home() / ".cache" / "microns_assets" / "functional" / "minnie65_public"
    assert functional_file(remote) == cache / "microns.h5"
