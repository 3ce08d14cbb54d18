"""`microns-assets demo`: materialize the pipeline for one version on the embedded emulator.

Expects the environment the CLI sets (`DAGSTER_HOME`, `MICRONS_CAVE_SERVER=embedded`,
`MICRONS_DATA_DIR`) before the definitions are imported.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dagster as dg

from microns_assets.partitions import VERSION_DIM


def run_demo(version: int, dagster_home: Path, data_dir: str) -> int:
    """Run the units job (raw tables, units, layer segments) for `version`; print a summary."""
    from microns_assets.definitions import defs
    from microns_assets.jobs import units_job

    start = time.perf_counter()
    instance = dg.DagsterInstance.get()
    if not instance.has_dynamic_partition(VERSION_DIM, str(version)):
        instance.add_dynamic_partitions(VERSION_DIM, [str(version)])
    print(f"Materializing version {version} of the synthetic datastack on the embedded emulator")
    job = defs.resolve_job_def(units_job.name)
    result = job.execute_in_process(
        partition_key=str(version), instance=instance, raise_on_error=False
    )
    elapsed = time.perf_counter() - start
    rows = []
    for event in result.get_asset_materialization_events():
        meta = event.materialization.metadata
        rows.append(
            (
                event.materialization.asset_key.to_user_string(),
                meta["dagster/row_count"].value,
                meta["path"].value,
            )
        )
    width = max((len(r[0]) for r in rows), default=10)
    for key, count, path in sorted(rows):
        print(f"  {key:<{width}}  {count:>8} rows  {path}")
    failed_checks = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    if failed_checks:
        print(f"Asset checks that failed: {failed_checks}")
    if not result.success:
        failed = [e.step_key for e in result.all_events if e.is_step_failure]
        print(f"FAILED steps: {failed}. See the run in the UI (command below) for the errors.")
    print(f"\n{'Done' if result.success else 'Failed'} in {elapsed:.1f} s. Run id: {result.run_id}")
    print(f"Data:            {data_dir}")
    print(f"Dagster instance: {dagster_home}")
    print("Browse the runs, materializations and lineage in the web UI:")
    dagster = Path(sys.executable).parent / "dagster"  # the one installed beside us
    print(
        f"  DAGSTER_HOME={dagster_home} MICRONS_CAVE_SERVER=embedded "
        f"MICRONS_DATA_DIR={data_dir} {dagster} dev -m microns_assets.definitions\n"
        "  then open http://127.0.0.1:3000"
    )
    return 0 if result.success else 1
