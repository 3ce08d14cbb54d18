"""Run config of a connectome selection: which pre and post cells, which shape of output."""

from typing import Literal

import dagster as dg
from pydantic import Field

from microns_assets.processing.selection import Side


class SideConfig(dg.Config):
    """Cells of one side, by the units table's properties (unset = no filter)."""

    layer: list[str] | None = Field(None, description="e.g. ['L2/3', 'L4']")
    brain_area: list[str] | None = Field(None, description="V1, AL, RL, LM")
    classification_system: list[str] | None = Field(
        None, description="excitatory_neuron, inhibitory_neuron, nonneuron"
    )
    cell_type: list[str] | None = Field(None, description="e.g. ['23P', 'BC']")
    proofread: list[str] | None = Field(
        None, description="ax_non, ax_clean, ax_extended, dn_non, dn_clean, dn_extended (all apply)"
    )
    tuning: str | None = Field(None, description="matched or not_matched")
    sample: int | None = Field(None, description="a random sample of this many cells")
    sample_seed: int = Field(0, description="seed of the sample")
    root_ids: list[int] | None = Field(None, description="explicit root ids of this version")

    def to_side(self) -> Side:
        """The plain selection this config describes."""

        def tup(values):
            return tuple(values) if values is not None else None

        return Side(
            layer=tup(self.layer),
            brain_area=tup(self.brain_area),
            classification_system=tup(self.classification_system),
            cell_type=tup(self.cell_type),
            proofread=tup(self.proofread),
            tuning=self.tuning,
            sample=self.sample,
            sample_seed=self.sample_seed,
            root_ids=tup(self.root_ids),
        )


class SynapseConfig(dg.Config):
    """The connectome to download (default: every unit to every unit, aggregated by pair)."""

    pre: SideConfig = Field(default_factory=SideConfig, description="presynaptic cells")
    post: SideConfig = Field(default_factory=SideConfig, description="postsynaptic cells")
    mode: Literal["aggregate", "individual"] = Field(
        "aggregate",
        description="aggregate: one row per pair, summed size and synapse count (the seed's "
        "drop_synapses_duplicates=True); individual: every synapse with id, size, centre (µm)",
    )
    remove_autapses: bool = Field(False, description="drop synapses of a cell onto itself")
    batch_size: int = Field(
        500,
        gt=0,
        description="post cells per query (the seed's 500) until the answers show how many rows "
        "a cell brings; then as many as bring 3/4 of the row cap",
    )
    verify_counts: bool = Field(
        True,
        description="ask the server to count each chunk's rows (one extra, uncapped count "
        "query per chunk; per sub-batch only for a chunk that does not add up) and check "
        "that every counted row arrived (check matches_server_count); false skips the counts, "
        "and the check warns that nothing was verified",
    )

    force: bool = Field(
        False,
        description="download every chunk again, even one whose file is complete and from the "
        "same selection, mode, cells and code version (such a chunk is otherwise reused)",
    )

    def selection(self) -> dict:
        """What decides the rows (for provenance and consistency checks)."""
        return {
            "pre": self.pre.to_side().describe(),
            "post": self.post.to_side().describe(),
            "mode": self.mode,
            "remove_autapses": self.remove_autapses,
        }
