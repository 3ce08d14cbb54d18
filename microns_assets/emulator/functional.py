"""A small synthetic functional-recordings file (HDF5), consistent with the world's coregistration.

The real recordings are one HDF5 file on Hugging Face (`NeuroBLab/MICrONS`, `microns.h5`, about
20 GB), the file microns-combiner 0.4.0 downloads and reads. The emulator serves a file in the
same layout at `/functional/{datastack}/microns.h5` (public, `Range`, an `ETag` that is the
file's SHA-256, faults as everywhere):

- `sessions/{session}_{scan}/trials/{i}/`: `responses` (units x frames, float32), `treadmill`,
  `pupil`, `stim_times` (frames);
- `sessions/{session}_{scan}/meta/condition_hashes` (the hash shown in each trial, bytes, `/`
  written `%2F`), `meta/area_indices/{area}` (rows of `responses` in that area) and
  `meta/unit_ids` (the scan's functional unit id of each row of `responses`);
- `videos/{hash}/clip` (frames x height x width, uint8) with attributes `type` (`Monet2`,
  `Trippy`, `Clip`), `duration`, `fps` and the type's own (Monet2 also has `directions` and
  `onsets` datasets), `videos/{hash}/instances/{session}_{scan}_{i}` links to the trials that
  showed it;
- `types/{type}/{hash}` links to the videos, `brain_areas/{area}`: the session keys recorded
  there.

Each scan's units are the unit ids its coregistration rows name (so every coregistered unit of
the world has responses) plus a few never matched to a cell; a unit's area is its cell's. Values
come from a generator seeded per scan: the same world always gives the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections.abc import Callable

import numpy as np

from microns_assets.emulator.synthetic import AREAS, SCANS, World

FILE_NAME = "microns.h5"
TRIALS = 6  # per scan
FRAMES = 30  # per trial and clip
CLIP_SHAPE = (FRAMES, 9, 16)
STIM_TYPES = ("Monet2", "Trippy", "Clip")
VIDEOS_PER_TYPE = 3
UNMATCHED_UNITS = 5  # per scan: recorded, never coregistered


def encode_hash(condition_hash: str) -> str:
    """A condition hash as an HDF5 name (`/` is a path separator there)."""
    return condition_hash.replace("/", "%2F")


def condition_hashes() -> list[tuple[str, str]]:
    """(hash, stimulus type) of every video, hashes like the real ones (base64, some with `/`)."""
    out = []
    for stim in STIM_TYPES:
        for i in range(VIDEOS_PER_TYPE):
            digest = hashlib.sha1(f"{stim}-{i}".encode()).digest()
            out.append((base64.b64encode(digest).decode()[:20], stim))
    return out


def _scan_units(world: World, session: int, scan: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit ids of one scan (sorted) and the brain-area index of each."""
    g = world.coreg
    mine = (g["session"] == session) & (g["scan_idx"] == scan)
    ids, first = np.unique(g["unit_id"][mine], return_index=True)
    areas = world.cells["area"][g["cell"][mine][first]].astype(np.int64)
    rng = np.random.default_rng((session, scan, 1))
    extra = np.setdiff1d(rng.choice(np.arange(9000, 9500), UNMATCHED_UNITS, replace=False), ids)
    ids = np.concatenate([ids, extra])
    areas = np.concatenate([areas, rng.integers(0, len(AREAS), extra.size)])
    order = np.argsort(ids)
    return ids[order], areas[order]


def build_file(world: World) -> bytes:
    """The whole HDF5 file of `world` (see the module docstring)."""
    import h5py  # the emulator's other paths never need it

    videos = condition_hashes()
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for n, (h, stim) in enumerate(videos):
            v = f.create_group(f"videos/{encode_hash(h)}")
            rng = np.random.default_rng((n, 2))
            v["clip"] = rng.integers(0, 256, CLIP_SHAPE, dtype=np.uint8)
            v.attrs.update(type=stim, duration=FRAMES / 30.0, fps=30.0)
            if stim == "Monet2":
                v["directions"] = rng.uniform(0, 360, 8)
                v["onsets"] = np.arange(8) * FRAMES / 8
                v.attrs["ori_coherence"] = 1.0
            elif stim == "Trippy":
                v.attrs.update(temp_freq=4.0, spatial_freq=0.04)
            else:
                v.attrs.update(movie_name=f"synthetic movie {n}", short_movie_name=f"m{n}")
            f[f"types/{stim}/{encode_hash(h)}"] = h5py.SoftLink(f"/videos/{encode_hash(h)}")
        recorded: dict[str, list[str]] = {a: [] for a in AREAS}
        for s_i, (session, scan) in enumerate(SCANS):
            key = f"{session}_{scan}"
            ids, areas = _scan_units(world, session, scan)
            rng = np.random.default_rng((session, scan, 3))
            meta = f.create_group(f"sessions/{key}/meta")
            meta["unit_ids"] = ids.astype(np.int32)
            for a, area in enumerate(AREAS):
                rows = np.flatnonzero(areas == a)
                if rows.size:
                    meta[f"area_indices/{area}"] = rows.astype(np.int64)
                    recorded[area].append(key)
            shown = [(s_i + i) % len(videos) for i in range(TRIALS - 1)]
            shown.append(shown[0])  # one video twice in every session
            meta["condition_hashes"] = np.array([encode_hash(videos[k][0]) for k in shown], "S")
            for i, k in enumerate(shown):
                trial = f.create_group(f"sessions/{key}/trials/{i}")
                trial["responses"] = rng.gamma(2.0, 0.5, (ids.size, FRAMES)).astype(np.float32)
                trial["treadmill"] = rng.normal(0, 1, FRAMES).astype(np.float32)
                trial["pupil"] = rng.uniform(2, 6, FRAMES).astype(np.float32)
                trial["stim_times"] = (i * 10.0 + np.arange(FRAMES) / 30.0).astype(np.float64)
                link = f"videos/{encode_hash(videos[k][0])}/instances/{key}_{i}"
                f[link] = h5py.SoftLink(f"/sessions/{key}/trials/{i}")
        for area, keys in recorded.items():
            f[f"brain_areas/{area}"] = np.array(keys, "S")
    return buffer.getvalue()


class FunctionalFile:
    """The functional file of one world, built on its first request (thread-safe)."""

    def __init__(self, world: Callable[[], World]) -> None:
        self._world = world
        self._body: bytes | None = None
        self._sha256 = ""
        self._lock = threading.Lock()
        #: A test knob: this many answers have one byte flipped (a bad proxy or disk), with the
        #: true file's length and SHA-256 in their headers.
        self.corrupt_answers = 0

    def get(self) -> tuple[bytes, str]:
        """The file's bytes and their SHA-256 (hex)."""
        with self._lock:
            if self._body is None:
                self._body = build_file(self._world())
                self._sha256 = hashlib.sha256(self._body).hexdigest()
            return self._body, self._sha256

    def answer(self) -> tuple[bytes, str]:
        """What the server sends: the file (or a corrupted copy, see `corrupt_answers`)."""
        body, sha256 = self.get()
        with self._lock:
            if self.corrupt_answers <= 0:
                return body, sha256
            self.corrupt_answers -= 1
        middle = len(body) // 2
        return body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :], sha256
