"""`microns-assets emulator`: serve the synthetic CAVE datastack on loopback until killed."""

from __future__ import annotations

import argparse
import signal
import sys


def emulator(args: argparse.Namespace) -> int:
    """Start the emulator, print its URL as the first line of stdout, serve until killed."""
    from microns_assets.emulator import Emulator, Faults

    faults = Faults(
        fail_rate=args.fail_rate,
        drop_rate=args.drop_rate,
        lose_rate=args.lose_rate,
        latency_ms=args.latency_ms,
        seed=args.fault_seed,
    )
    try:
        emulator = Emulator(
            scale=args.scale,
            seed=args.seed,
            host=args.host,
            port=args.port,
            row_cap=args.row_cap,
            faults=faults,
            token=args.token,
            synapses_per_cell=args.synapses_per_cell,
        )
    except ValueError as err:  # the scale
        print(f"microns-assets emulator: --scale: {err}", file=sys.stderr)
        return 2
    try:
        emulator.start()
    except OSError as err:  # host unknown or port taken (its range: checked by the parser)
        print(
            f"microns-assets emulator: cannot listen on {args.host}:{args.port} ({err}); "
            "choose another --host or --port (0 picks a free port)",
            file=sys.stderr,
        )
        return 2
    print(emulator.url, flush=True)
    print(
        f"serving {emulator.datastack} ({emulator.n_nuclei} nuclei, "
        f"{emulator.synapses_per_cell} synapses per nucleus, seed {args.seed}); "
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
