"""Which cells a connectome selection takes, per side (pre or post), from the units table.

The filters are the seed's `filter_neurons` (layer, brain area, class, proofreading, tuning),
plus cell types, a seeded random sample and explicit root ids. Two seed bugs are fixed: its
`cell_type` filter compared classification systems (here `classification_system` and
`cell_type` are separate), and its `ax_extended` selected every axon *not* fully extended.
Anything unknown or a selection that matches nothing is an error. No Dagster imports.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from microns_assets import vocabulary as vocab

#: Proofreading shorthands (the seed's), as conditions on the strategy columns.
PROOFREAD = {
    "ax_non": ("strategy_axon", ("none",)),
    "ax_clean": ("strategy_axon", vocab.STRATEGY_AXON[1:]),
    "ax_extended": ("strategy_axon", ("axon_fully_extended",)),
    "dn_non": ("strategy_dendrite", ("none",)),
    "dn_clean": ("strategy_dendrite", vocab.STRATEGY_DENDRITE[1:]),
    "dn_extended": ("strategy_dendrite", ("dendrite_extended",)),
}
TUNING = ("matched", "not_matched")


class SelectionError(ValueError):
    """A selection names an unknown value or matches no unit."""


@dataclass(frozen=True)
class Side:
    """Filters for one side of the connectome; None means no filter on that property."""

    layer: tuple[str, ...] | None = None
    brain_area: tuple[str, ...] | None = None
    classification_system: tuple[str, ...] | None = None
    cell_type: tuple[str, ...] | None = None
    proofread: tuple[str, ...] | None = None
    tuning: str | None = None
    sample: int | None = None
    sample_seed: int = 0
    root_ids: tuple[int, ...] | None = None

    def is_everything(self) -> bool:
        """True when the side is every unit (no filter, no sample, no explicit ids)."""
        return all(getattr(self, f.name) is None for f in fields(self) if f.name != "sample_seed")

    def validate(self) -> None:
        """Raise `SelectionError` naming any unknown value (needs no units table)."""
        _check("layer", self.layer, vocab.CORTICAL_LAYERS)
        _check("brain_area", self.brain_area, vocab.BRAIN_AREAS)
        _check("classification_system", self.classification_system, vocab.CLASSIFICATION_SYSTEMS)
        _check("cell_type", self.cell_type, vocab.CELL_TYPES)
        _check("proofread", self.proofread, tuple(PROOFREAD))
        _check("tuning", (self.tuning,) if self.tuning is not None else None, TUNING)

    @classmethod
    def from_description(cls, described: dict) -> Side:
        """The side `describe` described (as read back from a file's provenance)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in described.items()})

    def describe(self) -> dict:
        """The filters that are set, for provenance."""
        return {
            f.name: list(v) if isinstance(v, tuple) else v
            for f in fields(self)
            if (v := getattr(self, f.name)) is not None
            and not (f.name == "sample_seed" and self.sample is None)
        }


def _check(name: str, given: tuple[str, ...] | None, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given or ()) - set(allowed))
    if unknown:
        raise SelectionError(f"unknown {name} {unknown}; use any of {list(allowed)}")


def filter_mask(units: pd.DataFrame, side: Side) -> pd.Series:
    """Which rows of `units` pass the side's filters (not its sample or root ids)."""
    side.validate()
    keep = pd.Series(True, index=units.index)
    for column in ("layer", "brain_area", "classification_system", "cell_type"):
        wanted = getattr(side, column)
        if wanted is not None:
            keep &= units[column].isin(wanted).fillna(False)
    for shorthand in side.proofread or ():
        column, values = PROOFREAD[shorthand]
        keep &= units[column].isin(values).fillna(False)
    if side.tuning is not None:
        keep &= (units["tuning_type"] == side.tuning).fillna(False)
    return keep


def select_roots(units: pd.DataFrame, side: Side, label: str = "selection") -> np.ndarray:
    """Sorted unique root ids of the units the side selects."""
    keep = filter_mask(units, side)
    roots = np.unique(units.loc[keep, "pt_root_id"].to_numpy(dtype=np.int64))
    if side.root_ids is not None:
        asked = np.unique(np.asarray(side.root_ids, dtype=np.int64))
        missing = np.setdiff1d(asked, roots)
        if missing.size:
            raise SelectionError(
                f"{label}: {missing.size} root id(s) are not units matching the filters of this "
                f"version, e.g. {missing[:3].tolist()} (root ids change between versions)"
            )
        roots = asked
    if side.sample is not None:
        if side.sample < 1 or side.sample > roots.size:
            raise SelectionError(
                f"{label}: a sample of {side.sample} asked, {roots.size} units match the filters"
            )
        rng = np.random.default_rng(side.sample_seed)
        roots = np.sort(rng.choice(roots, size=side.sample, replace=False))
    if roots.size == 0:
        raise SelectionError(f"{label} {side.describe()} matches no unit of this version")
    return roots
