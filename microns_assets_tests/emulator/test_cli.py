"""`microns-assets emulator` as a process: URL on the first stdout line, serves until killed."""

from __future__ import annotations

import subprocess
import sys

import pytest
from caveclient import CAVEclient

from microns_assets import cli


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
            "--synapses-per-cell",
            "200",
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
        synapses = client.materialize.get_annotation_count("synapses_pni_2", version=1300)
        assert synapses == 300 * 200  # so did --synapses-per-cell
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


@pytest.mark.parametrize("bad", ["0", "-3", "2.5", "many"])
def test_cli_rejects_a_bad_synapse_density(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["emulator", "--synapses-per-cell", bad])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --synapses-per-cell: {bad!r} is not a positive integer" in err
