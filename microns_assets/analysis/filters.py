"""Cells by their properties, synapses by their cells: vectorized, on `load`'s frames.

`filter_neurons` applies the same filters as the download-time selection
(`processing.selection`): one value or a list per property, properties combined with AND,
values of one property with OR, unknown values an error naming the allowed ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from microns_assets import vocabulary as vocab
from microns_assets.processing.selection import SelectionError, Side, filter_mask

PRE, POST = "pre_pt_root_id", "post_pt_root_id"
Values = str | Sequence[str] | None


def _values(value: Values) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def filter_neurons(
    units: pd.DataFrame,
    layer: Values = None,
    brain_area: Values = None,
    cell_type: Values = None,
    classification_system: Values = None,
    tuning: str | None = None,
    proofread: Values = None,
) -> pd.DataFrame:
    """The rows of `units` that pass every given filter (None: no filter), in their order.

    - `layer`, `brain_area`, `classification_system`: a value or a list (any of them).
    - `cell_type`: cell types (`23P`, `BC`, ...) match the `cell_type` column; classification
      systems (`excitatory_neuron`, `inhibitory_neuron`, `nonneuron`) match
      `classification_system`, as microns-combiner's `cell_type` does; a list may mix both.
    - `tuning`: `matched` (coregistered to functional data) or `not_matched`.
    - `proofread`: `ax_non`, `ax_clean`, `ax_extended`, `dn_non`, `dn_clean`, `dn_extended`;
      a list requires all of them (e.g. `["ax_clean", "dn_clean"]`). `ax_clean` is any axon
      proofreading, `ax_extended` a fully extended axon (`axon_fully_extended`).
      **Differs from microns-combiner 0.4.0**, whose `ax_extended` keeps every axon that is
      *not* fully extended (its condition is inverted); `dn_extended` is the same in both.

    Raises `SelectionError` (a `ValueError`) naming the allowed values when a value is
    unknown. A filter that matches nothing gives an empty frame.
    """
    types = _values(cell_type) or ()
    unknown = sorted(set(types) - set(vocab.CELL_TYPES) - set(vocab.CLASSIFICATION_SYSTEMS))
    if unknown:
        allowed = [*vocab.CELL_TYPES, *vocab.CLASSIFICATION_SYSTEMS]
        raise SelectionError(f"unknown cell_type {unknown}; use any of {allowed}")
    side = Side(
        layer=_values(layer),
        brain_area=_values(brain_area),
        classification_system=_values(classification_system),
        proofread=_values(proofread),
        tuning=tuning,
    )
    keep = filter_mask(units, side)  # raises SelectionError (a ValueError) on unknown values
    if cell_type is not None:
        by_type = units["cell_type"].isin(types).fillna(False)
        by_system = units["classification_system"].isin(types).fillna(False)
        keep &= by_type | by_system
    return units[keep.to_numpy()]


def _ids(ids: Iterable[int] | pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(pd.Series(ids).dropna().to_numpy(), dtype=np.int64)


def synapses_by_id(
    synapses: pd.DataFrame,
    pre_ids: Iterable[int] | None = None,
    post_ids: Iterable[int] | None = None,
    both: bool = True,
) -> pd.DataFrame:
    """Synapses from `pre_ids` and/or onto `post_ids`.

    With both lists: `both=True` keeps synapses from a pre id onto a post id (intersection),
    `both=False` those from a pre id or onto a post id (union). With one list, only that side
    is filtered; with none, every synapse is returned (microns-combiner raises then).
    """
    if pre_ids is None and post_ids is None:
        return synapses
    pre = synapses[PRE].isin(_ids(pre_ids)) if pre_ids is not None else None
    post = synapses[POST].isin(_ids(post_ids)) if post_ids is not None else None
    if pre is None:
        return synapses[post.to_numpy()]
    if post is None:
        return synapses[pre.to_numpy()]
    return synapses[(pre & post if both else pre | post).to_numpy()]


def _pair(value: Sequence | None, name: str) -> tuple:
    if value is None:
        return (None, None)
    if isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} takes [pre, post] (two filters, each may be None), not {value!r}")
    return tuple(value)


def filter_connections(
    units: pd.DataFrame,
    synapses: pd.DataFrame,
    layer: Sequence | None = None,
    tuning: Sequence | None = None,
    brain_area: Sequence | None = None,
    cell_type: Sequence | None = None,
    proofread: Sequence | None = None,
    classification_system: Sequence | None = None,
) -> pd.DataFrame:
    """Synapses from the units passing the pre filters onto those passing the post filters.

    Each argument is `[pre, post]`, each side as in `filter_neurons` (None: no filter), e.g.
    `filter_connections(units, synapses, layer=["L2/3", "L5"], cell_type=[None, "BC"])`.
    """
    sides = {
        "layer": _pair(layer, "layer"),
        "tuning": _pair(tuning, "tuning"),
        "brain_area": _pair(brain_area, "brain_area"),
        "cell_type": _pair(cell_type, "cell_type"),
        "proofread": _pair(proofread, "proofread"),
        "classification_system": _pair(classification_system, "classification_system"),
    }
    pre = filter_neurons(units, **{k: v[0] for k, v in sides.items()})
    post = filter_neurons(units, **{k: v[1] for k, v in sides.items()})
    return synapses_by_id(synapses, pre["pt_root_id"], post["pt_root_id"], both=True)


def remove_autapses(synapses: pd.DataFrame) -> pd.DataFrame:
    """Synapses whose pre and post cell differ."""
    return synapses[(synapses[PRE] != synapses[POST]).to_numpy()]


def connections_to(post_id: int, synapses: pd.DataFrame, only_id: bool = True):
    """The pre root ids of the synapses onto `post_id` (or those synapses: `only_id=False`)."""
    rows = synapses[(synapses[POST] == post_id).to_numpy()]
    return rows[PRE] if only_id else rows


def connections_from(pre_id: int, synapses: pd.DataFrame, only_id: bool = True):
    """The post root ids of the synapses from `pre_id` (or those synapses: `only_id=False`)."""
    rows = synapses[(synapses[PRE] == pre_id).to_numpy()]
    return rows[POST] if only_id else rows


def merge_table(
    units: pd.DataFrame,
    table: pd.DataFrame,
    columns: Sequence[str],
    on: str = "nucleus_id",
    how: str = "left",
) -> pd.DataFrame:
    """`units` with `columns` of another table (e.g. `load("cave_extra/<table>", v)`) joined on.

    - `on="nucleus_id"`: a reference table, whose `target_id` is the nucleus id (its joined
      form also has `id_ref`, the nucleus's own id, which is the same);
    - `on="pt_root_id"`: a table bound to segments (its `pt_root_id`).

    `how` as in `pandas.merge` (`left` keeps every unit, `inner` only those in the table).
    Raises `ValueError` naming the problem when a column is missing or would clash with a
    column of `units`, or when the table holds a key more than once (a left join would then
    repeat units: deduplicate it first, e.g. `table.drop_duplicates("target_id")`).
    """
    keys = {"nucleus_id": "target_id", "pt_root_id": "pt_root_id"}
    if on not in keys:
        raise ValueError(f"on must be one of {list(keys)}, not {on!r}")
    key = keys[on]
    columns = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in [key, *columns] if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {missing}; it has {list(table.columns)}")
    clash = [c for c in columns if c in units.columns]
    if clash:
        raise ValueError(
            f"column(s) {clash} exist in units already: rename them in the table first "
            "(table.rename(columns={...}))"
        )
    right = table[[key, *columns]]
    right = right[right[key].notna()]
    twice = right[key][right[key].duplicated()].unique()
    if len(twice):
        raise ValueError(
            f"{len(twice)} {key} value(s) appear more than once in the table (e.g. "
            f"{list(twice[:3])}): joining would repeat units; deduplicate it first, e.g. "
            f"table.drop_duplicates({key!r})"
        )
    right = right.rename(columns={key: on}) if key != on else right
    left_key = units[on].astype("Int64")
    merged = units.assign(**{on: left_key}).merge(
        right.astype({on: "Int64"}), on=on, how=how, validate="many_to_one"
    )
    return merged.astype({on: units[on].dtype}) if how == "left" else merged
