"""The synapse dump split into chunks: the same rows the live path gives, in bounded passes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from microns_assets.processing.chunks import chunk_of
from microns_assets.static_dumps.source import StaticSource
from microns_assets.static_dumps.synapses import split_synapses, synapse_files
from microns_assets.static_dumps.tables import DumpFormatError, read_header

VERSION = 1412
TABLE = "synapses_pni_2"


@pytest.fixture
def dump(emulator, tmp_path):
    source = StaticSource(f"{emulator.url}/static/{emulator.datastack}", tmp_path)
    header_name, data_name = synapse_files(TABLE)
    return read_header(source.fetch(VERSION, header_name).path), source.fetch(VERSION, data_name)


def _cells(emulator) -> np.ndarray:
    roots = emulator.ground_truth(VERSION, "nucleus_detection_v0")["pt_root_id"].to_numpy()
    return np.unique(roots[roots != 0]).astype(np.int64)


def test_individual_rows_per_chunk_equal_the_synapse_table(emulator, dump, tmp_path):
    columns, data = dump
    cells = _cells(emulator)
    post, pre = cells[::2], cells[: len(cells) // 2]  # a post and a pre selection
    labels = chunk_of(post)
    chunks = {f"{c:02d}": post[labels == c] for c in (0, 5, 31)}  # a run of three chunks
    got = dict(
        (label, rows)
        for label, rows, _ in split_synapses(
            data.path, columns, chunks, pre, individual=True, work_dir=tmp_path
        )
    )
    assert list(got) == list(chunks)
    truth = emulator.ground_truth(VERSION, TABLE)
    for label, rows in got.items():
        want = truth[
            truth["post_pt_root_id"].isin(chunks[label]) & truth["pre_pt_root_id"].isin(pre)
        ]
        want = want[["id", "pre_pt_root_id", "post_pt_root_id", "size",
                     "ctr_pt_position_x", "ctr_pt_position_y", "ctr_pt_position_z"]]  # fmt: skip
        assert len(rows) > 100
        pd.testing.assert_frame_equal(
            rows.sort_values("id").reset_index(drop=True),
            want.sort_values("id").reset_index(drop=True),
        )
    assert not list(tmp_path.glob("synapse-split-*"))  # the work folder is gone


def test_every_pre_cell_and_an_empty_chunk(emulator, dump, tmp_path):
    columns, data = dump
    cells = _cells(emulator)
    chunks = {"all": cells, "none": np.array([1], dtype=np.int64)}  # root 1 has no synapse
    got = {
        label: rows
        for label, rows, _ in split_synapses(
            data.path, columns, chunks, None, individual=False, work_dir=tmp_path
        )
    }
    truth = emulator.ground_truth(VERSION, TABLE)
    assert len(got["all"]) == int(truth["post_pt_root_id"].isin(cells).sum())
    assert got["none"].empty and list(got["none"].columns) == list(got["all"].columns)
    assert dict(got["all"].dtypes.astype(str)) == {
        "id": "Int64", "pre_pt_root_id": "Int64", "post_pt_root_id": "Int64", "size": "Int32",
    }  # fmt: skip


def test_a_corrupt_synapse_dump_is_refused(emulator, dump, tmp_path):
    columns, data = dump
    raw = data.path.read_bytes()
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(DumpFormatError, match="cannot be read whole"):
        list(
            split_synapses(
                broken, columns, {"all": _cells(emulator)}, None, individual=False,
                work_dir=tmp_path,
            )
        )  # fmt: skip
