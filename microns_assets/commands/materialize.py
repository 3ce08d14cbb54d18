"""`microns-assets materialize` and `microns-assets demo`: the whole graph of one version.

`demo` is `materialize` of version 1300 on the embedded emulator, followed by the command that
opens the results in the web UI. With the embedded server, the command starts one emulator
process for all its runs (`dev.start_emulator`), rather than one inside each run's process:
started once, and its CPU is not the runs' (3-4 s less for the demo on two cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from microns_assets import catalogue
from microns_assets.commands.environment import (
    CommandError,
    InstanceError,
    cave_connection,
    open_instance,
    resolve,
)
from microns_assets.settings import (
    EMBEDDED,
    ENV_EXECUTOR,
    ENV_SERVER,
    Settings,
    SettingsError,
    celery_broker_from_env,
    executor_from_env,
)

DEMO_VERSION = 1300


def _run_config(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise CommandError(f"cannot read run config {path} (--config): {err}") from err
    if not isinstance(config, dict) or not set(config) <= {"ops"}:
        raise CommandError(
            f"{path} must be a Dagster run config with only an `ops:` section, e.g.\n"
            "ops:\n  synapse_chunks:\n    config:\n      mode: individual"
        )
    return config


def _check_version(settings: Settings, version: int) -> str | None:
    """An error message if the server does not serve `version` at all.

    Expired versions are served: they are read from their static dumps.
    """
    from microns_assets.cave.errors import CaveError

    try:
        with cave_connection(settings) as conn:
            conn.check_version(version, allow_expired=True)
    except CaveError as err:
        return str(err)
    return None


def _print_summary(instance, version: int, out, defs) -> None:
    from microns_assets.materialize.summary import version_summary

    sizes = version_summary(instance, str(version), defs.resolve_asset_graph())
    width = max((len(a) for a in sizes), default=10)
    size_width = max((len(size) for size, _, _ in sizes.values()), default=10)
    for asset, (size, path, parts) in sizes.items():
        chunks = f" in {parts} chunks" if parts > 1 else ""
        print(f"  {asset:<{width}}  {size:>{size_width}}{chunks}  {path}", file=out)


def _validate(version: int, run_config: dict) -> tuple[str | None, object]:
    """A message if the versions file, the settings or the run config would fail the runs.

    Returns (message or None, the definitions when they loaded). The versions file comes
    first: the definitions read it (its `extra_tables`).
    """
    from microns_assets.materialize.validate import (
        InvalidInput,
        check_run_config,
        check_versions_file,
    )

    try:
        check_versions_file(version)
    except InvalidInput as err:
        return str(err), None
    try:
        from microns_assets.definitions import defs  # after `resolve` exported the settings
    except SettingsError as err:
        return str(err), None
    try:
        check_run_config(run_config, defs.resolve_implicit_global_asset_job_def())
    except InvalidInput as err:
        return str(err), defs
    return None, defs


def _with_force(run_config: dict) -> dict:
    """`run_config` with the chunk step's `force: true` (every chunk downloaded again)."""
    ops = dict(run_config.get("ops") or {})
    op = catalogue.SYNAPSE_CHUNKS.name  # the chunk step is named as its asset
    chunks = dict(ops.get(op) or {})
    chunks["config"] = {**(chunks.get("config") or {}), "force": True}
    return {**run_config, "ops": {**ops, op: chunks}}


@contextmanager
def _emulator_process(settings: Settings, submit: bool) -> Iterator[Settings]:
    """`settings` served by an emulator process for this command when the server is embedded.

    The runs of this process (and the version check) then talk to its URL. Not for `--submit`:
    the daemon's runs use the code location's own settings.
    """
    if settings.server != EMBEDDED or submit:
        yield settings
        return
    from microns_assets.commands.dev import start_emulator

    emulator, url = start_emulator()
    os.environ[ENV_SERVER] = url
    try:
        yield dataclasses.replace(settings, server=url)
    finally:
        os.environ[ENV_SERVER] = EMBEDDED
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()


def materialize(args: argparse.Namespace, *, demo: bool = False) -> int:
    """Run `materialize` for the parsed arguments; returns the exit status."""
    settings, home = resolve(args)
    # SIGTERM at any point (not only during the runs) ends the command through `finally`
    # blocks, so the emulator process is stopped with it
    with (
        _sigterm_as_interrupt(),
        _emulator_process(settings, getattr(args, "submit", False)) as served,
    ):
        return _materialize(args, settings, served, home, demo)


