"""`dagster-daemon` for tests, its backfill daemon ticking every TICK_S seconds instead of 30.

Dagster hard-codes the pause between two iterations of the backfill daemon
(`dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS`, read by the backfill loop on
every iteration; there is no instance setting for it). A backfill advances one stage per
iteration, so a test that waits for a whole version (raw and units, chunk runs, roll-up) waits
minutes on these pauses alone. This sets the constant lower in the daemon's own process and
then runs the stock `dagster-daemon` command: everything else is Dagster's daemon as shipped.
The benchmarks use the stock daemon (`dagster-daemon run`), never this.

Run as `python -m microns_assets_tests.fast_daemon run -w workspace.yaml`.
"""

from __future__ import annotations

import sys

TICK_S = 3


def main() -> None:
    """Patch the backfill daemon's interval, then hand over to `dagster-daemon`'s CLI."""
    import dagster._daemon.controller as controller
    from dagster._daemon.cli import main as daemon_main

    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = TICK_S
    sys.argv = ["dagster-daemon", *sys.argv[1:]]
    daemon_main()


if __name__ == "__main__":
    main()
