"""The synthetic world is deterministic, cached, and shaped like the real MICrONS dataset."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import standard_transform

from microns_assets.emulator import Emulator, cache, catalog, synthetic
from microns_assets.emulator.synthetic import TYPE_CLASS, generate, parse_scale

NUC = "nucleus_detection_v0"
CT = "aibs_metamodel_celltypes_v661"


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = generate(400, 7, 9), generate(400, 7, 9), generate(400, 8, 9)
    for key in ("nucleus_id", "root0", "x", "type"):
        assert np.array_equal(a.cells[key], b.cells[key])
    assert np.array_equal(a.synapses["size"], b.synapses["size"])
    assert not np.array_equal(a.cells["root0"], c.cells["root0"])


def test_scale_names_and_counts():
    assert parse_scale("small") == 3_000
    assert parse_scale("real") == 144_120
    assert parse_scale("5000") == 5_000
    with pytest.raises(ValueError, match="unknown scale"):
        parse_scale("huge")
    with pytest.raises(ValueError, match="too small"):
        parse_scale(10)


def test_cache_round_trip_and_partial_folder_is_ignored(tmp_path):
    world = generate(300, 3, 9)
    assert cache.load(tmp_path, 300, 3, 9) is None
    cache.save(tmp_path, world, 300, 3)
    loaded = cache.load(tmp_path, 300, 3, 9)
    assert isinstance(loaded.cells["root0"], np.memmap)
    assert np.array_equal(loaded.synapses["id"], world.synapses["id"])
    # A folder without its manifest (a killed save) is not a cached world.
    folder = next(tmp_path.iterdir())
    (folder / "manifest.json").unlink()
    assert cache.load(tmp_path, 300, 3, 9) is None


def test_second_start_reuses_the_cache(tmp_path):
    with Emulator(scale=300, seed=5, cache_dir=tmp_path) as emu:
        first = emu.ground_truth(1300, NUC)
    assert len(list(tmp_path.iterdir())) == 1
    with Emulator(scale=300, seed=5, cache_dir=tmp_path) as emu:
        assert isinstance(emu.world.cells["root0"], np.memmap)
        pd.testing.assert_frame_equal(emu.ground_truth(1300, NUC), first)


def test_ids_positions_and_roots_look_like_microns(emulator):
    nuc = emulator.ground_truth(1300, NUC)
    roots = nuc["pt_root_id"]
    live = roots[roots > 0]
    assert live.min() > 8.6e17 and live.max() < 8.7e17
    assert 0.01 < (roots == 0).mean() < 0.06
    assert live.duplicated(keep=False).sum() >= 2  # nuclei sharing a root: merge errors
    assert nuc["id"].is_unique
    assert nuc["pt_position_x"].between(60_000, 410_000).all()
    assert nuc["pt_position_z"].between(15_000, 28_000).all()


def test_value_sets_and_area_shares(emulator):
    ct = emulator.ground_truth(1300, CT)
    assert set(ct["classification_system"]) == {
        "excitatory_neuron", "inhibitory_neuron", "nonneuron",
    }  # fmt: skip
    assert {"23P", "4P", "5P-IT", "6P-CT", "BC", "MC", "astrocyte", "oligo"} <= set(ct["cell_type"])
    shares = emulator.ground_truth(1300, "nucleus_functional_area_assignment")["tag"].value_counts(
        normalize=True
    )
    assert set(shares.index) <= {"V1", "AL", "RL", "LM"}
    assert shares["V1"] > 0.5 and shares["RL"] > shares["AL"] > shares.get("LM", 0)
    proof = emulator.ground_truth(1718, "proofreading_status_and_strategy")
    assert set(proof["strategy_axon"]) <= {
        "none", "axon_column_truncated", "axon_interareal",
        "axon_partially_extended", "axon_fully_extended",
    }  # fmt: skip
    assert set(proof["strategy_dendrite"]) <= {"none", "dendrite_clean", "dendrite_extended"}


def test_layers_are_ordered_by_depth_after_the_standard_transform(emulator):
    nuc = emulator.ground_truth(1300, NUC).set_index("id")
    ct = emulator.ground_truth(1300, CT)
    pos = nuc.loc[ct["target_id"], ["pt_position_x", "pt_position_y", "pt_position_z"]]
    depth = standard_transform.minnie_transform(resolution="vx").apply(pos.to_numpy(float))[:, 1]
    median = pd.Series(depth).groupby(ct["cell_type"].to_numpy()).median()
    assert median["23P"] < median["4P"] < median["5P-IT"] < median["6P-IT"]
    assert 70 < median["23P"] < 250 and 510 < median["6P-CT"] < 830


def test_later_versions_have_more_proofreading(emulator):
    counts = [
        len(emulator.ground_truth(v, "proofreading_status_and_strategy")) for v in (943, 1300, 1718)
    ]
    assert counts[0] < counts[1] < counts[2]


def test_synapse_roots_belong_to_cells_or_fragments(emulator):
    syn = emulator.ground_truth(1300, "synapses_pni_2")
    nuc_roots = set(emulator.ground_truth(1300, NUC)["pt_root_id"])
    assert syn["id"].is_unique
    assert syn["post_pt_root_id"].isin(nuc_roots).all()
    pre_is_cell = syn["pre_pt_root_id"].isin(nuc_roots)
    assert 0.3 < pre_is_cell.mean() < 0.8  # the rest are orphan axon fragments
    pairs = syn.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    assert (pairs > 1).any()  # multi-synaptic connections exist


# --- synapse density ------------------------------------------------------------------


def _digest(world) -> str:
    h = hashlib.sha256()
    for name in sorted(world.synapses):
        h.update(np.ascontiguousarray(world.synapses[name]).tobytes())
    h.update(np.ascontiguousarray(world.fragment_roots).tobytes())
    return h.hexdigest()[:16]


def test_default_density_is_unchanged(tmp_path):
    world = generate(300, 3, 9)
    assert world.synapses["id"].size == 300 * 140
    # The bits of the default world from before the density setting existed: caches written
    # then are still served under the same key. If this changes (a generator edit, a numpy
    # upgrade that changes its streams), bump cache.GENERATOR_VERSION and update the digest.
    assert _digest(world) == "2a43d5a77e52e383"
    with Emulator(scale=300, seed=3, cache_dir=tmp_path) as emu:
        assert emu.synapses_per_cell == 140
        _ = emu.world
    n = len(catalog.VERSIONS)  # the world draws an edit history over every version
    assert [p.name for p in tmp_path.iterdir()] == [
        f"world-g{cache.GENERATOR_VERSION}-n300-s3-v{n}"
    ]


def test_generation_in_pieces_draws_the_same_world(monkeypatch):
    whole = generate(300, 3, 9, 300)
    monkeypatch.setattr(synthetic, "_CHUNK", 997)  # many pieces, of an odd size
    pieces = generate(300, 3, 9, 300)
    for name, values in whole.synapses.items():
        assert np.array_equal(pieces.synapses[name], values), name
    assert np.array_equal(pieces.fragment_roots, whole.fragment_roots)


def test_stable_order_matches_a_stable_argsort():
    rng = np.random.default_rng(0)
    for n_keys in (300, 200_000):  # one 16-bit radix pass, and two
        keys = rng.integers(0, n_keys, 50_000).astype(np.int32)
        order = synthetic._stable_order(keys, n_keys)
        assert np.array_equal(order, np.argsort(keys, kind="stable"))


def test_density_sets_synapses_per_nucleus(emulator_cache):
    density = 1_000
    emu = Emulator(scale=300, seed=2, cache_dir=emulator_cache, synapses_per_cell=density)
    syn = emu.ground_truth(1300, "synapses_pni_2")
    assert len(syn) == 300 * density  # the generator draws exactly nuclei x density synapses
    assert syn["id"].is_unique

    # Every synapse is on a live neuron, drawn with weight 1 (excitatory) or 1.6 (inhibitory):
    # excitatory neurons get a share q = n_exc / (n_exc + 1.6 n_inh) of them. 1/1.25 of the
    # synapses are such independent draws and the rest copies of drawn ones, so the excitatory
    # count has variance (0.8 * 1.25**2 + 0.2) n q (1 - q) = 1.45 n q (1 - q); allow 6 sd.
    world = emu.world
    cls = TYPE_CLASS[world.cells["type"]]
    alive = world.cells["root0"] != 0
    n_exc, n_inh = int(((cls == 0) & alive).sum()), int(((cls == 1) & alive).sum())
    n = len(syn)
    q = n_exc / (n_exc + 1.6 * n_inh)
    per_cell = np.bincount(world.synapses["post_idx"], minlength=cls.size)
    assert per_cell[~alive | (cls == 2)].sum() == 0
    exc = per_cell[alive & (cls == 0)].sum()
    six_sd = 6 * math.sqrt(1.45 * n * q * (1 - q))
    assert abs(exc - n * q) < six_sd
    # So an inhibitory neuron gets ~1.6x an excitatory one's synapses, within the same bound.
    ratio = ((n - exc) / n_inh) / (exc / n_exc)
    assert ratio == pytest.approx(1.6, rel=six_sd / (n * q) + six_sd / (n * (1 - q)))

    again = generate(300, 2, 9, density)
    assert np.array_equal(again.synapses["size"], np.asarray(world.synapses["size"]))


def test_distinct_densities_use_distinct_caches(tmp_path):
    for density in (200, 300, 200):
        with Emulator(scale=300, seed=5, cache_dir=tmp_path, synapses_per_cell=density) as emu:
            assert emu.world.synapses["id"].size == 300 * density
            assert emu.tables(1300).get("synapses_pni_2").num_rows == 300 * density
    g, n = cache.GENERATOR_VERSION, len(catalog.VERSIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"world-g{g}-n300-s5-v{n}-d200", f"world-g{g}-n300-s5-v{n}-d300",
    ]  # fmt: skip
    assert cache.load(tmp_path, 300, 5, n, 200) is not None
    assert cache.load(tmp_path, 300, 5, n) is None  # the default density was never generated


def test_cache_never_serves_another_density(tmp_path):
    world = generate(300, 3, 9)
    with pytest.raises(ValueError, match="not 300 nuclei x 500 synapses"):
        cache.save(tmp_path, world, 300, 3, 500)  # a world filed under the wrong density
    cache.save(tmp_path, world, 300, 3)
    folder = next(tmp_path.iterdir())
    manifest = folder / "manifest.json"
    assert json.loads(manifest.read_text())["synapses_per_cell"] == 140
    # A folder renamed to another density's name is not served as that density.
    folder.rename(tmp_path / f"{folder.name}-d500")
    assert cache.load(tmp_path, 300, 3, 9, 500) is None
    (tmp_path / f"{folder.name}-d500").rename(folder)
    # A manifest from before the setting (no density) is a default-density world.
    meta = json.loads(manifest.read_text())
    del meta["synapses_per_cell"]
    manifest.write_text(json.dumps(meta))
    assert cache.load(tmp_path, 300, 3, 9) is not None


@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", True, None])
def test_bad_density_fails_with_a_clear_message(bad, tmp_path):
    with pytest.raises(ValueError, match="synapses_per_cell must be a positive integer"):
        Emulator(scale=300, cache_dir=tmp_path, synapses_per_cell=bad)
    with pytest.raises(ValueError, match="synapses_per_cell must be a positive integer"):
        generate(300, 0, 9, bad)
    assert not any(tmp_path.iterdir())
