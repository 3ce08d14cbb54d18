"""Deterministic generation of a synthetic MICrONS-like world: cells, their annotations, synapses.

Everything here is numpy arrays and is version-independent: which root id a cell has at a given
version, which cells a version's proofreading table lists, is decided by per-cell version
indices stored here and applied in `tables.py`. Cells are generated in the standard (pia-up,
µm) frame of `standard_transform` with a laminar structure, then mapped back to voxels, so the
pipeline's own transform recovers the layers.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import standard_transform

from microns_assets.vocabulary import BRAIN_AREAS, CLASSIFICATION_SYSTEMS

#: Cell types of the AIBS metamodel, by classification system, with their share of all nuclei.
CELL_TYPES: tuple[tuple[str, str, float], ...] = (
    ("23P", "excitatory_neuron", 0.100),
    ("4P", "excitatory_neuron", 0.080),
    ("5P-IT", "excitatory_neuron", 0.050),
    ("5P-ET", "excitatory_neuron", 0.018),
    ("5P-NP", "excitatory_neuron", 0.007),
    ("6P-IT", "excitatory_neuron", 0.080),
    ("6P-CT", "excitatory_neuron", 0.075),
    ("BC", "inhibitory_neuron", 0.020),
    ("MC", "inhibitory_neuron", 0.017),
    ("BPC", "inhibitory_neuron", 0.011),
    ("NGC", "inhibitory_neuron", 0.007),
    ("astrocyte", "nonneuron", 0.140),
    ("oligo", "nonneuron", 0.170),
    ("microglia", "nonneuron", 0.060),
    ("OPC", "nonneuron", 0.060),
    ("pericyte", "nonneuron", 0.105),
)
CLASSES = CLASSIFICATION_SYSTEMS
TYPE_NAMES = tuple(t for t, _, _ in CELL_TYPES)
TYPE_CLASS = np.array([CLASSES.index(c) for _, c, _ in CELL_TYPES], dtype=np.int8)

#: Laminar depth (µm below pia, standard frame) of each layer in the synthetic cortex.
LAYER_DEPTHS = {
    "L1": (0.0, 70.0),
    "L2/3": (70.0, 250.0),
    "L4": (250.0, 360.0),
    "L5": (360.0, 510.0),
    "L6": (510.0, 830.0),
    "WM": (830.0, 900.0),
}
_EXC_LAYER = {
    "23P": "L2/3",
    "4P": "L4",
    "5P-IT": "L5",
    "5P-ET": "L5",
    "5P-NP": "L5",
    "6P-IT": "L6",
    "6P-CT": "L6",
}
AREAS = BRAIN_AREAS
SCANS = (
    (4, 7), (5, 3), (5, 6), (5, 7), (6, 2), (6, 4), (6, 6),
    (6, 7), (7, 3), (7, 4), (7, 5), (8, 5), (9, 3), (9, 4),
)  # fmt: skip

NEVER = np.int8(127)  # version index meaning "not in any version"
SYNAPSES_PER_NUCLEUS = 140  # default synapse density (per nucleus); MICrONS has ~2,300
ROOT_BASE = 864_691_134_800_000_000
SCALES = {"small": 3_000, "real": 144_120}

# Standard-frame extent of the synthetic volume (µm); maps inside the real voxel ranges.
_X_UM = (300.0, 1500.0)
_Z_UM = (640.0, 1080.0)


def parse_scale(scale: str | int) -> int:
    """Number of nuclei for a scale name (`small`, `real`) or an explicit count."""
    if isinstance(scale, int) or (isinstance(scale, str) and scale.isdigit()):
        n = int(scale)
        if n < 200:
            raise ValueError(f"scale {n} is too small: the synthetic world needs >= 200 nuclei")
        return n
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: use one of {list(SCALES)} or a nucleus count")
    return SCALES[scale]


@dataclass
class World:
    """All arrays of one synthetic world. `cells`, `coreg` and `synapses` are column dicts."""

    n_versions: int
    cells: dict[str, np.ndarray]
    coreg: dict[str, np.ndarray]
    synapses: dict[str, np.ndarray]
    fragment_roots: np.ndarray

    def roots_at(self, k: int) -> np.ndarray:
        """Root id of every cell at version index `k` (0 where outside the segmentation)."""
        c = self.cells
        return np.where(c["edit_k"] <= k, c["root1"], c["root0"])

    def pre_roots_at(self, k: int, roots: np.ndarray | None = None) -> np.ndarray:
        """Presynaptic root of every synapse at version index `k`."""
        roots = self.roots_at(k) if roots is None else roots
        s = self.synapses
        cell = s["pre_idx"] >= 0
        out = self.fragment_roots[np.where(cell, 0, s["pre_fragment"])]
        out[cell] = roots[s["pre_idx"][cell]]
        return out


def _unique_ints(rng: np.random.Generator, n: int, low: int, span: int) -> np.ndarray:
    """`n` distinct int64 values in [low, low + span), in random order."""
    vals = np.unique(rng.integers(0, span, size=int(n * 1.1) + 16, dtype=np.int64))
    while vals.size < n:
        more = rng.integers(0, span, size=n, dtype=np.int64)
        vals = np.unique(np.concatenate([vals, more]))
    vals = rng.permutation(vals)[:n]
    return vals + low


def _depths(rng: np.random.Generator, types: np.ndarray) -> np.ndarray:
    n = types.size
    depth = rng.uniform(0.0, LAYER_DEPTHS["L6"][1], n)  # default: anywhere in grey matter
    for code, name in enumerate(TYPE_NAMES):
        sel = types == code
        k = int(sel.sum())
        if name in _EXC_LAYER:
            lo, hi = LAYER_DEPTHS[_EXC_LAYER[name]]
            depth[sel] = rng.uniform(lo, hi, k) + rng.normal(0.0, 6.0, k)
        elif name == "NGC":
            in_l1 = rng.random(k) < 0.7
            depth[sel] = np.where(in_l1, rng.uniform(*LAYER_DEPTHS["L1"], k), depth[sel])
        elif name == "oligo":
            in_wm = rng.random(k) < 0.5
            depth[sel] = np.where(in_wm, rng.uniform(*LAYER_DEPTHS["WM"], k), depth[sel])
        elif CLASSES[TYPE_CLASS[code]] == "nonneuron":
            depth[sel] = rng.uniform(0.0, LAYER_DEPTHS["WM"][1], k)
    return np.clip(depth, 0.5, LAYER_DEPTHS["WM"][1])


def _cells(rng: np.random.Generator, n: int, n_versions: int) -> dict[str, np.ndarray]:
    shares = np.array([s for _, _, s in CELL_TYPES])
    types = rng.choice(len(CELL_TYPES), size=n, p=shares / shares.sum()).astype(np.int8)
    cls = TYPE_CLASS[types]
    neuron = cls < 2
    typed = rng.random(n) < np.where(neuron, 0.95, 0.37)

    x_um = rng.uniform(*_X_UM, n)
    z_um = rng.uniform(*_Z_UM, n)
    depth = _depths(rng, types)
    vx = standard_transform.minnie_transform(resolution="vx").invert(
        np.column_stack([x_um, depth, z_um])
    )
    pos = np.rint(vx).astype(np.int32)

    # Brain areas: V1 on the low-x side, the higher areas beyond, LM a thin strip.
    boundary = _X_UM[0] + 0.63 * (_X_UM[1] - _X_UM[0])
    u = (z_um - _Z_UM[0]) / (_Z_UM[1] - _Z_UM[0])
    area = np.where(x_um < boundary, 0, np.where(u > 0.97, 3, np.where(u < 0.61, 2, 1)))

    root0 = _unique_ints(rng, n, ROOT_BASE, 1_200_000_000)
    root1 = _unique_ints(rng, n, ROOT_BASE + 1_200_000_000, 1_200_000_000)
    edit_k = np.where(rng.random(n) < 0.15, rng.integers(1, n_versions, n), NEVER)

    # Proofreading grows version by version: ~1.5% of nuclei by the last version.
    proof = neuron & (rng.random(n) < 0.015 / 0.475) & (rng.random(n) < np.where(cls == 0, 1, 0.6))
    proof_k = np.where(proof, rng.choice(np.arange(1, n_versions), n), NEVER).astype(np.int8)
    early = proof & (rng.random(n) < 0.45)
    proof_k[early] = 1
    edit_k = np.where(proof, proof_k, edit_k).astype(np.int8)

    zero = rng.random(n) < 0.03
    root0[zero] = 0
    root1[zero] = 0
    edit_k[zero] = NEVER
    # A few nuclei share their root with another nucleus: merge errors, as in the real data.
    candidates = np.flatnonzero(~zero & ~proof)
    merged = rng.choice(candidates, size=max(2, n // 250) * 2, replace=False).reshape(-1, 2)
    for key in ("root0", "root1", "edit_k"):
        arr = {"root0": root0, "root1": root1, "edit_k": edit_k}[key]
        arr[merged[:, 1]] = arr[merged[:, 0]]

    correction = np.full(n, -1, dtype=np.int8)
    fixed = typed & (rng.random(n) < 0.015)
    shift = rng.integers(1, len(CELL_TYPES), n)
    correction[fixed] = ((types.astype(np.int64) + shift) % len(CELL_TYPES))[fixed]

    return {
        "nucleus_id": np.sort(_unique_ints(rng, n, 100_000, 700_000)),
        "x": pos[:, 0],
        "y": pos[:, 1],
        "z": pos[:, 2],
        "x_um": x_um,
        "depth_um": depth,
        "z_um": z_um,
        "volume": rng.lognormal(np.log(250.0), 0.35, n).astype(np.float32),
        "type": types,
        "typed": typed,
        "area": area.astype(np.int8),
        "area_value": np.abs(x_um - boundary).astype(np.float32),
        "area_typed": rng.random(n) < 0.98,
        "root0": root0,
        "root1": root1,
        "edit_k": edit_k,
        "supervoxel": rng.integers(74_000_000_000_000_000, 120_000_000_000_000_000, n),
        "proof_k": proof_k,
        "strategy_axon": rng.choice(5, n, p=[0.35, 0.25, 0.05, 0.2, 0.15]).astype(np.int8),
        "strategy_dendrite": rng.choice(3, n, p=[0.1, 0.5, 0.4]).astype(np.int8),
        "correction": correction,
    }


def _coreg(rng: np.random.Generator, cells: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    eligible = np.flatnonzero(
        cells["typed"]
        & (TYPE_CLASS[cells["type"]] == 0)
        & (cells["depth_um"] < 650)
        & (cells["root0"] != 0)
    )
    k = min(eligible.size, int(0.11 * cells["type"].size))
    chosen = rng.choice(eligible, size=k, replace=False)
    repeats = np.where(rng.random(k) < 0.25, 2, 1)
    nuc = np.repeat(chosen, repeats)
    m = nuc.size
    scan = rng.integers(0, len(SCANS), m)
    ori = rng.uniform(0, np.pi, m)
    return {
        "cell": nuc.astype(np.int64),
        "session": np.array([s for s, _ in SCANS], dtype=np.int32)[scan],
        "scan_idx": np.array([s for _, s in SCANS], dtype=np.int32)[scan],
        "unit_id": rng.integers(1, 9000, m).astype(np.int32),
        "field": rng.integers(1, 9, m).astype(np.int32),
        "residual": rng.uniform(0, 8, m).astype(np.float32),
        "score": rng.uniform(0, 10, m).astype(np.float32),
        "pref_ori": ori,
        "pref_dir": ori + np.pi * (rng.random(m) < 0.5),
        "gOSI": rng.beta(2, 5, m),
        "gDSI": rng.beta(1.5, 6, m),
        "cc_abs": rng.beta(2, 3, m),
        "cc_max": rng.beta(5, 2, m),
        "cc_norm": rng.beta(3, 2, m),
        "OSI": rng.beta(2, 4, m),
        "DSI": rng.beta(1.5, 5, m),
        "readout_loc_x": rng.uniform(-1, 1, m),
        "readout_loc_y": rng.uniform(-1, 1, m),
        "in_v3": rng.random(m) < 0.9,
        "in_v4": rng.random(m) < 0.95,
    }


class _Grid:
    """Cubes of `size` µm over the cells' extent, to pick a cell of a pool near a point."""

    def __init__(self, cell_um: np.ndarray, size: float = 50.0) -> None:
        self.lo = cell_um.min(axis=0)
        self.size = size
        self.dims = np.floor((cell_um.max(axis=0) - self.lo) / size).astype(np.int64) + 1
        self.cell_um = cell_um

    def key(self, points: np.ndarray) -> np.ndarray:
        """The cube of each point (µm), -1 outside the grid."""
        g = np.floor((points - self.lo) / self.size).astype(np.int64)
        inside = np.all((g >= 0) & (g < self.dims), axis=1)
        g = np.clip(g, 0, self.dims - 1)
        return np.where(inside, (g[:, 0] * self.dims[1] + g[:, 1]) * self.dims[2] + g[:, 2], -1)

    def pick(self, rng: np.random.Generator, pool: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """For each target cube in `keys`, a random cell of `pool` in that cube (else any)."""
        pool_keys = self.key(self.cell_um[pool])
        order = np.argsort(pool_keys, kind="stable")
        sorted_pool = pool[order]
        counts = np.bincount(pool_keys, minlength=int(np.prod(self.dims)))
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        have = (keys >= 0) & (counts[np.maximum(keys, 0)] > 0)
        pick = rng.integers(0, pool.size, keys.shape[0])  # fallback: anywhere
        tk = keys[have]
        pick[have] = starts[tk] + (rng.random(tk.size) * counts[tk]).astype(np.int64)
        return np.where(have, sorted_pool[pick], pool[pick % pool.size])


#: Synapses drawn and transformed at a time: bounds the float64 temporaries of generation, so
#: that a world of tens of millions of synapses fits in memory. Drawing a distribution in
#: pieces consumes the random stream exactly as one draw does, so the world does not depend on it.
_CHUNK = 1 << 21


def _pieces(n: int):
    """`(start, stop)` of consecutive pieces of `_CHUNK` rows covering `range(n)`."""
    for start in range(0, n, _CHUNK):
        yield start, min(start + _CHUNK, n)


def _stable_order(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """`np.argsort(keys, kind="stable")` for int keys in [0, n_keys), by 16-bit radix passes."""
    if n_keys <= 1 << 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    assert n_keys <= 1 << 32
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    high = (keys[order] >> 16).astype(np.uint16)
    return order[np.argsort(high, kind="stable")]


def _synapses(rng: np.random.Generator, cells: dict[str, np.ndarray], n_syn: int) -> tuple:
    # Draws happen in a fixed order, each over all rows (in pieces): changing that order or a
    # distribution changes every world, which needs a new `cache.GENERATOR_VERSION`.
    cls = TYPE_CLASS[cells["type"]]
    alive = cells["root0"] != 0
    exc = np.flatnonzero((cls == 0) & alive)
    inh = np.flatnonzero((cls == 1) & alive)
    neurons = np.concatenate([exc, inh])
    um = np.column_stack([cells["x_um"], cells["depth_um"], cells["z_um"]])
    grid = _Grid(um)

    n_pairs = int(n_syn / 1.25)
    weights = np.where(cls[neurons] == 0, 1.0, 1.6)
    p_post = weights / weights.sum()
    post = np.empty(n_pairs, dtype=np.int32)
    for a, b in _pieces(n_pairs):
        post[a:b] = rng.choice(neurons, size=b - a, p=p_post)
    kind = np.empty(n_pairs, dtype=np.int8)  # exc cell, inh cell, fragment
    for a, b in _pieces(n_pairs):
        kind[a:b] = rng.choice(3, size=b - a, p=[0.4, 0.15, 0.45])
    # Each pair's presynaptic cell is near a point drawn around the postsynaptic cell: keep
    # only that point's grid cube.
    cube = np.empty(n_pairs, dtype=np.int32)
    for a, b in _pieces(n_pairs):
        target = rng.normal(0.0, 1.0, (b - a, 3))
        target *= np.where(kind[a:b, None] == 1, [[60.0, 60.0, 60.0]], [[120.0, 150.0, 120.0]])
        target += um[post[a:b]]
        cube[a:b] = grid.key(target)
    pre = np.full(n_pairs, -1, dtype=np.int32)
    for k, pool in ((0, exc), (1, inh)):
        sel = kind == k
        pre[sel] = grid.pick(rng, pool, cube[sel])
    del cube
    n_frag = max(1, n_syn // 30)
    frag = np.full(n_pairs, -1, dtype=np.int32)
    for a, b in _pieces(n_pairs):
        drawn = rng.integers(0, n_frag, b - a)
        frag[a:b] = np.where(kind[a:b] == 2, drawn, -1)
    del kind

    # Multi-synaptic connections: some pairs connect through several synapses.
    extra = rng.choice(n_pairs, size=n_syn - n_pairs, replace=True)
    post = np.concatenate([post, post[extra]])
    pre = np.concatenate([pre, pre[extra]])
    frag = np.concatenate([frag, frag[extra]])
    del extra
    order = _stable_order(post, cls.size)
    post, pre, frag = post[order], pre[order], frag[order]
    del order

    res = np.array([4.0, 4.0, 40.0])
    spread = np.array([25.0, 25.0, 25.0]) * 1000 / res
    post_vx = np.column_stack([cells["x"], cells["y"], cells["z"]])
    ctr = {name: np.empty(n_syn, dtype=np.int32) for name in "xyz"}
    for a, b in _pieces(n_syn):
        point = rng.normal(0.0, 1.0, (b - a, 3))
        point *= spread
        point += post_vx[post[a:b]]
        for axis, name in enumerate("xyz"):
            ctr[name][a:b] = np.rint(point[:, axis])
    syn = {"id": np.empty(n_syn, dtype=np.int64)}
    for a, b in _pieces(n_syn):
        syn["id"][a:b] = rng.integers(1, 24, b - a, dtype=np.int64)
    np.cumsum(syn["id"], out=syn["id"])
    syn["id"] += 1_000
    syn["post_idx"], syn["pre_idx"], syn["pre_fragment"] = post, pre, frag
    syn["size"] = np.empty(n_syn, dtype=np.int32)
    for a, b in _pieces(n_syn):
        p = pre[a:b]
        size_mu = np.where(p >= 0, np.where(cls[np.maximum(p, 0)] == 1, 8.0, 7.5), 7.2)
        syn["size"][a:b] = np.clip(rng.lognormal(size_mu, 1.0), 40, 500_000)
    syn["pre_sv"] = rng.integers(74_000_000_000_000_000, 120_000_000_000_000_000, n_syn)
    syn["post_sv"] = rng.integers(74_000_000_000_000_000, 120_000_000_000_000_000, n_syn)
    for name in "xyz":
        jitter = 15 if name != "z" else 1
        c = ctr[name]
        syn[f"ctr_{name}"] = c
        for side, sign in (("pre", -1), ("post", 1)):
            out = c.copy()
            for a, b in _pieces(n_syn):
                out[a:b] += sign * rng.integers(0, jitter + 1, b - a, dtype=np.int32)
            syn[f"{side}_{name}"] = out
    fragment_roots = _unique_ints(rng, n_frag, ROOT_BASE + 2_400_000_000, 2_000_000_000)
    return syn, fragment_roots


def check_synapses_per_cell(value: object) -> int:
    """`value` as a synapse density (synapses per nucleus): a positive int, else ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"synapses_per_cell must be a positive integer (synapses per nucleus), got {value!r}"
        )
    return int(value)


def generate(
    n_nuclei: int, seed: int, n_versions: int, synapses_per_cell: int = SYNAPSES_PER_NUCLEUS
) -> World:
    """Generate a world of `n_nuclei` nuclei and `n_nuclei * synapses_per_cell` synapses.

    Synapses go to the neurons only (an inhibitory one receives 1.6x an excitatory one's share),
    so `synapses_per_cell` is the density per nucleus of the volume, like MICrONS' ~2,300.
    The world takes ~76 bytes per synapse; generating it needs little more (the random draws
    go in pieces of `_CHUNK`): 46M synapses peak at ~3.6 GiB and take ~1 minute.
    """
    synapses_per_cell = check_synapses_per_cell(synapses_per_cell)
    rng = np.random.default_rng(seed)
    cells = _cells(rng, n_nuclei, n_versions)
    coreg = _coreg(rng, cells)
    synapses, fragment_roots = _synapses(rng, cells, n_nuclei * synapses_per_cell)
    return World(n_versions, cells, coreg, synapses, fragment_roots)
