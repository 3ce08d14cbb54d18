"""`microns_assets.load`: the files the pipeline wrote, read back without Dagster."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest
from upath import UPath

import microns_assets
from microns_assets.catalogue import LOADABLE
from microns_assets.partitions import VERSION_DIM
from microns_assets.processing.chunks import CHUNK_KEYS
from microns_assets.raw.assets import raw_assets
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.storage import CorruptFileError, MissingDataError
from microns_assets.synapses.assets import synapse_chunks, synapses
from microns_assets.units.assets import units_and_layers

ALL = [*raw_assets, units_and_layers, synapse_chunks, synapses]
POST = {"sample": 30, "sample_seed": 5}  # few post cells: the 32 chunks download quickly


def _paths(result) -> dict[str, str]:
    return {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata["path"].value
        for e in result.get_asset_materialization_events()
    }


@pytest.fixture(scope="module")
def workspace(session_emulator, tmp_path_factory):
    """Version 1300 materialized once (raw, units, all chunks, roll-up): data dir and file paths."""
    data = str(tmp_path_factory.mktemp("data"))
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("home"))) as instance:
        instance.add_dynamic_partitions(VERSION_DIM, ["1300"])
        resources = {
            "cave": CaveResource(
                datastack=session_emulator.datastack, server_address=session_emulator.url
            ),
            "io_manager": ParquetIOManager(data_dir=data, datastack=session_emulator.datastack),
        }

        def run(selection: dg.AssetSelection, key, config: dict | None = None, tags=None):
            result = dg.materialize(
                ALL,
                selection=selection,
                partition_key=key,
                resources=resources,
                instance=instance,
                run_config={"ops": {"synapse_chunks": {"config": config}}} if config else None,
                tags=tags,
            )
            assert result.success
            return _paths(result)

        paths = run(dg.AssetSelection.groups("cave_raw", "units"), "1300")
        every_chunk = {
            "dagster/asset_partition_range_start": f"1300|{CHUNK_KEYS[0]}",
            "dagster/asset_partition_range_end": f"1300|{CHUNK_KEYS[-1]}",
        }
        run(dg.AssetSelection.assets("synapse_chunks"), None, {"post": POST}, every_chunk)
        paths.update(run(dg.AssetSelection.assets("synapses", "connectome"), "1300"))
        yield data, paths


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("MICRONS_DATA_DIR", "MICRONS_DATASTACK", "MICRONS_CAVE_SERVER"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("asset", "key"),
    [
        ("units", "units"),
        ("layer_segments", "layer_segments"),
        ("synapses", "synapses"),
        ("nucleus", "cave_raw/nucleus"),
        ("cave_raw/cell_types", "cave_raw/cell_types"),
        ("cell_type_corrections", "cave_raw/cell_type_corrections"),  # absent in 1300: empty
    ],
)
def test_load_returns_the_file_the_io_manager_wrote(workspace, session_emulator, asset, key):
    data, paths = workspace
    frame = microns_assets.load(asset, 1300, datastack=session_emulator.datastack, data_dir=data)
    pd.testing.assert_frame_equal(frame, pq.read_table(paths[key]).to_pandas())
    # the columns the catalogue declares, with its dtypes (independent of the file reader)
    for column, dtype in LOADABLE[asset].columns.items():
        assert str(frame[column].dtype) == dtype, (asset, column)
    if key == "cave_raw/nucleus":  # and the values the server holds, 64-bit ids exact
        truth = session_emulator.ground_truth(1300, "nucleus_detection_v0").set_index("id")
        stored = frame.set_index("id")
        assert sorted(stored.index) == sorted(truth.index)
        assert stored["pt_root_id"].tolist() == truth.loc[stored.index, "pt_root_id"].tolist()
    prov = frame.attrs["provenance"]
    assert prov["version"] == 1300 and prov["datastack"] == "minnie65_synthetic"
    assert prov["packages"]["pyarrow"]


def test_connectome_loads_as_matrix_and_index_in_the_order_of_units(workspace):
    data, _ = workspace
    ds = "minnie65_synthetic"
    matrix, index = microns_assets.load("connectome", 1300, datastack=ds, data_dir=data)
    units = microns_assets.load("units", 1300, datastack=ds, data_dir=data)
    synapses = microns_assets.load("synapses", 1300, datastack=ds, data_dir=data)
    cells = units[units["pt_root_id"].fillna(0) != 0].drop_duplicates("pt_root_id")
    assert index.tolist() == cells["pt_root_id"].astype("int64").tolist()
    assert matrix.shape == (len(index), len(index))
    # each stored pair is its cell pair's n_synapses, from the roll-up's file
    row, col = matrix.nonzero()
    pairs = pd.DataFrame(
        {"pre_pt_root_id": index[row], "post_pt_root_id": index[col], "n": matrix[row, col].A1}
    )
    among = synapses[
        synapses["pre_pt_root_id"].isin(index) & synapses["post_pt_root_id"].isin(index)
    ]
    joined = among.merge(pairs, on=["pre_pt_root_id", "post_pt_root_id"], how="outer")
    assert len(joined) == len(among) == matrix.nnz > 0
    assert (joined["n"] == joined["n_synapses"]).all()
    assert (
        microns_assets.load("connectome", 1300, datastack=ds, data_dir=data).provenance["version"]
        == 1300
    )
    with pytest.raises(ValueError, match="is a matrix, not a table"):
        microns_assets.load("connectome", 1300, datastack=ds, data_dir=data, columns=["x"])
    with pytest.raises(MissingDataError, match="connectome of minnie65_synthetic version 1412"):
        microns_assets.load("connectome", 1412, datastack=ds, data_dir=data)


def test_raw_roles_by_name_and_by_key_match_the_emulator(workspace, session_emulator):
    data, _ = workspace
    by_role = microns_assets.load("nucleus", "1300", datastack="minnie65_synthetic", data_dir=data)
    by_key = microns_assets.load("cave_raw/nucleus", 1300, datastack="minnie65_synthetic",
                                 data_dir=UPath(data))  # fmt: skip
    pd.testing.assert_frame_equal(by_role, by_key)
    truth = session_emulator.ground_truth(1300, "nucleus_detection_v0")
    assert sorted(by_role["id"]) == sorted(truth["id"])
    assert by_role.attrs["provenance"]["cave_table"] == "nucleus_detection_v0"


def test_synapses_carry_the_selection_they_were_downloaded_with(workspace):
    data, _ = workspace
    frame = microns_assets.load("synapses", 1300, datastack="minnie65_synthetic", data_dir=data)
    assert 0 < frame["post_pt_root_id"].nunique() <= POST["sample"]
    assert frame.attrs["provenance"]["selection"]["post"] == POST


def test_columns_are_read_alone_and_unknown_ones_named(workspace):
    data, _ = workspace
    full = microns_assets.load("units", 1300, datastack="minnie65_synthetic", data_dir=data)
    few = microns_assets.load(
        "units",
        1300,
        datastack="minnie65_synthetic",
        data_dir=data,
        columns=["layer", "nucleus_id"],
    )
    assert list(few.columns) == ["layer", "nucleus_id"]
    pd.testing.assert_frame_equal(few, full[["layer", "nucleus_id"]])
    assert few.attrs["provenance"] == full.attrs["provenance"]
    one = microns_assets.load(  # one name, not a list of its letters
        "units", 1300, datastack="minnie65_synthetic", data_dir=data, columns="layer"
    )
    pd.testing.assert_frame_equal(one, full[["layer"]])
    with pytest.raises(ValueError, match=r"no column\(s\) \['nucleus'\].*'nucleus_id'"):
        microns_assets.load(
            "units", 1300, datastack="minnie65_synthetic", data_dir=data, columns=["nucleus"]
        )


def test_defaults_come_from_the_environment(workspace, clean_env):
    data, paths = workspace
    clean_env.setenv("MICRONS_DATA_DIR", data)
    clean_env.setenv("MICRONS_DATASTACK", "minnie65_synthetic")
    units = microns_assets.load("units", 1300)
    pd.testing.assert_frame_equal(units, pq.read_table(paths["units"]).to_pandas())
    # the embedded server implies the synthetic datastack, as for the pipeline itself
    clean_env.delenv("MICRONS_DATASTACK")
    clean_env.setenv("MICRONS_CAVE_SERVER", "embedded")
    assert len(microns_assets.load("layer_segments", 1300)) > 0
    # explicit arguments win over the environment
    clean_env.setenv("MICRONS_DATA_DIR", str(UPath(data) / "elsewhere"))
    assert len(microns_assets.load("layer_segments", 1300, data_dir=data)) > 0


def test_missing_file_names_the_command_and_the_data_dir(tmp_path, clean_env):
    clean_env.setenv("MICRONS_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        microns_assets.load("units", 1300)
    assert isinstance(err.value, MissingDataError)
    message = str(err.value)
    assert "`microns-assets materialize --version 1300 --datastack " in message
    assert f"--data-dir {tmp_path}" in message
    assert "minnie65_public" in message  # the default datastack of the real CAVE


def test_missing_file_points_at_what_is_materialized(workspace):
    data, _ = workspace
    with pytest.raises(MissingDataError) as err:
        microns_assets.load(
            "cave_raw/nucleus", "1718", datastack="minnie65_synthetic", data_dir=data
        )
    message = str(err.value)
    assert "`microns-assets materialize --version 1718 --datastack minnie65_synthetic " in message
    assert message.count("--server embedded`") == 1  # the synthetic data comes from the emulator
    assert "minnie65_synthetic v1300" in message
    with pytest.raises(MissingDataError, match="minnie65_synthetic v1300"):
        microns_assets.load("synapses", 1300, datastack="minnie65_public", data_dir=data)


def test_corrupt_file_raises_the_storage_error(tmp_path):
    path = tmp_path / "minnie65_synthetic" / "v1300" / "layer_segments.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(CorruptFileError, match="materialize that partition again"):
        microns_assets.load("layer_segments", 1300, datastack="minnie65_synthetic",
                            data_dir=tmp_path)  # fmt: skip


@pytest.mark.parametrize("asset", ["unit", "synapse_chunks", "cave_raw/units", "raw/nucleus"])
def test_unknown_asset_lists_the_valid_names(asset, tmp_path):
    with pytest.raises(ValueError, match=f"unknown asset '{asset}'") as err:
        microns_assets.load(asset, 1300, data_dir=tmp_path)
    for name in ("units", "layer_segments", "synapses", "nucleus", "functional_properties"):
        assert name in str(err.value)


@pytest.mark.parametrize("version", ["v1300", "latest", 13.0, True, None])
def test_version_must_be_a_number(version, tmp_path):
    with pytest.raises(ValueError, match="version must be a CAVE materialization version number"):
        microns_assets.load("units", version, data_dir=tmp_path)


def test_loadable_names_are_the_per_version_assets_of_the_definitions():
    from microns_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    per_version = {
        tuple(key.path)
        for key in graph.get_all_asset_keys()
        if isinstance(graph.get(key).partitions_def, dg.DynamicPartitionsDefinition)
    }
    assert per_version == {asset.key for asset in LOADABLE.values()}
    assert {name for name in LOADABLE if "/" in name} == {
        asset.name for asset in LOADABLE.values() if len(asset.key) > 1
    }


def test_import_and_load_do_not_import_dagster(workspace):
    data, _ = workspace
    code = textwrap.dedent(
        f"""
        import sys
        import microns_assets
        assert "load" in dir(microns_assets)
        from microns_assets import load
        units = load("units", 1300, datastack="minnie65_synthetic", data_dir={data!r})
        print(len(units), sorted(m for m in sys.modules if m.split(".")[0] == "dagster"))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
    )
    assert out.returncode == 0, out.stderr[-2000:]
    rows, modules = out.stdout.split(" ", 1)
    assert int(rows) > 100
    assert modules.strip() == "[]"
