"""On-disk cache of generated worlds, so that a second emulator start is fast.

A world is a folder of `.npy` arrays plus a manifest, written under a temporary name and renamed
into place (a killed generation never leaves a folder that looks complete). Arrays are memory-
mapped on load. The folder name carries the generator version, the nucleus count and the seed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from microns_assets.emulator.synthetic import World

#: Bump when the generator changes what it produces: old cache folders are then ignored.
GENERATOR_VERSION = 1
_GROUPS = ("cells", "coreg", "synapses")


def cache_root() -> Path:
    """`MICRONS_EMULATOR_CACHE`, else `$XDG_CACHE_HOME/microns_assets/emulator`."""
    if env := os.environ.get("MICRONS_EMULATOR_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "microns_assets" / "emulator"


def _folder(root: Path, n_nuclei: int, seed: int, n_versions: int) -> Path:
    return root / f"world-g{GENERATOR_VERSION}-n{n_nuclei}-s{seed}-v{n_versions}"


def load(root: Path, n_nuclei: int, seed: int, n_versions: int) -> World | None:
    """The cached world, memory-mapped, or None if there is no complete one."""
    folder = _folder(root, n_nuclei, seed, n_versions)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        meta = json.loads(manifest.read_text())
        groups = {
            g: {name: np.load(folder / f"{g}__{name}.npy", mmap_mode="r") for name in meta[g]}
            for g in _GROUPS
        }
        fragments = np.load(folder / "fragment_roots.npy", mmap_mode="r")
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache: regenerate rather than serve damaged data
    return World(n_versions, groups["cells"], groups["coreg"], groups["synapses"], fragments)


def save(root: Path, world: World, n_nuclei: int, seed: int) -> None:
    """Write `world` atomically; a concurrent writer of the same world is harmless."""
    folder = _folder(root, n_nuclei, seed, world.n_versions)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=root))
    try:
        meta = {}
        for g in _GROUPS:
            arrays = getattr(world, g)
            meta[g] = sorted(arrays)
            for name, arr in arrays.items():
                np.save(tmp / f"{g}__{name}.npy", np.ascontiguousarray(arr))
        np.save(tmp / "fragment_roots.npy", world.fragment_roots)
        (tmp / "manifest.json").write_text(json.dumps(meta))
        with contextlib.suppress(OSError):  # another process may have finished first
            tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
