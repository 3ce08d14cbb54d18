"""`microns-assets materialize` and `microns-assets demo`: the whole graph of one version.

`demo` is `materialize` of version 1300 on the embedded emulator, followed by the command that
opens the results in the web UI.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from microns_assets.commands.environment import cave_connection, resolve
from microns_assets.settings import EMBEDDED, Settings

DEMO_VERSION = 1300


def _run_config(path: str | None) -> dict:
    if path is None:
        return {}
    try:
        config = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise SystemExit(f"error: cannot read run config {path}: {err}") from err
    if not isinstance(config, dict) or not set(config) <= {"ops"}:
        raise SystemExit(
            f"error: {path} must be a Dagster run config with only an `ops:` section, e.g.\n"
            "ops:\n  synapse_chunks:\n    config:\n      mode: individual"
        )
    return config


def _check_version(settings: Settings, version: int) -> str | None:
    """An error message if the server does not serve `version` (unknown or expired)."""
    from microns_assets.cave.errors import CaveError

    try:
        with cave_connection(settings) as conn:
            conn.check_version(version)
    except CaveError as err:
        return str(err)
    return None


def _print_summary(instance, version: int, out) -> None:
    from microns_assets.materialize.plan import Planner

    rows = Planner(instance, str(version)).summary()
    width = max((len(a) for a in rows), default=10)
    for asset, (count, path, parts) in rows.items():
        chunks = f" in {parts} chunks" if parts > 1 else ""
        print(f"  {asset:<{width}}  {count:>9,} rows{chunks}  {path}", file=out)


def materialize(args: argparse.Namespace, *, demo: bool = False) -> int:
    """Run `materialize` for the parsed arguments; returns the exit status."""
    settings, home = resolve(args)
    run_config = _run_config(args.config)
    out = sys.stdout
    problem = _check_version(settings, args.version)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    import dagster as dg

    from microns_assets.materialize import materialize_version

    where = "the embedded emulator" if settings.server == EMBEDDED else settings.server
    print(f"Materializing version {args.version} of {settings.datastack} from {where}", file=out)
    print(f"Dagster instance: {home}\nData:             {settings.data_dir}", file=out, flush=True)
    with dg.DagsterInstance.get() as instance:
        try:
            report = materialize_version(
                args.version,
                instance=instance,
                settings=settings,
                jobs=args.jobs,
                force=args.force,
                run_config=run_config,
            )
        except KeyboardInterrupt:
            print("\nInterrupted. Run the same command again: only what is missing runs.", file=out)
            return 130
        for what in report.skipped:
            print(f"  up to date, skipped: {what}", file=out)
        print(f"\nResults of version {args.version}:", file=out)
        _print_summary(instance, args.version, out)
    for failure in report.failures:
        print(f"FAILED {failure.step} (partition {failure.partition}): {failure.message}", file=out)
    status = "Done" if report.success else "Failed"
    print(f"\n{status} in {report.seconds:.1f} s ({len(report.outcomes)} runs).", file=out)
    if not report.success:
        print(
            "Fix the cause, then run the same command again: only what is missing runs.", file=out
        )
    if demo or report.success:
        _print_ui_hint(settings, home, args.version, out)
    return 0 if report.success else 1


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
    args.server, args.datastack, args.version = EMBEDDED, None, DEMO_VERSION
    args.force, args.config = False, None
    return materialize(args, demo=True)
