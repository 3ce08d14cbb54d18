"""`functional_recordings` materialized from the emulator, and units joined to their responses."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import dagster as dg
import h5py
import numpy as np
import pytest

import microns_assets
from microns_assets.functional import (
    FunctionalKeyError,
    FunctionalReader,
    UnmatchedUnitsWarning,
    unit_responses,
)
from microns_assets.functional.asset import functional_recordings
from microns_assets.partitions import VERSION_DIM
from microns_assets.raw.assets import raw_assets
from microns_assets.resources import CaveResource, ParquetIOManager
from microns_assets.units.assets import units_and_layers
from microns_assets_tests.conftest import failure_messages

VERSION = "1300"
ASSETS_DOC = Path(__file__).resolve().parents[2] / "docs" / "assets.md"


def _resources(emulator, data) -> dict:
    return {
        "cave": CaveResource(datastack=emulator.datastack, server_address=emulator.url),
        "io_manager": ParquetIOManager(data_dir=str(data), datastack=emulator.datastack),
    }


def _download(emulator, data, instance, config: dict | None = None):
    return dg.materialize(
        [functional_recordings],
        resources=_resources(emulator, data),
        instance=instance,
        run_config={"ops": {"functional_recordings": {"config": config or {}}}},
        raise_on_error=False,
    )


def _metadata(result) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def workspace(session_emulator, tmp_path_factory):
    """Units of 1300 in functional modes `match` and `all`, and the recordings, materialized."""
    data = tmp_path_factory.mktemp("data")
    with dg.instance_for_test(temp_dir=str(tmp_path_factory.mktemp("home"))) as instance:
        instance.add_dynamic_partitions(VERSION_DIM, [VERSION])
        resources = _resources(session_emulator, data)
        units = {}
        for mode in ("match", "all"):
            result = dg.materialize(
                [*raw_assets, units_and_layers],
                selection=None
                if not units
                else dg.AssetSelection.assets("units", "layer_segments"),
                partition_key=VERSION,
                resources=resources,
                instance=instance,
                run_config={"ops": {"units_and_layers": {"config": {"functional": mode}}}},
            )
            assert result.success
            units[mode] = microns_assets.load(
                "units", VERSION, datastack=session_emulator.datastack, data_dir=data
            )
        yield instance, data, units


def test_the_file_is_downloaded_once_and_described(workspace, emulator):
    instance, data, _ = workspace
    first = _download(emulator, data, instance)
    assert first.success, failure_messages(first)
    meta = _metadata(first)
    path = data / emulator.datastack / "functional" / "microns.h5"
    assert meta["path"] == str(path) and path.is_file()
    with h5py.File(path, "r") as f:
        scans = list(f["sessions"])
        assert meta["scans"] == len(scans) > 0
        assert meta["sessions"] == len({s.split("_")[0] for s in scans})
        assert meta["trials"] == sum(len(f[f"sessions/{s}/trials"]) for s in scans)
    assert meta["bytes"] == path.stat().st_size and not meta["reused"]
    assert len(meta["sha256"]) == 64
    requests_before = emulator.server.stats.requests
    again = _download(emulator, data, instance)
    assert again.success and _metadata(again)["reused"]
    assert emulator.server.stats.requests == requests_before  # not a byte asked for
    forced = _download(emulator, data, instance, {"force": True})
    assert forced.success and not _metadata(forced)["reused"]
    assert emulator.server.stats.requests > requests_before


def test_a_complete_but_unreadable_file_says_to_force(workspace, emulator, tmp_path):
    instance, _, _ = workspace
    assert _download(emulator, tmp_path, instance).success
    path = tmp_path / emulator.datastack / "functional" / "microns.h5"
    size = path.stat().st_size
    path.write_bytes(b"\0" * size)  # same length: the size check cannot tell
    broken = _download(emulator, tmp_path, instance)
    assert not broken.success
    assert "force: true" in failure_messages(broken)
    assert _download(emulator, tmp_path, instance, {"force": True}).success
    with FunctionalReader(path) as reader:
        assert reader.sessions()


def test_a_wrong_url_is_named(workspace, emulator, tmp_path):
    instance, _, _ = workspace
    url = f"{emulator.url}/functional/{emulator.datastack}/nothing.h5"
    result = _download(emulator, tmp_path, instance, {"url": url})
    assert not result.success
    message = failure_messages(result)
    assert "HTTP 404" in message and "MICRONS_FUNCTIONAL_URL" in message
    assert not (tmp_path / emulator.datastack / "functional" / "microns.h5").exists()


def _expected(f: h5py.File, session: int, scan: int, unit: int, trial: int) -> np.ndarray:
    key = f"{session}_{scan}"
    row = list(f[f"sessions/{key}/meta/unit_ids"][:]).index(unit)
    return f[f"sessions/{key}/trials/{trial}/responses"][row]


@pytest.mark.parametrize("mode", ["match", "all"])
def test_each_matched_unit_gets_its_responses(workspace, recordings, mode):
    _, _, units = workspace
    frame = units[mode]
    matched = frame[frame["session"].notna()]
    assert len(matched) > 0
    with FunctionalReader(recordings) as reader, warnings.catch_warnings():
        warnings.simplefilter("error", UnmatchedUnitsWarning)  # every matched unit is there
        out = unit_responses(frame, reader)
        trials = {k: reader.trial_count(k) for k in reader.sessions()}
    keys = (
        matched["session"].astype(int).astype(str)
        + "_"
        + matched["scan_idx"].astype(int).astype(str)
    )
    assert len(out) == sum(trials[k] for k in keys)
    assert list(dict.fromkeys(out["nucleus_id"])) == list(dict.fromkeys(matched["nucleus_id"]))
    with h5py.File(recordings, "r") as f:
        for row in out.sample(min(len(out), 40), random_state=0).itertuples():
            want = _expected(f, row.session, row.scan_idx, row.functional_unit_id, row.trial_idx)
            np.testing.assert_array_equal(row.responses, want)
            shown = f[f"sessions/{row.session}_{row.scan_idx}/meta/condition_hashes"]
            assert row.condition_hash == shown[row.trial_idx].decode().replace("%2F", "/")


def test_a_unit_the_file_lacks_is_reported_not_dropped_silently(workspace, recordings):
    _, _, units = workspace
    frame = units["match"].copy()
    first = frame.index[frame["session"].notna()][0]
    frame.loc[first, "functional_unit_id"] = 99_999  # no scan has such a unit
    with FunctionalReader(recordings) as reader:
        with pytest.warns(UnmatchedUnitsWarning, match="1 matched unit row"):
            out = unit_responses(frame, reader, trials=[0])
        assert len(out.attrs["missing_units"]) == 1
        assert frame.loc[first, "nucleus_id"] not in set(out["nucleus_id"])
        with pytest.raises(FunctionalKeyError, match="1 matched unit row"):
            unit_responses(frame, reader, trials=[0], missing="raise")


def test_bad_arguments_and_odd_files_are_named(workspace, recordings, tmp_path):
    _, _, units = workspace
    frame = units["match"]
    matched = frame[frame["session"].notna()]
    key = f"{int(matched['session'].iloc[0])}_{int(matched['scan_idx'].iloc[0])}"
    in_scan = matched[
        (matched["session"] == matched["session"].iloc[0])
        & (matched["scan_idx"] == matched["scan_idx"].iloc[0])
    ]
    with FunctionalReader(recordings) as reader:
        one = unit_responses(frame, reader, trials=0)  # one trial, as an int
        assert set(one["trial_idx"]) == {0} and len(one) == len(matched)
        with pytest.raises(ValueError, match="missing must be 'warn' or 'raise', not 'ignore'"):
            unit_responses(frame, reader, missing="ignore")
        half = frame.copy()
        half.loc[matched.index[0], "scan_idx"] = None
        with pytest.raises(ValueError, match=r"1 row.* session without a scan_idx"):
            unit_responses(half, reader)
        n_trials = reader.trial_count(key)
    # a copy of the file: one scan without units, another scan's last trial renumbered
    odd = tmp_path / "odd.h5"
    odd.write_bytes(recordings.read_bytes())
    with h5py.File(odd, "r+") as f:
        del f[f"sessions/{key}/meta/unit_ids"]
        f.create_dataset(f"sessions/{key}/meta/unit_ids", data=np.array([], dtype=np.int64))
    with FunctionalReader(odd) as reader:
        with pytest.warns(UnmatchedUnitsWarning, match=f"{len(in_scan)} matched unit row"):
            out = unit_responses(frame, reader, trials=[0])
        assert len(out.attrs["missing_units"]) == len(in_scan)
        scan = (out["session"] == in_scan["session"].iloc[0]) & (
            out["scan_idx"] == in_scan["scan_idx"].iloc[0]
        )
        assert not scan.any() and len(out) == len(matched) - len(in_scan)
    with h5py.File(odd, "r+") as f:
        f.move(f"sessions/{key}/trials/{n_trials - 1}", f"sessions/{key}/trials/{n_trials + 5}")
    with FunctionalReader(odd) as reader:
        assert reader.trial_indices(key) == [*range(n_trials - 1), n_trials + 5]
        with pytest.raises(FunctionalKeyError, match=f"trial {n_trials - 1} not in session"):
            reader.get_trial(key, n_trials - 1)


def test_units_without_functional_ids_are_refused(workspace, recordings):
    _, _, units = workspace
    plain = units["match"].drop(columns=["functional_unit_id"])
    with FunctionalReader(recordings) as reader, pytest.raises(ValueError, match="functional"):
        unit_responses(plain, reader)


def test_the_docs_functional_block_runs(workspace, emulator, monkeypatch, tmp_path):
    instance, data, units = workspace
    assert _download(emulator, data, instance).success  # the file beside the units
    text = ASSETS_DOC.read_text()
    section = text[text.index("\n## Functional recordings") :]
    section = section[: section.find("\n## ", 1) % (len(section) + 1)]
    (block,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MICRONS_DATA_DIR", str(data))
    names: dict = {}
    exec(compile(block, str(ASSETS_DOC), "exec"), names)  # as a user pastes it
    with h5py.File(data / emulator.datastack / "functional" / "microns.h5", "r") as f:
        scan = sorted(f["sessions"])[0]
        rows = f[f"sessions/{scan}/meta/area_indices/V1"].shape[0]
        frames = f[f"sessions/{scan}/trials/0/responses"].shape[1]
    assert names["trial"]["responses"].shape == (rows, frames)
    assert names["clip"].ndim == 3
    assert set(names["traces"]["trial_idx"]) == {0}
    assert len(names["traces"]) == units["all"]["session"].notna().sum()
