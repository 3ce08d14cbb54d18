"""`storage.rollup`: the sorted stream, what its writer tallies (or how it fails), the check."""

import errno

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from fsspec.registry import _registry
from upath import UPath

from microns_assets.storage import read_frame
from microns_assets.storage.rollup import Streamed, sorted_batches, write_batches
from microns_assets.synapses import checks

KEYS = ["pre_pt_root_id", "post_pt_root_id"]


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pre_pt_root_id": rng.integers(1, 40, n),
            "post_pt_root_id": rng.integers(1, 40, n),
            "n_synapses": rng.integers(1, 5, n),
            "size": rng.integers(1, 1000, n),
        }
    )


def test_repeated_keys_are_counted_within_and_across_batches(tmp_path):
    rng = np.random.default_rng(3)
    frame = _frame(rng, 3000).sort_values(KEYS, kind="stable", ignore_index=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    batches = table.to_batches(max_chunksize=97)  # many boundaries, some inside a run of keys
    streamed = Streamed(
        pa.RecordBatchReader.from_batches(table.schema, batches), {"k": 1},
        tally=("n_synapses",), sorted_by=tuple(KEYS),
    )  # fmt: skip
    write_batches(streamed, UPath(tmp_path / "out.parquet"))
    assert streamed.written["repeated_keys"] == frame.duplicated(KEYS).sum() > 0
    assert streamed.written["rows"] == len(frame)
    assert streamed.written["n_synapses"] == frame["n_synapses"].sum()
    pd.testing.assert_frame_equal(read_frame(tmp_path / "out.parquet"), frame, check_dtype=False)
    # without keys nothing is counted
    unsorted = Streamed(pa.RecordBatchReader.from_batches(table.schema, batches), {"k": 1})
    write_batches(unsorted, UPath(tmp_path / "plain.parquet"))
    assert "repeated_keys" not in unsorted.written


def _rollup(paths: list[UPath], out: UPath):
    chunks = pd.concat([read_frame(p) for p in paths])
    sums = {"synapses": int(chunks["n_synapses"].sum()), "size": int(chunks["size"].sum())}
    chunk_totals = {"rows": len(chunks), **sums}
    streamed = Streamed(
        sorted_batches(paths, KEYS), {}, tally=checks.tallied_columns("aggregated"),
        sorted_by=tuple(KEYS),
    )  # fmt: skip
    write_batches(streamed, out)
    [result] = checks.rollup_results(streamed.written, chunk_totals, "aggregated")
    return result


def test_the_rollup_check_fails_on_a_pair_stored_in_two_chunks(tmp_path):
    rng = np.random.default_rng(5)
    pairs = _frame(rng, 4000).drop_duplicates(KEYS, ignore_index=True)
    first, second = pairs.iloc[: len(pairs) // 2], pairs.iloc[len(pairs) // 2 :]
    paths = [UPath(tmp_path / "00.parquet"), UPath(tmp_path / "01.parquet")]
    for path, part in zip(paths, (first, second), strict=True):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), str(path))
    good = _rollup(paths, UPath(tmp_path / "good.parquet"))
    assert good.passed, good.description
    # one pair of the first chunk also in the second, and another one twice in the second
    again = pd.concat([second, first.iloc[[7]], second.iloc[[3]]], ignore_index=True)
    pq.write_table(pa.Table.from_pandas(again, preserve_index=False), str(paths[1]))
    bad = _rollup(paths, UPath(tmp_path / "bad.parquet"))
    assert not bad.passed
    assert bad.description == "2 duplicated rows across chunks"
    assert bad.metadata["written_repeated_keys"].value == 2


def test_a_missing_key_is_an_error_and_no_file_is_left(tmp_path):
    big = 864691135000000000  # root ids beyond 2**53: floats would make neighbours equal
    table = pa.table({"pre_pt_root_id": [big, big + 1, None], "post_pt_root_id": [1, 1, 1]})
    streamed = Streamed(table.to_reader(), {}, sorted_by=tuple(KEYS))
    with pytest.raises(ValueError, match="'pre_pt_root_id' has missing values"):
        write_batches(streamed, UPath(tmp_path / "out.parquet"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("threads", [None, 1])
def test_the_stream_is_every_row_sorted_on_any_number_of_threads(tmp_path, threads):
    rng = np.random.default_rng(7)
    frames = [_frame(rng, 2000) for _ in range(3)]
    paths = [UPath(tmp_path / f"{i:02d}.parquet") for i in range(len(frames))]
    for path, frame in zip(paths, frames, strict=True):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(path))
    got = sorted_batches(paths, KEYS, batch_rows=500, threads=threads).read_all().to_pandas()
    everything = pd.concat(frames, ignore_index=True)
    assert len(got) == len(everything) == 6000
    assert got[KEYS].equals(everything.sort_values(KEYS, ignore_index=True)[KEYS])
    assert got["size"].sum() == everything["size"].sum()


class _FullDisk(MemoryFileSystem):
    """A memory file system whose files take at most 2,000 bytes: then "no space left"."""

    protocol = "fulldisk"
    store: dict = {}  # (its own, not the memory file system's)
    pseudo_dirs = [""]

    def _open(self, path, mode="rb", **kwargs):
        file = super()._open(path, mode, **kwargs)
        if "w" in mode:
            write = file.write

            def limited(data):
                if file.tell() + len(data) > 2000:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return write(data)

            file.write = limited
        return file


@pytest.mark.filterwarnings("ignore:UPath 'fulldisk' filesystem not explicitly implemented")
def test_a_failed_write_is_raised_at_once_and_leaves_no_file(tmp_path, monkeypatch):
    """A write that fails (a full disk) stops the roll-up at its batch: nothing is stored."""
    # the protocol is known to fsspec for this test only (undone at its end)
    monkeypatch.setitem(_registry, _FullDisk.protocol, _FullDisk)
    table = pa.Table.from_pandas(_frame(np.random.default_rng(1), 30_000), preserve_index=False)
    read = []

    def batches():
        for batch in table.to_batches(max_chunksize=1000):
            read.append(batch.num_rows)
            yield batch

    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    streamed = Streamed(reader, {}, tally=("size",))
    with pytest.raises(OSError, match="No space left"):
        write_batches(streamed, UPath("fulldisk://rollup/out.parquet"))
    assert len(read) < 10  # the first failed batch stopped the reading: not 30 batches read
    assert _FullDisk().find("/rollup") == []  # neither the file nor its temporary one
    # the same stream on a disk with room is written whole
    streamed = Streamed(table.to_reader(max_chunksize=1000), {}, tally=("size",))
    write_batches(streamed, UPath(tmp_path / "out.parquet"))
    assert streamed.written == {"rows": 30_000, "size": table["size"].to_numpy().sum()}
    pd.testing.assert_frame_equal(read_frame(tmp_path / "out.parquet"), table.to_pandas())


def test_a_stream_that_fails_midway_leaves_no_file(tmp_path):
    """The sorted stream breaks after some batches were written: no file is left."""
    table = pa.Table.from_pandas(_frame(np.random.default_rng(2), 20_000), preserve_index=False)

    def batches():
        for i, batch in enumerate(table.to_batches(max_chunksize=1000)):
            if i == 5:
                raise RuntimeError("the sort's stream broke")
            yield batch

    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    with pytest.raises(RuntimeError, match="stream broke"):
        write_batches(Streamed(reader, {}, tally=("size",)), UPath(tmp_path / "out.parquet"))
    assert list(tmp_path.iterdir()) == []
