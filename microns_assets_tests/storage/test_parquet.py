"""Parquet storage: exact 64-bit ids, provenance, atomic writes, clear errors on bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from upath import UPath

from microns_assets.storage import (
    CorruptFileError,
    MissingDataError,
    asset_path,
    columns_by_file,
    read_frame,
    read_head,
    read_provenance,
    write_frame,
)
from microns_assets.storage.parquet import COMPACT, FAST
from microns_assets.storage.reuse import reusable

BIG = [864691137199116097, 864691134884743674, 2**63 - 1, -(2**63), 0]


def test_int64_ids_round_trip_exactly(tmp_path):
    frame = pd.DataFrame(
        {
            "plain": np.array(BIG, dtype=np.int64),
            "nullable": pd.array([*BIG[:4], None], dtype="Int64"),
            "x": pd.array([1, 2, 3, None, 5], dtype="Int32"),
            "s": pd.array(["a", None, "c", "d", "e"], dtype="string"),
        }
    )
    path = UPath(tmp_path) / "t.parquet"
    write_frame(frame, path, {"k": "v"})
    back = read_frame(path)
    assert back["plain"].tolist() == BIG
    assert back["nullable"].dtype == "Int64" and back["nullable"].isna().tolist()[-1]
    assert back["nullable"].iloc[:4].tolist() == BIG[:4]
    pd.testing.assert_frame_equal(back, frame)


def test_provenance_round_trips_in_parquet_metadata(tmp_path):
    path = UPath(tmp_path) / "p.parquet"
    prov = {"datastack": "minnie65_synthetic", "version": 1300, "query": {"queries": 3}}
    write_frame(pd.DataFrame({"a": [1]}), path, prov)
    assert read_provenance(path) == prov
    assert read_frame(path).attrs["provenance"] == prov


def test_paths_name_datastack_and_version():
    path = asset_path("/data", "minnie65_synthetic", 1300, ["cave_raw", "nucleus"])
    assert str(path) == "/data/minnie65_synthetic/v1300/cave_raw/nucleus.parquet"
    chunk = asset_path("/data", "minnie65_public", 943, ["synapse_chunks"], chunk="07")
    assert str(chunk) == "/data/minnie65_public/v943/synapse_chunks/07.parquet"


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    path = UPath(tmp_path) / "x.parquet"
    bad = pd.DataFrame({"a": [object(), object()]})  # pyarrow cannot convert these
    with pytest.raises(Exception):  # noqa: B017 - any conversion error
        write_frame(bad, path, {})
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_the_previous_complete_file(tmp_path):
    path = UPath(tmp_path) / "x.parquet"
    write_frame(pd.DataFrame({"a": [1, 2]}), path, {"n": 1})
    with pytest.raises(Exception):  # noqa: B017
        write_frame(pd.DataFrame({"a": [object()]}), path, {"n": 2})
    assert read_frame(path)["a"].tolist() == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]


def test_truncated_file_is_reported_corrupt_with_advice(tmp_path):
    path = UPath(tmp_path) / "x.parquet"
    write_frame(pd.DataFrame({"a": range(1000)}), path, {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match="materialize that partition again"):
        read_frame(path)


def test_missing_file(tmp_path):
    with pytest.raises(MissingDataError):
        read_frame(UPath(tmp_path) / "nope.parquet")


def test_memory_filesystem_through_universal_pathlib():
    path = UPath("memory://microns/v1/t.parquet")
    write_frame(pd.DataFrame({"id": pd.array(BIG[:2], dtype="Int64")}), path, {"v": 1})
    assert read_frame(path)["id"].tolist() == BIG[:2]


def test_a_local_file_reads_the_same_by_any_name_and_its_head_is_its_first_rows(tmp_path):
    path = UPath(tmp_path) / "t.parquet"
    frame = pd.DataFrame({"id": pd.array(BIG, dtype="Int64"), "n": np.arange(len(BIG))})
    write_frame(frame, path, {"v": 1})
    for name in (path, Path(path.path), UPath(f"file://{path.path}")):
        pd.testing.assert_frame_equal(read_frame(name), frame)
        assert read_provenance(name) == {"v": 1}
    pd.testing.assert_frame_equal(read_head(path, 2), frame.head(2))


def _open_descriptors_to(path) -> int:
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            count += os.readlink(fd) == str(path)
        except OSError:  # closed while listing
            continue
    return count


def test_reading_leaves_no_file_open_even_when_it_fails(tmp_path):
    path = UPath(tmp_path) / "t.parquet"
    write_frame(pd.DataFrame({"a": np.arange(10_000)}), path, {"k": "v"})
    read_frame(path)
    read_provenance(path)
    assert _open_descriptors_to(path) == 0
    with pytest.raises(ValueError, match="no column") as unknown:
        read_frame(path, columns=["nope"])
    # the error is still held, with its traceback: the file was closed before it rose
    assert "nope" in str(unknown.value)
    assert _open_descriptors_to(path) == 0


def test_columns_of_several_files_are_read_one_after_the_other(tmp_path):
    paths = [UPath(tmp_path) / f"{i}.parquet" for i in range(3)]
    write_frame(pd.DataFrame({"a": BIG, "b": range(5), "c": list("vwxyz")}), paths[0], {})
    write_frame(pd.DataFrame({"a": [7], "b": [8], "c": ["q"]}), paths[1], {})
    write_frame(pd.DataFrame({"a": [], "b": [], "c": []}).astype("int64"), paths[2], {})
    parts = list(columns_by_file(paths, ["b", "a"]))
    assert [list(part) for part in parts] == [["b", "a"]] * 3
    assert [part["a"].tolist() for part in parts] == [list(BIG), [7], []]  # 64-bit ids exactly
    assert parts[0]["a"].dtype == np.int64 and parts[0]["b"].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match=r"has no column\(s\) \['d'\]"):
        list(columns_by_file(paths, ["a", "d"]))


def test_columns_with_missing_values_or_from_damaged_files_are_refused(tmp_path):
    path = UPath(tmp_path) / "x.parquet"
    write_frame(pd.DataFrame({"a": pd.array([1, None, 3], dtype="Int64")}), path, {})
    with pytest.raises(ValueError, match="1 missing values"):
        list(columns_by_file([path], ["a"]))
    write_frame(pd.DataFrame({"a": range(1000)}), path, {})
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match="materialize that partition again"):
        list(columns_by_file([path], ["a"]))


def _flip_one_bit(path: UPath, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("compression", [FAST, COMPACT])
def test_a_bit_flipped_in_a_data_page_is_damage_not_other_values(tmp_path, compression):
    """lz4 and zstd pages carry no checksum of their own: the page CRC catches the flip."""
    import pyarrow.parquet as pq

    path = UPath(tmp_path) / "chunk.parquet"
    sizes = np.random.default_rng(0).integers(100, 5000, 2000)
    frame = pd.DataFrame({"pre": np.arange(2000, dtype=np.int64), "size": sizes})
    write_frame(frame, path, {"rows": 2000}, compression)
    column = pq.ParquetFile(str(path)).metadata.row_group(0).column(1)  # `size`
    _flip_one_bit(path, column.data_page_offset + column.total_compressed_size // 2)
    with pytest.raises(CorruptFileError, match="CRC checksum verification failed"):
        read_frame(path)
    with pytest.raises(CorruptFileError, match="materialize that partition again"):
        list(columns_by_file([path], ["size"]))
    frame, why = reusable(path, {"rows": 2000})
    assert frame is None and "unreadable" in why


@pytest.mark.parametrize("key", [b'"chunk_code_version"', b'"index_columns"'])
def test_damaged_metadata_json_is_a_damaged_file(tmp_path, key):
    """Our provenance or pandas' metadata, one bit flipped: named damage, not a JSON error."""
    path = UPath(tmp_path) / "chunk.parquet"
    write_frame(pd.DataFrame({"a": range(10)}), path, {"chunk_code_version": "2", "rows": 10})
    _flip_one_bit(path, path.read_bytes().rfind(key))
    with pytest.raises(CorruptFileError, match=f"{path} is damaged"):
        read_frame(path)
    frame, why = reusable(path, {"chunk_code_version": "2"})
    assert frame is None and "unreadable" in why
