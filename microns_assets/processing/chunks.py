"""Synapse chunks: a fixed, documented hash of a 64-bit root id picks a cell's chunk.

`chunk_of(root) = splitmix64(root) mod N_CHUNKS`, where `splitmix64` is the output function of
Steele, Lea & Flood's SplitMix64 generator for the state `root`:

    z = root + 0x9E3779B97F4A7C15                      (mod 2**64)
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9           (mod 2**64)
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB           (mod 2**64)
    z =  z ^ (z >> 31)

It depends only on the id (never on row order, on which other cells exist, or on Python's
salted `hash`), spreads consecutive ids evenly, and is vectorized. No Dagster imports.
"""

from __future__ import annotations

import numpy as np

N_CHUNKS = 32
CHUNK_KEYS: tuple[str, ...] = tuple(f"{i:02d}" for i in range(N_CHUNKS))

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 output for each 64-bit state (wrapping unsigned arithmetic)."""
    z = np.asarray(values).astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def chunk_of(root_ids: np.ndarray, n_chunks: int = N_CHUNKS) -> np.ndarray:
    """The chunk index (0 .. n_chunks-1) of each root id."""
    return (splitmix64(np.asarray(root_ids, dtype=np.int64)) % np.uint64(n_chunks)).astype(int)


def chunk_index(key: str) -> int:
    """The chunk number of a partition key such as `"07"`."""
    if key not in CHUNK_KEYS:
        raise ValueError(
            f"unknown synapse chunk {key!r}; chunks are {CHUNK_KEYS[0]}..{CHUNK_KEYS[-1]}"
        )
    return int(key)
