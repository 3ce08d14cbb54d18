"""Where the static dumps are read from and downloaded to (`MICRONS_STATIC_BASE`/`_DIR`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from microns_assets.settings import (
    PUBLIC_STATIC_BASE,
    Settings,
    SettingsError,
    static_base,
    static_dir_from_env,
)


def test_the_dump_root_defaults_per_datastack_and_the_setting_wins():
    assert static_base("minnie65_public", "https://global.daf-apis.com", {}) == PUBLIC_STATIC_BASE
    assert PUBLIC_STATIC_BASE.endswith("/mat_dbs/public/minnie65_phase3_v1")
    emulated = static_base("minnie65_synthetic", "http://127.0.0.1:8000/", {})
    assert emulated == "http://127.0.0.1:8000/static/minnie65_synthetic"
    mirror = {"MICRONS_STATIC_BASE": "https://mirror.example.org/dumps/"}
    assert static_base("minnie65_public", "x", mirror) == "https://mirror.example.org/dumps"
    with pytest.raises(SettingsError, match="set MICRONS_STATIC_BASE"):
        static_base("h01_c3_flat", "https://global.daf-apis.com", {})


def test_downloads_go_beside_a_local_data_dir_else_to_the_user_cache(tmp_path):
    local = Settings("https://global.daf-apis.com", "minnie65_public", str(tmp_path))
    assert static_dir_from_env(local, {}) == str(tmp_path / "minnie65_public" / "static")
    remote = Settings("https://global.daf-apis.com", "minnie65_public", "s3://bucket/data")
    cached = Path.home() / ".cache" / "microns_assets" / "static" / "minnie65_public"
    assert static_dir_from_env(remote, {}) == str(cached)
    assert static_dir_from_env(remote, {"MICRONS_STATIC_DIR": "/scratch/dumps"}) == "/scratch/dumps"
