"""The run executor chosen by `MICRONS_EXECUTOR`: in process, a process per step, or Celery.

`celery` is `dagster-celery`'s executor (each step a task on the broker, run by whichever
`dagster-celery worker` takes it, on any machine) with the broker of `MICRONS_CELERY_BROKER`
as broker and result backend. Before it submits anything, a run checks that the broker
answers, so a wrong URL fails the run with one error naming the setting instead of Celery's
retries and a stack of connection errors. `dagster_celery` is imported only when chosen.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from microns_assets.settings import (
    ENV_CELERY_BROKER,
    ENV_EXECUTOR,
    SettingsError,
    celery_broker_from_env,
    executor_from_env,
    redacted_url,
)

#: How long the broker check waits for the broker before it gives up.
BROKER_TIMEOUT_S = 5.0
#: Celery settings of runs and workers (deploy/celery/worker.yaml repeats them for the workers).
#: A step is acknowledged when it ends, so a busy worker holds no second step back from an idle
#: one; Redis hands an unacknowledged step to another worker only after `visibility_timeout`
#: (7 days: a chunk step of a real version can run for hours and must not run twice at once).
#: The retry options are dagster-celery's defaults, which this dict replaces.
CELERY_SETTINGS = {
    "task_acks_late": True,
    "worker_prefetch_multiplier": 1,
    "broker_transport_options": {
        "visibility_timeout": 604800,
        "max_retries": 3,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    },
}


class BrokerError(dg.DagsterError):
    """The Celery broker of `MICRONS_CELERY_BROKER` does not answer."""


def check_broker(url: str, timeout_s: float = BROKER_TIMEOUT_S) -> None:
    """Ping the (Redis) broker once; `BrokerError` naming the setting when it does not answer.

    Waits at most `timeout_s` to connect and as long for the answer (no retries), also for a
    host that drops packets instead of refusing.
    """
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as err:
        raise BrokerError(
            f"cannot reach the Celery broker {ENV_CELERY_BROKER}={redacted_url(url)} "
            f"({type(err).__name__}: {err}). Start the broker, or set {ENV_CELERY_BROKER} to "
            "the URL your `dagster-celery worker`s listen to (the same value in every process: "
            "daemon, run workers, Celery workers)."
        ) from err


def _celery_executor(broker: str) -> dg.ExecutorDefinition:
    from dagster._core.execution.retries import RetryMode

    try:
        from dagster_celery import celery_executor
        from dagster_celery.executor import CeleryExecutor
    except ImportError as err:
        raise SettingsError(
            f"{ENV_EXECUTOR}=celery needs dagster-celery and the Redis client: install the "
            f"package with its `distributed` extra (pip install -e '.[distributed]'); {err}"
        ) from err

    class CheckedCeleryExecutor(CeleryExecutor):
        """`dagster-celery`'s executor that checks its broker before submitting steps."""

        def execute(self, plan_context, execution_plan):
            check_broker(self.broker)
            return super().execute(plan_context, execution_plan)

    @dg.executor(
        name="celery",
        config_schema=celery_executor.config_schema,
        requirements=dg.multiple_process_executor_requirements(),
    )
    def checked_celery_executor(init_context: dg.InitExecutorContext) -> CeleryExecutor:
        config = init_context.executor_config
        return CheckedCeleryExecutor(
            broker=config.get("broker") or broker,
            backend=config.get("backend") or broker,
            config_source=config.get("config_source"),
            include=config.get("include"),
            retries=RetryMode.from_config(config["retries"]),
        )

    # the broker is the backend too (dagster-celery's default backend, rpc://, needs AMQP)
    return checked_celery_executor.configured(
        {"broker": broker, "backend": broker, "config_source": CELERY_SETTINGS}
    )


def executor_from_settings(environ: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition:
    """The executor `MICRONS_EXECUTOR` names (validated, with its broker for Celery)."""
    name = executor_from_env(environ)
    if name == "celery":
        return _celery_executor(celery_broker_from_env(environ))
    return {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}[name]
