"""The `microns-assets` command: `emulator` serves the synthetic CAVE, `demo` runs the pipeline.

Heavy imports happen inside the subcommands, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

DEMO_VERSION = 1300


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
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
    emu.add_argument("--port", type=int, default=0, help="0 picks a free port")
    emu.add_argument("--scale", default="small", help="small, real, or a nucleus count")
    emu.add_argument("--seed", type=int, default=0, help="seed of the synthetic world")
    emu.add_argument("--row-cap", type=int, default=200_000, help="server QUERY_LIMIT_SIZE")
    emu.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    emu.add_argument("--fail-rate", type=_fraction, default=0.0, help="fraction answered 503")
    emu.add_argument(
        "--drop-rate", type=_fraction, default=0.0, help="fraction of bodies cut mid-stream"
    )
    emu.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    emu.add_argument("--token", default=None, help="require this token (else 401)")

    demo = sub.add_parser(
        "demo",
        help=f"run the pipeline on the embedded emulator for version {DEMO_VERSION}",
        description="Start the embedded CAVE emulator, materialize the raw tables, units and "
        f"layer segments of version {DEMO_VERSION} of minnie65_synthetic into the Dagster "
        "instance at DAGSTER_HOME "
        "(default ./.dagster_home) and the data dir (default ./data), then print a summary.",
    )
    demo.add_argument("--data-dir", default=None, help="default: $MICRONS_DATA_DIR or ./data")
    demo.add_argument(
        "--dagster-home", default=None, help="default: $DAGSTER_HOME or ./.dagster_home"
    )
    return parser


def _emulator(args: argparse.Namespace) -> int:
    from microns_assets.emulator import Emulator, Faults

    faults = Faults(
        fail_rate=args.fail_rate,
        drop_rate=args.drop_rate,
        latency_ms=args.latency_ms,
        seed=args.fault_seed,
    )
    emulator = Emulator(
        scale=args.scale,
        seed=args.seed,
        host=args.host,
        port=args.port,
        row_cap=args.row_cap,
        faults=faults,
        token=args.token,
    ).start()
    print(emulator.url, flush=True)
    print(
        f"serving {emulator.datastack} ({emulator.n_nuclei} nuclei, seed {args.seed}); "
        "Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )

    def stop(signum, frame) -> None:
        emulator.stop()

    signal.signal(signal.SIGTERM, stop)
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        emulator.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    home = Path(args.dagster_home or os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    data = str(Path(args.data_dir).resolve()) if args.data_dir else None
    data = data or os.environ.get("MICRONS_DATA_DIR") or str(Path("data").resolve())
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["MICRONS_CAVE_SERVER"] = "embedded"
    os.environ["MICRONS_DATA_DIR"] = data
    os.environ.pop("MICRONS_DATASTACK", None)

    from microns_assets.demo import run_demo

    return run_demo(DEMO_VERSION, home, data)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `microns-assets` console script."""
    args = _parser().parse_args(argv)
    handlers = {"emulator": _emulator, "demo": _demo}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
