"""Project configuration files (YAML) and their validated loaders. No Dagster imports here."""

from microns_assets.config.versions import (
    ROLES,
    ConfigError,
    RetrySettings,
    VersionConfig,
    VersionsConfig,
    load_versions_config,
)

__all__ = [
    "ROLES",
    "ConfigError",
    "RetrySettings",
    "VersionConfig",
    "VersionsConfig",
    "load_versions_config",
]
