"""`FunctionalReader` against the emulator's file, compared with plain h5py reads of that file."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from microns_assets.functional import FunctionalKeyError, FunctionalReader
from microns_assets.vocabulary import BRAIN_AREAS


@pytest.fixture()
def raw(recordings):
    with h5py.File(recordings, "r") as f:
        yield f


def _name(h: str) -> str:
    return h.replace("/", "%2F")


def test_with_closes_the_file(recordings):
    with FunctionalReader(recordings) as reader:
        assert not reader.closed
        assert reader.sessions()
    assert reader.closed


def test_a_trial_has_every_unit_and_frame(recordings, raw):
    with FunctionalReader(recordings) as reader:
        for key in reader.sessions():
            trials = raw[f"sessions/{key}/trials"]
            assert reader.trial_count(key) == len(trials) > 0
            trial = reader.get_trial(key, len(trials) - 1)
            stored = trials[str(len(trials) - 1)]
            assert trial["session"] == key and trial["trial_idx"] == str(len(trials) - 1)
            for field in ("responses", "treadmill", "pupil", "stim_times"):
                np.testing.assert_array_equal(trial[field], stored[field][:])
            assert trial["responses"].shape[0] == reader.unit_ids(key).size


def test_a_brain_area_keeps_its_rows_only(recordings, raw):
    with FunctionalReader(recordings) as reader:
        key = reader.sessions()[0]
        for area in reader.get_available_brain_areas(key):
            rows = raw[f"sessions/{key}/meta/area_indices/{area}"][:]
            trial = reader.get_trial(key, 0, brain_area=area)
            full = raw[f"sessions/{key}/trials/0/responses"][:]
            np.testing.assert_array_equal(trial["responses"], full[rows])
        areas = reader.get_available_brain_areas()
        assert set(areas) <= set(BRAIN_AREAS) and areas


def test_hashes_videos_and_types(recordings, raw):
    with FunctionalReader(recordings) as reader:
        key = reader.sessions()[0]
        shown = reader.get_hashes_by_session(key)
        assert len(shown) == reader.trial_count(key)
        assert reader.get_hashes_by_session(key, return_unique=True) == set(shown)
        assert len(set(shown)) < len(shown)  # a video shown twice is listed twice
        every = [h for t in ("Monet2", "Trippy", "Clip") for h in reader.get_hashes_by_type(t)]
        assert any("/" in h for h in every)  # hashes come back as written, with their `/`
        for h in every:
            video = reader.get_video_data(h)
            stored = raw[f"videos/{_name(h)}"]
            np.testing.assert_array_equal(video["clip"], stored["clip"][:])
            assert video["stim_type"] == reader.get_video_type(h) == stored.attrs["type"]
            assert h in reader.get_hashes_by_type(video["stim_type"])
            own = {"Monet2": "directions", "Trippy": "temp_freq", "Clip": "movie_name"}
            assert video[own[video["stim_type"]]] is not None
            assert video["fps"] == stored.attrs["fps"]


def test_every_trial_that_showed_a_hash_is_returned(recordings, raw):
    with FunctionalReader(recordings) as reader:
        expected = {
            (key, str(i))
            for key in reader.sessions()
            for i, h in enumerate(reader.get_hashes_by_session(key))
            if h == reader.get_hashes_by_session(reader.sessions()[0])[0]
        }
        h = reader.get_hashes_by_session(reader.sessions()[0])[0]
        data = reader.get_full_data_by_hash(h)
        assert {(t["session"], t["trial_idx"]) for t in data["trials"]} == expected
        for t in reader.get_responses_by_hash(h):
            stored = raw[f"sessions/{t['session']}/trials/{t['trial_idx']}/responses"][:]
            np.testing.assert_array_equal(t["responses"], stored)
        area = reader.get_available_brain_areas()[0]
        narrowed = reader.get_responses_by_hash(h, brain_area=area)
        for t in narrowed:
            rows = raw[f"sessions/{t['session']}/meta/area_indices/{area}"][:]
            assert t["responses"].shape[0] == rows.size


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda r: r.get_trial("99_9", 0), "session '99_9'"),
        (lambda r: r.get_trial(r.sessions()[0], 999), "trial 999"),
        (lambda r: r.get_video_data("no-such-hash"), "condition hash 'no-such-hash'"),
        (lambda r: r.get_full_data_by_hash("no-such-hash"), "condition hash"),
        (lambda r: r.get_hashes_by_type("Movie"), "stimulus type 'Movie'"),
        (lambda r: r.get_trial(r.sessions()[0], 0, brain_area="PM"), "brain area 'PM'"),
        (lambda r: r.get_hashes_by_session("4"), "session '4'"),
    ],
    ids=["session", "trial", "hash", "hash, full data", "type", "area", "session key form"],
)
def test_unknown_keys_raise_naming_what_exists(recordings, call, named):
    with FunctionalReader(recordings) as reader, pytest.raises(FunctionalKeyError) as err:
        call(reader)
    message = str(err.value)
    assert named in message and "it has" in message


def test_a_missing_or_broken_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="functional_recordings"):
        FunctionalReader(tmp_path / "absent.h5")
    (tmp_path / "broken.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(OSError, match="force: true"):
        FunctionalReader(tmp_path / "broken.h5")


def test_the_default_path_is_under_the_data_dir(recordings, tmp_path):
    target = tmp_path / "minnie65_synthetic" / "functional" / "microns.h5"
    target.parent.mkdir(parents=True)
    target.write_bytes(recordings.read_bytes())
    with FunctionalReader(data_dir=tmp_path, datastack="minnie65_synthetic") as reader:
        assert reader.path == target and reader.sessions()
