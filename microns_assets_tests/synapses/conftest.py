"""The workspace of the synapse tests: raw tables and units of v1300, once per test module."""

from __future__ import annotations

import dagster as dg
import pytest
from upath import UPath

from microns_assets.partitions import VERSION_DIM
from microns_assets.raw.assets import raw_assets
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.synapses.assets import synapse_chunks, synapses
from microns_assets.units.assets import units_and_layers

#: Every asset the synapse tests materialize from.
ALL = [*raw_assets, units_and_layers, synapse_chunks, synapses]
#: The row cap the workspace's resource expects (tests set the emulator's to match).
CAP = 1_000


@pytest.fixture(scope="module")
def workspace(session_emulator, tmp_path_factory):
    """(instance, resources reading through a small cap, folder of v1300's files)."""
    data = tmp_path_factory.mktemp("data")
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("home"))) as instance:
        instance.add_dynamic_partitions(VERSION_DIM, ["1300"])
        resources = {
            "cave": CaveResource(
                datastack=session_emulator.datastack,
                server_address=session_emulator.url,
                row_cap=CAP,
                backoff_factor_s=0.01,
            ),
            "io_manager": ParquetIOManager(
                data_dir=str(data), datastack=session_emulator.datastack
            ),
        }
        result = dg.materialize(
            ALL,
            selection=dg.AssetSelection.groups("cave_raw", "units"),
            partition_key="1300",
            resources=resources,
            instance=instance,
        )
        assert result.success
        yield instance, resources, UPath(data) / session_emulator.datastack / "v1300"
