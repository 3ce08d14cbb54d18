"""deploy/kubernetes/: what can be checked without a cluster (none is available here).

The image installs the `kubernetes` extra, which `.ci/run` installs too (the `test` extra
includes it): so the image's Python environment is the one these tests run in. The Helm values
are parsed and checked against what the chart and this package read.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import re
from pathlib import Path

import dagster as dg
import yaml

from microns_assets import settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"
#: Variables read by libraries we use, not by `settings.py`.
LIBRARY_VARIABLES = {"FSSPEC_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _values() -> dict:
    return yaml.safe_load((DEPLOY / "values.yaml").read_text())


def test_the_image_installs_the_kubernetes_extra_with_consistent_pins():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "pip install '.[kubernetes]'" in dockerfile
    extras = configparser.ConfigParser()
    extras.read(SETUP_CFG)
    section = "options.extras_require"
    # CI installs what the image installs (the test extra includes the kubernetes extra)
    assert "%(kubernetes)s" in extras.get(section, "test", raw=True)
    kubernetes = extras.get(section, "kubernetes")  # with %(distributed)s expanded
    # every dagster-* integration pinned to the release that requires our dagster exactly
    dagster = importlib.metadata.version("dagster")
    for package in ("dagster-k8s", "dagster-postgres", "dagster-celery"):
        pinned = re.search(rf"^{package}==([\d.]+)$", kubernetes, re.MULTILINE)
        assert pinned is not None, (package, kubernetes)
        assert pinned.group(1) == importlib.metadata.version(package)  # installed as pinned
        assert f"dagster=={dagster}" in (importlib.metadata.requires(package) or [])


def test_the_run_launcher_of_the_values_loads_in_this_environment():
    from dagster_k8s import K8sRunLauncher

    values = _values()
    assert values["runLauncher"]["type"] == K8sRunLauncher.__name__
    assert "k8sRunLauncher" in values["runLauncher"]["config"]


def test_the_values_serve_our_code_location_with_settings_we_read():
    values = _values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "microns_assets.definitions"]
    assert set(deployment["image"]) == {"repository", "tag", "pullPolicy"}
    env = {e["name"]: e["value"] for e in deployment["env"]}
    ours = {v for k, v in vars(settings).items() if k.startswith("ENV_")}
    assert set(env) <= ours | LIBRARY_VARIABLES, set(env) - ours - LIBRARY_VARIABLES
    # the values are valid settings: the code location would load with them
    assert settings.in_flight_from_env(env) >= 1
    assert settings.chunk_runs_from_env(env) > 1  # chunks spread over several run pods
    assert settings.executor_from_env(env) == "in_process"  # one pod per run does the work


def test_the_pool_and_run_limits_are_whole_numbers():
    concurrency = _values()["concurrency"]
    assert concurrency["enabled"] is True
    assert isinstance(concurrency["pools"]["defaultLimit"], int)
    assert concurrency["pools"]["defaultLimit"] >= 1
    assert isinstance(concurrency["runs"]["maxConcurrentRuns"], int)
    # the same limits as a dagster.yaml would state them are valid instance config
    instance_config = {
        "concurrency": {
            "pools": {"default_limit": concurrency["pools"]["defaultLimit"]},
            "runs": {"max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"]},
        }
    }
    with dg.instance_for_test(overrides=instance_config) as instance:
        assert (
            instance.get_concurrency_config().pool_config.default_pool_limit
            == (concurrency["pools"]["defaultLimit"])
        )
