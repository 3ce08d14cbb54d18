"""Celery settings and a broker that does not answer: one clear error naming the setting.

No daemon or worker here: every check happens before anything is submitted.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from microns_assets.executors import BrokerError, check_broker
from microns_assets.processing.chunks import N_CHUNKS
from microns_assets.settings import (
    SettingsError,
    celery_broker_from_env,
    chunk_runs_from_env,
    chunks_per_run,
)
from microns_assets_tests.distributed.servers import redis_server
from microns_assets_tests.loopback import free_port
from microns_assets_tests.materialize.cli_helpers import clean_env, materialize_args, run_cli

CELERY = {"MICRONS_EXECUTOR": "celery"}


def test_celery_needs_a_redis_url_and_never_prints_its_password():
    with pytest.raises(SettingsError, match="needs MICRONS_CELERY_BROKER"):
        celery_broker_from_env(CELERY)
    with pytest.raises(SettingsError, match="MICRONS_CELERY_BROKER='localhost:6379'"):
        celery_broker_from_env({**CELERY, "MICRONS_CELERY_BROKER": "localhost:6379"})
    # AMQP would be a broker but not a result backend: refused, password hidden
    with pytest.raises(SettingsError, match="not a Redis URL") as caught:
        celery_broker_from_env({**CELERY, "MICRONS_CELERY_BROKER": "amqp://me:hunter2@h//"})
    assert "hunter2" not in str(caught.value) and "amqp://me:***@h//" in str(caught.value)
    with pytest.raises(SettingsError, match="ssl_cert_reqs"):
        celery_broker_from_env({**CELERY, "MICRONS_CELERY_BROKER": "rediss://h:6380/0"})
    url = "redis://:pw@h:6379/0"
    assert celery_broker_from_env({**CELERY, "MICRONS_CELERY_BROKER": url}) == url
    assert celery_broker_from_env({"MICRONS_CELERY_BROKER": url}) is None  # not celery: unread


def test_chunk_runs_are_exact_for_every_count_accepted():
    """Each accepted N makes exactly N runs (the policy's limit); any other N is refused."""
    accepted = []
    for runs in range(1, N_CHUNKS + 2):
        try:
            chunk_runs_from_env({"MICRONS_CHUNK_RUNS": str(runs)})
        except SettingsError as err:
            assert f"MICRONS_CHUNK_RUNS={runs}" in str(err) and "e.g." in str(err)
            continue
        accepted.append(runs)
        per_run = chunks_per_run(runs)
        assert -(-N_CHUNKS // per_run) == runs  # ceil(32 / per run) runs: exactly N
    assert accepted[:8] == [1, 2, 3, 4, 5, 6, 7, 8] and accepted[-1] == N_CHUNKS
    for value in ("0", "two"):
        with pytest.raises(SettingsError, match="MICRONS_CHUNK_RUNS"):
            chunk_runs_from_env({"MICRONS_CHUNK_RUNS": value})


def test_a_broker_that_accepts_but_never_answers_fails_within_the_timeout():
    with socket.socket() as silent:  # listens, never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        start = time.monotonic()
        with pytest.raises(BrokerError, match="cannot reach the Celery broker"):
            check_broker(url, timeout_s=1.0)
        assert time.monotonic() - start < 5.0


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
    assert "MICRONS_CELERY_BROKER='127.0.0.1:6379' is not a Redis URL" in out.stderr


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


def test_dagster_celery_writes_the_settings_a_worker_loads(tmp_path, monkeypatch):
    """`dagster-celery worker start -y worker.yaml` writes the module its Celery app loads."""
    import importlib.util

    from dagster_celery.cli import get_config_dir

    from microns_assets.executors import CELERY_SETTINGS
    from microns_assets_tests.distributed.servers import WORKER_YAML

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    monkeypatch.setenv("MICRONS_CELERY_BROKER", "redis://127.0.0.1:6399/0")
    folder = Path(get_config_dir(str(WORKER_YAML)))
    spec = importlib.util.spec_from_file_location("cfg", folder / "dagster_celery_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.broker_url == module.result_backend == "redis://127.0.0.1:6399/0"
    for name, value in CELERY_SETTINGS.items():
        assert getattr(module, name) == value
