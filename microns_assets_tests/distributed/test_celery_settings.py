"""Celery settings and a broker that does not answer: one clear error naming the setting.

No daemon or worker here: every check happens before anything is submitted.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from microns_assets.executors import BrokerError, check_broker
from microns_assets.settings import SettingsError, celery_broker_from_env, chunk_runs_from_env
from microns_assets_tests.distributed.servers import redis_server
from microns_assets_tests.loopback import free_port
from microns_assets_tests.materialize.cli_helpers import clean_env, materialize_args, run_cli

CELERY = {"MICRONS_EXECUTOR": "celery"}


def test_celery_needs_a_broker_url_of_a_known_scheme():
    with pytest.raises(SettingsError, match="needs MICRONS_CELERY_BROKER"):
        celery_broker_from_env(CELERY)
    with pytest.raises(SettingsError, match="MICRONS_CELERY_BROKER='localhost:6379'"):
        celery_broker_from_env({**CELERY, "MICRONS_CELERY_BROKER": "localhost:6379"})
    url = "redis://h:6379/0"
    assert celery_broker_from_env({**CELERY, "MICRONS_CELERY_BROKER": url}) == url
    assert celery_broker_from_env({"MICRONS_CELERY_BROKER": url}) is None  # not celery: unread


@pytest.mark.parametrize("value", ["0", "33", "two"])
def test_chunk_runs_is_one_to_the_number_of_chunks(value):
    with pytest.raises(SettingsError, match="MICRONS_CHUNK_RUNS"):
        chunk_runs_from_env({"MICRONS_CHUNK_RUNS": value})


def test_a_broker_that_answers_passes_and_a_dead_one_is_named_without_its_password():
    with redis_server() as url:
        check_broker(url)  # raises if not
    dead = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerError) as caught:
        check_broker(dead, timeout_s=1.0)
    message = str(caught.value)
    assert "MICRONS_CELERY_BROKER=" in message and "127.0.0.1" in message
    assert "hunter2" not in message


def _celery_env(emulator_cache, broker: str) -> dict[str, str]:
    return {**clean_env(emulator_cache), **CELERY, "MICRONS_CELERY_BROKER": broker}


def test_materialize_with_celery_needs_submit(session_emulator, emulator_cache, tmp_path):
    env = _celery_env(emulator_cache, "redis://127.0.0.1:6379/0")
    out = run_cli(materialize_args(session_emulator, tmp_path / "home", tmp_path / "d"), env)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "MICRONS_EXECUTOR=celery" in out.stderr and "--submit" in out.stderr
    assert not (tmp_path / "d").exists()


def test_submit_to_a_dead_broker_is_one_error_naming_the_setting(
    session_emulator, emulator_cache, tmp_path
):
    env = _celery_env(emulator_cache, f"redis://127.0.0.1:{free_port()}/0")
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "d", "--submit")
    out = run_cli(args, env)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "cannot reach the Celery broker MICRONS_CELERY_BROKER=redis://127.0.0.1" in out.stderr
    assert "submitted backfill" not in out.stdout  # nothing was submitted


def test_a_malformed_broker_url_is_refused_before_anything_runs(
    session_emulator, emulator_cache, tmp_path
):
    env = _celery_env(emulator_cache, "127.0.0.1:6379")
    args = materialize_args(session_emulator, tmp_path / "home", tmp_path / "d", "--submit")
    out = run_cli(args, env)
    assert out.returncode == 2
    assert "MICRONS_CELERY_BROKER='127.0.0.1:6379' is not a broker URL" in out.stderr


def test_a_run_with_a_dead_broker_fails_naming_the_setting(emulator_cache, tmp_path):
    """The run's own check: a run the daemon launched would fail the same way."""
    env = _celery_env(emulator_cache, f"redis://127.0.0.1:{free_port()}/0")
    env["DAGSTER_HOME"] = str(tmp_path)
    script = (
        "import dagster as dg\n"
        "from microns_assets_tests.distributed import celery_job\n"
        "with dg.DagsterInstance.get() as instance:\n"
        "    result = dg.execute_job(dg.reconstructable(celery_job.raw_tables_job), instance,\n"
        "                            tags={'dagster/partition': '1300'}, raise_on_error=False)\n"
        "    print('SUCCESS' if result.success else 'FAILED')\n"
        "    for event in result.all_events:\n"
        "        error = getattr(event.event_specific_data, 'error', None)\n"
        "        if error is not None:\n"
        "            print(error.message)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "FAILED" in out.stdout
    assert "cannot reach the Celery broker MICRONS_CELERY_BROKER=" in out.stdout


def test_the_workers_settings_are_the_runs_settings():
    """deploy/celery/worker.yaml repeats the executor's Celery settings; they must not drift."""
    import yaml

    from microns_assets.executors import CELERY_SETTINGS
    from microns_assets_tests.distributed.servers import WORKER_YAML

    config = yaml.safe_load(WORKER_YAML.read_text())["execution"]["config"]
    assert config["config_source"] == CELERY_SETTINGS
    assert config["broker"] == config["backend"] == {"env": "MICRONS_CELERY_BROKER"}
