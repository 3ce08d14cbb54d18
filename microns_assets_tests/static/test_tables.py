"""A table dump read back equals what the live API gives for the same version, frame for frame."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from microns_assets.cave.complete import fetch_verified
from microns_assets.config import ROLES, load_versions_config
from microns_assets.emulator.catalog import (
    EXTRA_TABLES,
    SYNAPSES,
    TARGET_PREDICTIONS,
    table_metadata,
    tables_in,
)
from microns_assets.static_dumps.source import StaticSource, table_files
from microns_assets.static_dumps.synapses import synapse_files
from microns_assets.static_dumps.tables import (
    DumpFormatError,
    UnknownReferenceError,
    read_header,
    read_rows,
)
from microns_assets_tests.conftest import DELETED_NUCLEI, connect

VERSIONS = (1412, 1507)  # expired in the emulator; 1507 has the digital twin table


def _source(emu, tmp_path) -> StaticSource:
    return StaticSource(f"{emu.url}/static/{emu.datastack}", tmp_path)


def _live(emu, version: int, table: str) -> tuple[pd.DataFrame, tuple[int, ...]]:
    """What the live API answers for `table` of `version` (revived for the comparison)."""
    emu.server.revived.add(version)
    try:
        result, count = fetch_verified(connect(emu), version, table)
    finally:
        emu.server.revived.discard(version)
    return result.frame, count.orphan_ids


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("id", kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_role_table_equals_the_live_answer(emulator, tmp_path, version):
    cfg = load_versions_config().get(version)
    source = _source(emulator, tmp_path)
    tables = [t for t in (cfg.table_for(r) for r in ROLES) if t is not None]
    assert len(tables) >= 5
    for table in tables + [t for t in EXTRA_TABLES if t in tables_in(version)]:
        # the table it references, as the emulator's metadata says (nucleus, synapses, none)
        target = table_metadata(table, version, emulator.datastack)["reference_table"]
        got = source.table(version, table, target, SYNAPSES)
        live, orphans = _live(emulator, version, table)
        pd.testing.assert_frame_equal(_by_id(got.frame), _by_id(live))  # columns, dtypes, rows
        assert got.orphan_ids == orphans == ()
        assert got.rows_in_dump == len(live)
        assert got.joined_to == (target if "target_id" in live.columns else None)


def test_a_reference_to_the_synapse_table_is_joined_to_the_synapse_dump(emulator, tmp_path):
    got = _source(emulator, tmp_path).table(1412, TARGET_PREDICTIONS, SYNAPSES, SYNAPSES)
    synapses = emulator.ground_truth(1412, SYNAPSES).set_index("id")
    assert len(got.frame) == got.rows_in_dump > 0 and got.orphan_ids == ()
    assert (got.frame["id_ref"] == got.frame["target_id"]).all()
    roots = synapses.loc[got.frame["target_id"].to_numpy("int64"), "post_pt_root_id"]
    assert got.frame["post_pt_root_id"].tolist() == roots.tolist()
    assert {f.url.rsplit("/", 1)[1] for f in got.files} >= set(synapse_files(SYNAPSES))


def test_a_reference_table_without_a_known_target_is_refused(emulator, tmp_path):
    with pytest.raises(UnknownReferenceError, match=f"{TARGET_PREDICTIONS} v1412.*Nothing"):
        _source(emulator, tmp_path).table(1412, TARGET_PREDICTIONS, None, SYNAPSES)


def test_64_bit_ids_are_exact(emulator, tmp_path):
    got = _source(emulator, tmp_path).table(1412, "nucleus_detection_v0", None).frame
    truth = emulator.ground_truth(1412, "nucleus_detection_v0")
    assert got["pt_root_id"].dtype == "Int64"
    assert int(got["pt_root_id"].max()) > 2**53  # beyond what a float holds exactly
    assert got["pt_root_id"].tolist() == truth["pt_root_id"].tolist()
    assert got["pt_supervoxel_id"].tolist() == truth["pt_supervoxel_id"].tolist()


def test_orphan_annotations_are_dropped_and_reported_like_the_servers_join(
    orphan_emulator, tmp_path
):
    source = _source(orphan_emulator, tmp_path)
    table = "aibs_metamodel_celltypes_v661"
    got = source.table(1412, table, "nucleus_detection_v0")
    live, orphans = _live(orphan_emulator, 1412, table)
    pd.testing.assert_frame_equal(_by_id(got.frame), _by_id(live))
    assert len(got.orphan_ids) == DELETED_NUCLEI and got.orphan_ids == orphans
    assert got.rows_in_dump == len(live) + DELETED_NUCLEI


def test_a_corrupt_gzip_is_refused(emulator, tmp_path):
    header_name, data_name = table_files("nucleus_detection_v0")
    source = _source(emulator, tmp_path)
    columns = read_header(source.fetch(1412, header_name).path)
    data = source.fetch(1412, data_name).path
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) // 2])  # cut
    with pytest.raises(DumpFormatError, match=r"not a complete dump.*delete it"):
        read_rows(data, columns)
    data.write_bytes(raw[:100] + bytes(200) + raw[300:])  # damaged inside
    with pytest.raises(DumpFormatError, match="not a complete dump"):
        read_rows(data, columns)


def test_a_header_with_an_unknown_type_or_shape_is_refused(tmp_path):
    header = tmp_path / "h.csv"
    header.write_text("id,bigint\nshape,geometry\n")
    with pytest.raises(DumpFormatError, match="'shape' has type 'geometry'"):
        read_header(header)
    header.write_text("id bigint\n")
    with pytest.raises(DumpFormatError, match="expected `column,type`"):
        read_header(header)


def test_rows_of_another_width_are_refused(tmp_path):
    data = tmp_path / "t.csv.gz"
    data.write_bytes(gzip.compress(b"1,2\n3\n"))
    with pytest.raises(DumpFormatError, match="not a complete dump of 2 columns"):
        read_rows(data, read_header_of(tmp_path, "a,bigint\nb,bigint\n"))


def read_header_of(tmp_path, text: str):
    path = tmp_path / "header.csv"
    path.write_text(text)
    return read_header(path)