def _materialize(
    args: argparse.Namespace, settings: Settings, served: Settings, home: Path, demo: bool
) -> int:
    """`materialize` with `served`: the settings the runs use (the emulator process's URL)."""
    run_config = _run_config(args.config)
    if args.force:
        run_config = _with_force(run_config)
    out = sys.stdout
    problem, defs = _validate(args.version, run_config)
    # the server first: a version it does not serve is named as such, not as one missing
    # from the versions file
    problem = _check_version(served, args.version) or problem
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    where = "the embedded emulator" if settings.server == EMBEDDED else settings.server
    print(f"Materializing version {args.version} of {settings.datastack} from {where}", file=out)
    print(f"Dagster instance: {home}\nData:             {settings.data_dir}", file=out, flush=True)
    try:
        instance = open_instance(home)
    except InstanceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with instance:
        try:
            with _sigterm_as_interrupt():
                report = _run(args, instance, defs, run_config, out)
        except KeyboardInterrupt:
            if getattr(args, "submit", False):
                print("\nInterrupted. The backfill goes on in the daemon: run the same command "
                      "again to follow it.", file=out)  # fmt: skip
            else:
                print("\nInterrupted. Run the same command again: only what is missing runs.",
                      file=out)  # fmt: skip
            return 130
        if report is None:
            return 2
        print(f"\nResults of version {args.version}:", file=out)
        _print_summary(instance, args.version, out, defs)
    for failure in report.failures:
        print(f"FAILED {failure.step} (partition {failure.partition}): {failure.message}", file=out)
    reused = sum(s == "reused" for s in report.chunks.values())
    counts = f"{len(report.run_ids)} runs"
    if report.chunks:
        counts += f"; chunks: {len(report.chunks) - reused} downloaded, {reused} reused"
    status = "Done" if report.success else "Failed"
    print(f"\n{status} in {report.seconds:.1f} s ({counts}).", file=out)
    if not report.success:
        print(
            "Fix the cause, then run the same command again: only what is missing runs.", file=out
        )
    if demo or report.success:
        _print_ui_hint(settings, home, args.version, out)
    return 0 if report.success else 1


def _run(args: argparse.Namespace, instance, defs, run_config: dict, out):
    """The report of the version's runs, in process or through the daemon (`--submit`)."""
    celery = executor_from_env() == "celery"
    if celery and not getattr(args, "submit", False):
        print(
            f"error: {ENV_EXECUTOR}=celery runs steps on Celery workers, in the runs the daemon "
            "launches: add --submit (with a dagster-daemon and `dagster-celery worker`s running, "
            "see deploy/celery/README.md), or unset it to run here in process.",
            file=sys.stderr,
        )
        return None
    if getattr(args, "submit", False):
        from microns_assets.executors import BrokerError, check_broker
        from microns_assets.materialize.submit import NoDaemonError, submit_version

        try:
            if celery:
                check_broker(celery_broker_from_env())
            return submit_version(
                args.version, instance=instance, defs=defs, run_config=run_config, out=out
            )
        except (NoDaemonError, BrokerError) as err:
            print(f"error: {err}", file=sys.stderr)
            return None
    from microns_assets.materialize import materialize_version

    return materialize_version(
        args.version, instance=instance, defs=defs, run_config=run_config, out=out
    )


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the command like Ctrl-C: Dagster records the run as failed, not running."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_ui_hint(settings: Settings, home: Path, version: int, out) -> None:
    exe = Path(sys.executable).parent / "microns-assets"  # the one installed beside us
    command = exe if exe.exists() else "microns-assets"
    flags = f"--server {settings.server} --datastack {settings.datastack} "
    flags += f"--data-dir {settings.data_dir} --dagster-home {home}"
    print("Browse the runs, materializations and lineage in the web UI:", file=out)
    print(f"  {command} dev {flags}\n  then open http://127.0.0.1:3000", file=out)
    print(
        "Load a table in a notebook: microns_assets.load("
        f"'synapses', {version}, datastack={settings.datastack!r}, data_dir={settings.data_dir!r})",
        file=out,
    )


def demo(args: argparse.Namespace) -> int:
    """`materialize` of the demo version on the embedded emulator."""
    os.environ.pop("MICRONS_DATASTACK", None)
    os.environ.pop(ENV_EXECUTOR, None)  # the demo runs here, in process, whatever is exported
    args.server, args.datastack, args.version = EMBEDDED, None, DEMO_VERSION
    args.force, args.config, args.submit = False, None, False
    return materialize(args, demo=True)
