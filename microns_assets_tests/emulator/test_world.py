"""The synthetic world is deterministic, cached, and shaped like the real MICrONS dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import standard_transform

from microns_assets.emulator import Emulator, cache
from microns_assets.emulator.synthetic import generate, parse_scale

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
