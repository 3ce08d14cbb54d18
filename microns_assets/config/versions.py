"""Loader and validator for `versions.yaml`: the CAVE table behind each role, per version.

Holds the schema of the file, the rule for versions newer than any listed one, and the error a
malformed file raises. Nothing here talks to CAVE or imports Dagster.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from microns_assets.catalogue import ROLES  # re-exported: `config.ROLES`

DEFAULT_PATH = "versions.yaml"
#: Environment variable naming a versions file to use instead of the packaged one.
ENV_VERSIONS_FILE = "MICRONS_VERSIONS_FILE"


class ConfigError(ValueError):
    """A configuration file is missing, malformed or inconsistent."""


class RetrySettings(BaseModel):
    """Asset-level retries for steps that query CAVE (the seed: `max_retries=10`, `delay=5`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(10, ge=0, le=100)
    delay_s: float = Field(5.0, ge=0)


class VersionConfig(BaseModel):
    """One materialization version: its table per role, archive state and retry policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int
    archived: bool = False
    tables: dict[str, str | None]
    retry: RetrySettings
    inherited_from: int | None = None

    def table_for(self, role: str) -> str | None:
        """The CAVE table behind `role` in this version, or None if the version lacks it."""
        if role not in ROLES:
            raise KeyError(f"unknown role {role!r}; roles are {list(ROLES)}")
        return self.tables[role]


class _VersionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    archived: bool = False
    tables: dict[str, str | None]
    retry: RetrySettings | None = None

    @field_validator("tables")
    @classmethod
    def _every_role_named(cls, tables: dict[str, str | None]) -> dict[str, str | None]:
        unknown = sorted(set(tables) - set(ROLES))
        missing = [r for r in ROLES if r not in tables]
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; roles are {list(ROLES)}")
        if missing:
            raise ValueError(f"role(s) {missing} not given (write `role: null` if absent)")
        if not tables["nucleus"]:
            raise ValueError("the nucleus role cannot be null: every version has a nucleus table")
        return tables


class _VersionsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retry_defaults: RetrySettings = RetrySettings()
    extra_tables: list[str] = Field(default_factory=list)
    versions: dict[int, _VersionEntry]


class VersionsConfig:
    """The validated content of a versions file."""

    def __init__(
        self,
        by_version: dict[int, VersionConfig],
        source: str,
        extra_tables: tuple[str, ...] = (),
    ) -> None:
        self._by_version = dict(sorted(by_version.items()))
        self.source = source
        #: Further CAVE tables to download as `cave_extra/<table>` (`extra_tables.py`).
        self.extra_tables = extra_tables

    @property
    def versions(self) -> list[int]:
        """The versions the file lists, ascending."""
        return list(self._by_version)

    def get(self, version: int) -> VersionConfig:
        """The config of `version`.

        A version newer than every listed one (CAVE published it after this file was written)
        inherits the newest listed table map, marked with `inherited_from`; the raw assets then
        check each table against CAVE. Any other unlisted version is an error.
        """
        if version in self._by_version:
            return self._by_version[version]
        newest = max(self._by_version)
        if version > newest:
            base = self._by_version[newest]
            return base.model_copy(
                update={"version": version, "archived": False, "inherited_from": newest}
            )
        raise ConfigError(
            f"Materialization version {version} is not in {self.source}. Listed versions: "
            f"{self.versions}. Add an entry for it (its table per role) to that file."
        )


def parse_versions_config(text: str, source: str) -> VersionsConfig:
    """Parse and validate the YAML text of a versions file."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must be a mapping with a `versions:` key, got {raw!r:.80}")
    try:
        parsed = _VersionsFile.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"{source} is malformed: {problems}") from err
    if not parsed.versions:
        raise ConfigError(f"{source} lists no versions")
    by_version = {
        v: VersionConfig(
            version=v,
            archived=e.archived,
            tables=e.tables,
            retry=e.retry or parsed.retry_defaults,
        )
        for v, e in parsed.versions.items()
    }
    return VersionsConfig(by_version, source, tuple(parsed.extra_tables))


def load_versions_config(path: str | None = None) -> VersionsConfig:
    """Load the versions file: `path`, else `$MICRONS_VERSIONS_FILE`, else the packaged one."""
    return _load(path or os.environ.get(ENV_VERSIONS_FILE) or None)


@cache
def _load(path: str | None) -> VersionsConfig:
    if path is None:
        ref = resources.files("microns_assets.config").joinpath(DEFAULT_PATH)
        return parse_versions_config(ref.read_text(), f"microns_assets/config/{DEFAULT_PATH}")
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"versions file {path} does not exist")
    return parse_versions_config(file.read_text(), str(file))
