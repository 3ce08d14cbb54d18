"""`plan_update` and the cursor: which versions are added, which downloaded, what is recorded."""

from __future__ import annotations

import pytest

from microns_assets.automation.versions import (
    CursorError,
    SeenVersions,
    newest_version,
    plan_update,
    version_numbers,
)

LISTED = [117, 943, 1078, 1181, 1300]
VALID = [117, 943, 1300]


def seen(known=(), expired=()) -> SeenVersions:
    return SeenVersions(frozenset(known), frozenset(expired))


@pytest.mark.parametrize(
    ("state", "partitions", "add", "run"),
    [
        # first tick, empty instance: everything valid added, only the newest downloaded
        (None, [], [117, 943, 1300], [1300]),
        # first tick, the newest already a partition (added by hand): no download
        (None, [1300], [117, 943], []),
        # first tick, an older one already a partition
        (None, [117], [943, 1300], [1300]),
        # later tick: every version not seen before is added and downloaded
        (seen([117]), [117], [943, 1300], [943, 1300]),
        # a version seen before but deleted by hand is not added back
        (seen([117, 943]), [117], [1300], [1300]),
        # nothing new
        (seen([117, 943, 1300], [1078, 1181]), [117, 943, 1300], [], []),
    ],
)
def test_what_is_added_and_downloaded(state, partitions, add, run):
    update = plan_update(state, LISTED, VALID, partitions)
    assert (update.add, update.run) == (add, run)
    assert update.first_tick is (state is None)
    assert update.state.known >= {117, 943, 1300}


def test_expired_versions_are_recorded_once_and_never_added():
    first = plan_update(None, LISTED, VALID, [])
    assert first.newly_expired == [1078, 1181]
    assert first.state.expired == {1078, 1181}
    assert not {1078, 1181} & (set(first.add) | set(first.run) | first.state.known)
    again = plan_update(first.state, LISTED, VALID, first.add)
    assert again.newly_expired == [] and again.add == [] and again.run == []


def test_a_known_version_that_expires_is_recorded_not_removed():
    before = seen([117, 943, 1300])
    update = plan_update(before, [*LISTED, 1300], [117, 943], [117, 943, 1300])
    assert update.newly_expired == [1078, 1181, 1300]
    assert 1300 in update.state.known and 1300 in update.state.expired
    assert update.add == [] and update.run == []


def test_no_valid_version_requests_nothing():
    update = plan_update(None, [1078], [], [])
    assert (update.add, update.run, update.newly_expired) == ([], [], [1078])


def test_cursor_round_trip_and_first_tick():
    state = seen([1300, 117], [1078])
    assert state.to_cursor() == '{"known": [117, 1300], "expired": [1078]}'
    assert SeenVersions.from_cursor(state.to_cursor()) == state
    assert SeenVersions.from_cursor(None) is None
    assert SeenVersions.from_cursor("") is None


@pytest.mark.parametrize(
    "cursor", ["not json", '{"known": [1]}', '{"known": ["x"], "expired": []}']
)
def test_a_foreign_cursor_fails_with_what_to_do(cursor):
    with pytest.raises(CursorError, match="Set cursor value"):
        SeenVersions.from_cursor(cursor)


def test_partition_keys_to_versions():
    keys = ["117", "1300", "scratch", "943"]
    assert version_numbers(keys) == {117, 943, 1300}
    assert newest_version(keys) == 1300
    assert newest_version(["scratch"]) is None
    assert newest_version([]) is None
