"""versions.yaml: validated on load, consistent with what CAVE (the emulator) publishes."""

from __future__ import annotations

import pytest

from microns_assets.config import ROLES, ConfigError, load_versions_config
from microns_assets.config.versions import parse_versions_config
from microns_assets.emulator import catalog

GOOD_TABLES = "\n".join(f"      {r}: {'t_' + r if r == 'nucleus' else 'null'}" for r in ROLES)


def parse(text: str):
    return parse_versions_config(text, "test.yaml")


def test_packaged_file_matches_the_tables_each_version_publishes():
    config = load_versions_config()
    for version in config.versions:
        published = set(catalog.tables_in(version))
        for role in ROLES:
            table = config.get(version).table_for(role)
            assert table is None or table in published, (version, role, table)


def test_packaged_file_marks_the_expired_versions_archived():
    config = load_versions_config()
    expired = {v.number for v in catalog.VERSIONS if v.expired}
    assert {v for v in config.versions if config.get(v).archived} == expired


def test_seed_defaults_for_retries():
    retry = load_versions_config().get(1300).retry
    assert (retry.max_retries, retry.delay_s) == (10, 5.0)


def test_a_newer_version_inherits_the_newest_table_map():
    config = load_versions_config()
    newer = config.get(2000)
    assert newer.inherited_from == 1822
    assert newer.tables == config.get(1822).tables


def test_an_unlisted_older_version_is_an_error_naming_the_file():
    with pytest.raises(ConfigError, match=r"not in microns_assets/config/versions\.yaml"):
        load_versions_config().get(500)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("versions: [1, 2", "not valid YAML"),
        ("- just\n- a list", "must be a mapping"),
        ("versions: {}", "lists no versions"),
        (f"versions:\n  1300:\n    tables:\n{GOOD_TABLES}\n    colour: red", "colour"),
        ("versions:\n  1300:\n    tables:\n      nucleus: n", "not given"),
        (f"versions:\n  1300:\n    tables:\n{GOOD_TABLES}\n      synapses: s", "unknown role"),
        (
            f"versions:\n  1300:\n    tables:\n{GOOD_TABLES.replace('t_nucleus', 'null')}",
            "nucleus role cannot be null",
        ),
        (
            f"versions:\n  abc:\n    tables:\n{GOOD_TABLES}",
            "versions.abc",
        ),
        (
            f"retry_defaults:\n  max_retries: -1\nversions:\n  1:\n    tables:\n{GOOD_TABLES}",
            "max_retries",
        ),
    ],
)
def test_malformed_files_say_what_is_wrong(text, message):
    with pytest.raises(ConfigError, match=message):
        parse(text)


def test_a_missing_custom_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_versions_config(str(tmp_path / "nope.yaml"))


def test_per_version_retry_overrides_the_defaults():
    text = (
        "retry_defaults:\n  max_retries: 3\n  delay_s: 1\nversions:\n"
        f"  1:\n    tables:\n{GOOD_TABLES}\n"
        f"  2:\n    retry:\n      max_retries: 7\n      delay_s: 0.5\n    tables:\n{GOOD_TABLES}"
    )
    config = parse(text)
    assert config.get(1).retry.max_retries == 3
    assert (config.get(2).retry.max_retries, config.get(2).retry.delay_s) == (7, 0.5)
