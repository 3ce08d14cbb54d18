"""The chunk hash: SplitMix64's published outputs, stability, spread."""

from __future__ import annotations

import numpy as np
import pytest

from microns_assets.processing.chunks import CHUNK_KEYS, N_CHUNKS, chunk_index, chunk_of, splitmix64


def test_splitmix64_matches_the_reference_sequence():
    # SplitMix64 seeded with 0 yields these first outputs (states 0, golden, 2*golden).
    golden = 0x9E3779B97F4A7C15
    states = np.array([0, golden, (2 * golden) % 2**64], dtype=np.uint64)
    assert [int(v) for v in splitmix64(states)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_chunk_depends_only_on_the_id():
    roots = np.array([864691135000000001, 864691137199116097, 0, 2**63 - 1], dtype=np.int64)
    alone = [int(chunk_of(np.array([r]))[0]) for r in roots]
    assert chunk_of(roots).tolist() == alone
    assert chunk_of(roots[::-1]).tolist() == alone[::-1]


def test_chunks_are_evenly_filled():
    roots = 864_691_135_000_000_000 + np.arange(200_000, dtype=np.int64)
    counts = np.bincount(chunk_of(roots), minlength=N_CHUNKS)
    assert counts.min() > 0.9 * counts.mean() and counts.max() < 1.1 * counts.mean()


def test_chunk_keys():
    assert CHUNK_KEYS[0] == "00" and len(CHUNK_KEYS) == N_CHUNKS
    assert chunk_index("07") == 7
    with pytest.raises(ValueError, match="unknown synapse chunk"):
        chunk_index("99")
