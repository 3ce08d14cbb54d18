"""Benchmark the chunk stage on Celery workers: the same version with 1 and with 2 workers.

Run from the repository root: `python -m microns_assets_tests.benchmarks.bench_celery
[--scale 30000] [--latency-ms 50] [--workers 1 2] [--chunk-runs 2] [--in-flight 2]`.

For each worker count, a fresh deployment of `deploy/celery/` on loopback (the test servers:
Postgres, Redis; data in a local folder), one `microns-assets emulator` process shared by all,
`dagster-daemon` and the workers (one step at a time each), then `materialize --submit` of
v1300 with `MICRONS_CHUNK_RUNS` chunk runs. Prints the whole backfill's wall time and the chunk
stage's: from the first chunk run's start to the last one's end (the runs' own records), with
its throughput in chunks and synapse rows per second. The backfill's time includes the daemon's
fixed 30 s ticks; the chunk stage's does not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG

from microns_assets.commands.dev import start_emulator
from microns_assets.emulator import DATASTACK
from microns_assets.storage import read_frame
from microns_assets_tests.benchmarks.bench_version import warm
from microns_assets_tests.distributed.servers import celery_workers, postgres_server, redis_server
from microns_assets_tests.webui.server import running_daemon

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "celery" / "dagster.yaml"


def one(workers: int, url: str, args: argparse.Namespace, work: Path) -> dict:
    """A fresh deployment with `workers` workers; the figures of one submitted version."""
    home = work / "home"
    home.mkdir(parents=True)
    shutil.copy(DEPLOY, home / "dagster.yaml")
    with postgres_server() as postgres, redis_server() as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MICRONS_", "DAGSTER_"))}
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            DAGSTER_HOME=str(home),
            DAGSTER_PG_URL=postgres.create_database("bench"),
            MICRONS_EXECUTOR="celery",
            MICRONS_CELERY_BROKER=broker,
            MICRONS_CHUNK_RUNS=str(args.chunk_runs),
            MICRONS_CAVE_IN_FLIGHT=str(args.in_flight),
            MICRONS_CAVE_SERVER=url,
            MICRONS_DATASTACK=DATASTACK,
            MICRONS_DATA_DIR=str(work / "data"),
        )
        os.environ["DAGSTER_PG_URL"] = env["DAGSTER_PG_URL"]
        with (
            celery_workers(env, workers, work),
            running_daemon(env, work / "daemon.log", stock=True),
        ):
            start = time.perf_counter()
            command = [sys.executable, "-m", "microns_assets.cli", "materialize", "--version",
                       "1300", "--submit"]  # fmt: skip
            out = subprocess.run(command, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
        if out.returncode != 0:
            raise SystemExit(f"materialize --submit failed:\n{out.stdout[-3000:]}{out.stderr}")
        with dg.DagsterInstance.from_config(str(home)) as instance:
            records = [
                r
                for r in instance.get_run_records()
                if ASSET_PARTITION_RANGE_START_TAG in r.dagster_run.tags
            ]
            first = min(r.start_time for r in records)
            stage = max(r.end_time for r in records) - first
            spans = sorted((r.start_time - first, r.end_time - first) for r in records)
    rows = len(read_frame(work / "data" / DATASTACK / "v1300" / "synapses.parquet"))
    return {"backfill_s": seconds, "chunk_stage_s": stage, "rows": rows, "spans": spans}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="30000")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--chunk-runs", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=2)
    args = parser.parse_args()
    extra = ["--port", "0", "--scale", args.scale, "--latency-ms", str(args.latency_ms)]
    emulator, url = start_emulator(extra)
    try:
        print(f"emulator {url}: scale {args.scale}, {args.latency_ms} ms; warm-up "
              f"{warm(url):.1f} s", flush=True)  # fmt: skip
        for workers in args.workers:
            with tempfile.TemporaryDirectory(prefix="bench-celery-", dir="/tmp") as work:
                figures = one(workers, url, args, Path(work))
            chunks_per_s = 32 / figures["chunk_stage_s"]
            print(
                f"{workers} worker(s), {args.chunk_runs} chunk runs, {args.in_flight} in flight "
                f"per step: backfill {figures['backfill_s']:.1f} s; chunk stage "
                f"{figures['chunk_stage_s']:.1f} s = {chunks_per_s:.2f} chunks/s, "
                f"{figures['rows'] / figures['chunk_stage_s']:,.0f} merged rows/s "
                f"({figures['rows']:,} rows); chunk runs (start, end) s: "
                + ", ".join(f"({a:.1f}, {b:.1f})" for a, b in figures["spans"]),
                flush=True,
            )
    finally:
        emulator.terminate()
        emulator.wait()


if __name__ == "__main__":
    main()
