"""`microns-assets emulator` as a process: URL on the first stdout line, serves until killed."""

from __future__ import annotations

import subprocess
import sys

from caveclient import CAVEclient


def test_cli_prints_url_first_and_serves(emulator_cache):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microns_assets.cli",
            "emulator",
            "--scale",
            "300",
            "--seed",
            "1",
            "--row-cap",
            "50",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "MICRONS_EMULATOR_CACHE": str(emulator_cache)},
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        client = CAVEclient("minnie65_synthetic", server_address=url, write_server_cache=False)
        df = client.materialize.query_table("nucleus_detection_v0", materialization_version=1300)
        assert len(df) == 50  # the --row-cap reached the server
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
