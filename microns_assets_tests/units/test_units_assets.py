"""`units` and `layer_segments` materialized from the emulator: data, metadata, checks."""

from __future__ import annotations

import base64
import os
import re

import dagster as dg
import pandas as pd
import pytest
from upath import UPath

from microns_assets.partitions import VERSION_DIM
from microns_assets.processing import plots
from microns_assets.processing.painter import painter
from microns_assets.raw.assets import raw_assets
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.storage import read_frame, write_frame
from microns_assets.units.assets import units_and_layers
from microns_assets.vocabulary import CORTICAL_LAYERS
from microns_assets_tests.conftest import failure_messages


@pytest.fixture(scope="module")
def workspace(session_emulator, tmp_path_factory):
    """Raw tables of 1300 and 1718 materialized once; units re-run per test."""
    data = tmp_path_factory.mktemp("data")
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("home"))) as instance:
        instance.add_dynamic_partitions(VERSION_DIM, ["1300", "1718"])
        resources = {
            "cave": CaveResource(
                datastack=session_emulator.datastack, server_address=session_emulator.url
            ),
            "io_manager": ParquetIOManager(
                data_dir=str(data), datastack=session_emulator.datastack
            ),
        }
        for version in ("1300", "1718"):
            result = dg.materialize(
                raw_assets, partition_key=version, resources=resources, instance=instance
            )
            assert result.success
        yield instance, resources, UPath(data) / session_emulator.datastack


def run_units(workspace, version: int, config: dict | None = None):
    instance, resources, _ = workspace
    return dg.materialize(
        [*raw_assets, units_and_layers],
        selection=dg.AssetSelection.assets("units", "layer_segments"),
        partition_key=str(version),
        resources=resources,
        instance=instance,
        run_config={"ops": {"units_and_layers": {"config": config or {}}}},
        raise_on_error=False,
    )


def checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def metadata(result, key: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key == dg.AssetKey(key):
            return event.materialization.metadata
    raise AssertionError(f"{key} not materialized")


@pytest.mark.parametrize("version", [1300, 1718])
def test_units_and_segments_from_the_emulator(workspace, version, session_emulator):
    result = run_units(workspace, version)
    assert result.success
    assert all(checks(result).values()) and len(checks(result)) == 6
    base = workspace[2] / f"v{version}"
    units = read_frame(base / "units.parquet")
    segments = read_frame(base / "layer_segments.parquet")
    assert segments["layer"].tolist() == list(CORTICAL_LAYERS)
    assert units["layer"].notna().all()
    assert units["nucleus_id"].is_unique and units["pt_root_id"].is_unique
    # every unit is a typed, located nucleus of the version with a unique, non-zero root
    truth = session_emulator.ground_truth(version, "nucleus_detection_v0").set_index("id")
    roots = truth.loc[units["nucleus_id"], "pt_root_id"].to_numpy()
    assert (units["pt_root_id"].to_numpy() == roots).all()
    prov = units.attrs["provenance"]
    assert prov["version"] == version and prov["functional"] == "none"
    assert prov["cave_tables"]["cell_types"] == "aibs_metamodel_celltypes_v661"
    meta = metadata(result, "units")
    assert meta["unique_nuclei"].value == len(units)
    png = re.search(r"base64,([A-Za-z0-9+/=]+)\)", meta["depth_profile"].value).group(1)
    assert base64.b64decode(png).startswith(b"\x89PNG")
    assert "excitatory_neuron" in meta["units_by_layer_and_class"].value
    assert "L2/3" in metadata(result, "layer_segments")["boundaries"].value


def test_corrections_reach_the_units_of_1718(workspace, session_emulator):
    assert run_units(workspace, 1718).success
    units = read_frame(workspace[2] / "v1718/units.parquet").set_index("nucleus_id")
    fixes = session_emulator.ground_truth(1718, "aibs_metamodel_celltypes_v661_corrections")
    fixes = fixes[fixes["target_id"].isin(units.index)]
    assert len(fixes) > 0
    assert (units.loc[fixes["target_id"], "cell_type"].to_numpy() == fixes["cell_type"]).all()


@pytest.mark.parametrize(
    ("version", "mode", "column"),
    [(1300, "best_only", "gOSI"), (1718, "best_only", "cc_abs"), (1300, "match", "functional_unit_id")],  # noqa: E501
)  # fmt: skip
def test_functional_modes_use_the_versions_table(workspace, version, mode, column):
    result = run_units(workspace, version, {"functional": mode})
    assert result.success
    units = read_frame(workspace[2] / f"v{version}/units.parquet")
    matched = units[units["tuning_type"] == "matched"]
    assert len(matched) > 0 and matched[column].notna().all()
    if mode == "best_only" and version == 1718:  # digital twin: orientation in degrees
        assert matched["pref_ori"].max() > 3.2
    assert metadata(result, "units")["functional_mode"].value == mode


def test_explicit_threshold_is_used(workspace):
    result = run_units(workspace, 1300, {"l23_threshold": 10_000})
    assert result.success
    segments = read_frame(workspace[2] / "v1300/layer_segments.parquet")
    assert segments["layer"].tolist() == ["L1"]  # never reached: the seed's rule
    assert checks(result)["all_layers_found"] is False  # a warning, not blocking
    assert metadata(result, "units")["l23_threshold"].value == 10_000


def _corrupt(workspace, version: int, role: str, change) -> None:
    path = workspace[2] / f"v{version}/cave_raw/{role}.parquet"
    frame = read_frame(path)
    write_frame(change(frame), path, frame.attrs["provenance"])


@pytest.fixture
def scratch_version(workspace):
    """Version 1718's raw files, restored after a test corrupts them."""
    base = workspace[2] / "v1718/cave_raw"
    saved = {p.name: p.read_bytes() for p in base.iterdir()}
    yield 1718
    for name, data in saved.items():
        (base / name).write_bytes(data)


def test_unknown_area_fails_the_blocking_value_check(workspace, scratch_version):
    _corrupt(workspace, scratch_version, "brain_areas", lambda f: f.assign(tag="XX"))
    result = run_units(workspace, scratch_version)
    assert not result.success
    assert checks(result)["value_sets"] is False


def test_a_nucleus_with_two_roots_fails_the_uniqueness_check(workspace, scratch_version):
    assert run_units(workspace, scratch_version).success
    unit = read_frame(workspace[2] / "v1718/units.parquet")["nucleus_id"].iloc[5]

    def duplicate(frame: pd.DataFrame) -> pd.DataFrame:
        extra = frame[frame["id"] == unit].copy()
        extra["pt_root_id"] = extra["pt_root_id"] + 1
        return pd.concat([frame, extra], ignore_index=True)

    _corrupt(workspace, scratch_version, "nucleus", duplicate)
    result = run_units(workspace, scratch_version)
    assert not result.success
    assert checks(result)["unique_keys"] is False


def test_missing_column_is_a_clear_failure(workspace, scratch_version):
    _corrupt(workspace, scratch_version, "cell_types", lambda f: f.drop(columns="cell_type"))
    result = run_units(workspace, scratch_version)
    assert not result.success
    message = failure_messages(result)
    assert "'cell_types' table has no column 'cell_type'" in message and "1718" in message


def test_a_run_with_units_has_their_picture_drawn_by_a_helper_process(workspace):
    instance, resources, base = workspace
    painter().close()
    try:
        raw_only = dg.materialize(
            raw_assets, partition_key="1300", resources=resources, instance=instance
        )
        assert raw_only.success and painter().pid() is None  # no picture in that run
        both = dg.materialize(
            [*raw_assets, units_and_layers],
            partition_key="1300",
            resources=resources,
            instance=instance,
        )
        assert both.success
        helper = painter().pid()
        assert helper is not None and helper != os.getpid()  # started by the raw step
        meta = metadata(both, "units")["depth_profile"].value
        png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)", meta).group(1))
        units = read_frame(base / "v1300" / "units.parquet")
        segments = read_frame(base / "v1300" / "layer_segments.parquet")
        assert png == plots.depth_profile_png(units, segments)  # as drawn in this process
    finally:
        painter().close()
