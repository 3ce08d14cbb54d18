"""On-disk cache of generated worlds, so that a second emulator start is fast.

A world is a folder of `.npy` arrays plus a manifest, written under a temporary name and renamed
into place (a killed generation never leaves a folder that looks complete). Arrays are memory-
mapped on load. The folder name carries the generator version, the nucleus count, the seed, the
number of versions and the synapse density (`-d2300`), the latter left out at the default 140 so
that caches written before the density setting existed stay valid. The manifest records the
density too, and a world is only served if it and the synapse count match what was asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from microns_assets.emulator.synthetic import SYNAPSES_PER_NUCLEUS, World

#: Bump when the generator changes what it produces: old cache folders are then ignored.
GENERATOR_VERSION = 1
_GROUPS = ("cells", "coreg", "synapses")
#: The density of every world cached before it was a setting: folders and manifests without one.
_UNMARKED_DENSITY = 140


def cache_root() -> Path:
    """`MICRONS_EMULATOR_CACHE`, else `$XDG_CACHE_HOME/microns_assets/emulator`."""
    if env := os.environ.get("MICRONS_EMULATOR_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "microns_assets" / "emulator"


def _folder(root: Path, n_nuclei: int, seed: int, n_versions: int, synapses_per_cell: int) -> Path:
    name = f"world-g{GENERATOR_VERSION}-n{n_nuclei}-s{seed}-v{n_versions}"
    if synapses_per_cell != _UNMARKED_DENSITY:
        name += f"-d{synapses_per_cell}"
    return root / name


def load(
    root: Path,
    n_nuclei: int,
    seed: int,
    n_versions: int,
    synapses_per_cell: int = SYNAPSES_PER_NUCLEUS,
) -> World | None:
    """The cached world, memory-mapped, or None if there is no complete one."""
    folder = _folder(root, n_nuclei, seed, n_versions, synapses_per_cell)
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        meta = json.loads(manifest.read_text())
        if meta.get("synapses_per_cell", _UNMARKED_DENSITY) != synapses_per_cell:
            return None
        groups = {
            g: {name: np.load(folder / f"{g}__{name}.npy", mmap_mode="r") for name in meta[g]}
            for g in _GROUPS
        }
        fragments = np.load(folder / "fragment_roots.npy", mmap_mode="r")
        if groups["synapses"]["id"].shape[0] != n_nuclei * synapses_per_cell:
            return None
    except (OSError, ValueError, KeyError):
        return None  # unreadable cache: regenerate rather than serve damaged data
    return World(n_versions, groups["cells"], groups["coreg"], groups["synapses"], fragments)


def save(
    root: Path,
    world: World,
    n_nuclei: int,
    seed: int,
    synapses_per_cell: int = SYNAPSES_PER_NUCLEUS,
) -> None:
    """Write `world` atomically; a concurrent writer of the same world is harmless."""
    n_syn = world.synapses["id"].shape[0]
    if n_syn != n_nuclei * synapses_per_cell:
        raise ValueError(
            f"a world of {n_syn} synapses is not {n_nuclei} nuclei x {synapses_per_cell} synapses"
        )
    folder = _folder(root, n_nuclei, seed, world.n_versions, synapses_per_cell)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=root))
    try:
        meta: dict = {"synapses_per_cell": synapses_per_cell}
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
