"""The `microns-assets` command line: argument parsing only; the work is in `commands/`.

Subcommands: `materialize` (the whole graph of one version), `demo` (`materialize` of 1300 on
the embedded emulator), `dev` (the web UI), `versions` (what the server lists and what is
here), `emulator` (serve the synthetic CAVE). Heavy imports happen inside the subcommands,
so `--help` is instant.
"""

from __future__ import annotations

import argparse
import sys

from microns_assets.cave.settings import ROW_CAP
from microns_assets.commands.environment import CommandError, add_location_flags
from microns_assets.commands.materialize import DEMO_VERSION


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction between 0 and 1")
    return value


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of milliseconds >= 0")
    return value


def _whole(low: int, high: int | None = None):
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {bounds}")
        return value

    return parse


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _synapse_density(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive integer (synapses per nucleus)"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microns-assets",
        description="MICrONS connectomics tables from CAVE as versioned Dagster assets.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    emu = sub.add_parser(
        "emulator",
        help="serve the synthetic CAVE datastack until killed",
        description="Serve the synthetic minnie65_synthetic datastack on loopback. The first "
        "line of stdout is the base URL to use as MICRONS_CAVE_SERVER.",
    )
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=_whole(0, 65535), default=0, help="0 picks a free port")
    emu.add_argument("--scale", default="small", help="small, real, or a nucleus count")
    emu.add_argument("--seed", type=int, default=0, help="seed of the synthetic world")
    emu.add_argument(
        "--synapses-per-cell",
        type=_synapse_density,
        metavar="N",
        default=140,
        help="synapse density: synapses per nucleus (default 140; MICrONS has ~2,300)",
    )
    emu.add_argument("--row-cap", type=_whole(1), default=ROW_CAP, help="server QUERY_LIMIT_SIZE")
    emu.add_argument("--latency-ms", type=_milliseconds, default=0.0, help="added to every request")
    emu.add_argument("--fail-rate", type=_fraction, default=0.0, help="fraction answered 503")
    emu.add_argument(
        "--drop-rate", type=_fraction, default=0.0, help="fraction of bodies cut mid-stream"
    )
    emu.add_argument(
        "--lose-rate", type=_fraction, default=0.0, help="fraction of rows silently left out"
    )
    emu.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    emu.add_argument("--token", default=None, help="require this token (else 401)")

    demo = sub.add_parser(
        "demo",
        help=f"materialize version {DEMO_VERSION} on the embedded emulator",
        description="Start the embedded CAVE emulator and materialize the whole graph of "
        f"version {DEMO_VERSION} of minnie65_synthetic (raw tables, units, layer segments, "
        "32 synapse chunks, synapses, connectome) into the Dagster instance at DAGSTER_HOME "
        "(default ./.dagster_home) and the data dir (default ./data); print rows and paths per "
        "asset and the command that opens the web UI on them.",
    )
    demo.add_argument("--data-dir", default=None, help="default: $MICRONS_DATA_DIR or ./data")
    demo.add_argument(
        "--dagster-home", default=None, help="default: $DAGSTER_HOME or ./.dagster_home"
    )

    mat = sub.add_parser(
        "materialize",
        help="materialize the whole asset graph of one version",
        description="Raw tables, units and layer segments (one run), every synapse chunk (one "
        "run) and the synapses roll-up (one run) of one materialization version: the runs a "
        "backfill of the version makes in the web UI, executed in this process on the "
        "persistent instance (visible in the web UI), or with --submit as a backfill for the "
        "instance's daemon. Chunks whose files are complete and from the same inputs are "
        "reused (--force downloads them again). Exit status 1 names each failed step and "
        "partition; running again finishes only what is missing; 2 is bad input.",
    )
    mat.add_argument("--version", type=int, required=True, help="CAVE materialization version")
    add_location_flags(mat)
    mat.add_argument(
        "--force", action="store_true", help="download every synapse chunk again (no reuse)"
    )
    mat.add_argument(
        "--submit",
        action="store_true",
        help="submit the version as one asset backfill to the instance's daemon (e.g. under "
        "`microns-assets dev`) and follow it, instead of running in this process",
    )
    mat.add_argument(
        "--config", default=None, help="YAML run config (`ops:` section, as in the launchpad)"
    )

    dev = sub.add_parser(
        "dev",
        help="open the Dagster web UI on this project (dagster dev)",
        description="Run `dagster dev -m microns_assets.definitions` on the instance at "
        "DAGSTER_HOME (default ./.dagster_home); with the embedded server, start one emulator "
        "for the session first. Other arguments go to `dagster dev` (e.g. -p 3001).",
    )
    add_location_flags(dev)
    dev.add_argument(
        "--stop-timeout",
        type=_positive_seconds,
        default=60.0,
        help="seconds `dagster dev` gets to stop after Ctrl-C or SIGTERM before it and the "
        "servers it started are killed (default 60)",
    )

    versions = sub.add_parser(
        "versions",
        help="list the server's versions, which expired, which are materialized here",
        description="One line per version the server lists: publication time, status "
        "(`current`, or `static` for an expired version, read from its static dumps), expiry "
        "date, and which assets of it have files in the data dir.",
    )
    add_location_flags(versions)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `microns-assets` console script."""
    from microns_assets.settings import SettingsError

    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "dev":  # said with the subcommand's own usage
        _subcommand(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return _dispatch(args, extra)
    except (SettingsError, CommandError) as err:
        print(f"microns-assets {args.command}: error: {err}", file=sys.stderr)
        return 2


def _subcommand(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of subcommand `name`."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[name]


def _dispatch(args: argparse.Namespace, extra: list[str]) -> int:
    if args.command == "emulator":
        from microns_assets.commands.emulator import emulator

        return emulator(args)
    if args.command == "dev":
        from microns_assets.commands.dev import dev

        return dev(args, extra)
    if args.command == "versions":
        from microns_assets.commands.versions import versions

        return versions(args)
    from microns_assets.commands.materialize import demo, materialize

    return demo(args) if args.command == "demo" else materialize(args)


if __name__ == "__main__":
    sys.exit(main())
