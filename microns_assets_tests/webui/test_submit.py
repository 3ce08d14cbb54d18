"""`materialize --submit`: a version as one backfill for the daemon, followed by the command.

The package's fixture ran `microns-assets materialize --submit --version 1718` beside the UI's
"Materialize all" of 1300, on the same instance and daemon.
"""

from __future__ import annotations

import dagster as dg

from microns_assets_tests.webui.conftest import SUBMITTED


def test_submit_runs_the_version_as_a_backfill_of_the_daemon(webserver, session_emulator):
    done = webserver.materialized
    out = done.submitted
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "submitted backfill" in out.stdout
    assert "(3 runs; chunks: 32 downloaded, 0 reused)" in out.stdout
    assert "32/32" in out.stdout  # the progress bar followed the daemon's chunk run
    backfill_id = out.stdout.split("submitted backfill ", 1)[1].split(";", 1)[0]
    with dg.DagsterInstance.from_config(str(done.home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        assert len(runs) == 3 and all(r.is_success for r in runs)
        chunk_runs = [r for r in runs if "dagster/asset_partition_range_start" in r.tags]
        assert [r.tags["dagster/asset_partition_range_start"] for r in chunk_runs] == [
            f"{SUBMITTED}|00"
        ]
    version_dir = done.data_dir / done.datastack / f"v{SUBMITTED}"
    assert f"Results of version {SUBMITTED}" in out.stdout
    assert str(version_dir / "synapses.parquet") in out.stdout
