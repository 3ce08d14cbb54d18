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
from microns_assets.processing.selection import PROOFREAD, SelectionError, Side, filter_mask

PRE, POST = "pre_pt_root_id", "post_pt_root_id"
Values = str | Sequence[str] | None


#: The largest integer a float64 holds exactly: root ids (~8.6e17) are far beyond it.
_EXACT_FLOAT = 2**53
#: The columns of `units` each filter of `filter_neurons` reads.
_FILTER_COLUMNS = {
    "layer": ["layer"],
    "brain_area": ["brain_area"],
    "cell_type": ["cell_type", "classification_system"],
    "classification_system": ["classification_system"],
    "tuning": ["tuning_type"],
}


def _values(value: Values) -> tuple[str, ...] | None:
    """A filter's values as a tuple: one value (a string, a number) or any collection."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (value,)
    return tuple(value)


def _one(value: str | Sequence[str] | None, name: str) -> str | None:
    """A filter that takes one value: the value, or the only one of a list."""
    if value is None or isinstance(value, str):
        return value
    values = _values(value)
    if len(values) != 1:
        raise SelectionError(f"{name} takes one value, not {list(values)!r}")
    return values[0]


def _check_columns(units: pd.DataFrame, filters: dict[str, object]) -> None:
    """A `ValueError` naming the column a given filter needs and `units` lacks."""
    needed = {
        c: name
        for name, v in filters.items()
        if v is not None
        for c in (
            [PROOFREAD[p][0] for p in _values(v) if p in PROOFREAD]  # the shorthands' columns
            if name == "proofread"
            else _FILTER_COLUMNS[name]
        )
    }
    missing = [c for c in needed if c not in units.columns]
    if missing:
        raise ValueError(
            f"units has no column(s) {missing}, which the filter(s) "
            f"{sorted({needed[c] for c in missing})} read: load units with them (or without "
            "`columns=`)"
        )


def filter_neurons(
    units: pd.DataFrame,
    layer: Values = None,
    brain_area: Values = None,
    cell_type: Values = None,
    tuning: Values = None,
    proofread: Values = None,
    classification_system: Values = None,
) -> pd.DataFrame:
    """The rows of `units` that pass every given filter (None: no filter), in their order.

    The arguments come in microns-combiner's order (`classification_system`, ours, last), so
    its positional calls work unchanged.

    - `layer`, `brain_area`, `classification_system`: a value or a list (any of them).
    - `cell_type`: cell types (`23P`, `BC`, ...) match the `cell_type` column; classification
      systems (`excitatory_neuron`, `inhibitory_neuron`, `nonneuron`) match
      `classification_system`, as microns-combiner's `cell_type` does; a list may mix both.
    - `tuning`: `matched` (coregistered to functional data) or `not_matched` (one value).
    - `proofread`: `ax_non`, `ax_clean`, `ax_extended`, `dn_non`, `dn_clean`, `dn_extended`;
      a list requires all of them (e.g. `["ax_clean", "dn_clean"]`). `ax_clean` is any axon
      proofreading, `ax_extended` a fully extended axon (`axon_fully_extended`).
      **Differs from microns-combiner 0.4.0**, whose `ax_extended` keeps every axon that is
      *not* fully extended (its condition is inverted); `dn_extended` is the same in both.

    Raises `SelectionError` (a `ValueError`) naming the allowed values when a value is
    unknown, and a `ValueError` naming the column when `units` lacks one a given filter reads
    (say, loaded with `columns=`). A filter that matches nothing gives an empty frame.
    """
    tuning = _one(tuning, "tuning")
    _check_columns(
        units,
        {
            "layer": layer,
            "brain_area": brain_area,
            "cell_type": cell_type,
            "classification_system": classification_system,
            "tuning": tuning,
            "proofread": proofread,
        },
    )
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


def exact_ints(values: pd.Series, name: str) -> pd.Series:
    """`values` (no NA) as int64, refusing floats that cannot be the ids they stand for.

    A float64 holds integers exactly only up to 2**53; 64-bit root ids read through a float
    (a CSV, a column with NaN) are already rounded, and would silently match nothing.
    """
    if pd.api.types.is_float_dtype(values.dtype):
        inexact = (values.abs() > _EXACT_FLOAT) | (values != values.round())
        if inexact.any():
            raise ValueError(
                f"{name} holds floats (e.g. {values[inexact].iloc[0]!r}) that cannot be exact "
                "ids: 64-bit root ids lose their last digits in a float. Read them as integers "
                "(`load` does; from a CSV, pass dtype={'pt_root_id': 'Int64'})"
            )
    try:
        return values.astype(np.int64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be integer ids, not {list(values[:3])!r}") from err


def _ids(ids: Iterable[int] | int | pd.Series | np.ndarray, name: str) -> np.ndarray:
    """The ids as int64, without NA, never through a float (64-bit root ids stay exact)."""
    if isinstance(ids, int | np.integer):
        ids = [ids]
    if isinstance(ids, pd.Series | pd.Index | np.ndarray | pd.api.extensions.ExtensionArray):
        values = pd.Series(ids)
    else:
        values = pd.Series(list(ids), dtype=object)  # None stays None, ints stay exact
    values = values.dropna()
    if values.dtype == object and len(values):
        values = values.infer_objects()
    return exact_ints(values, name).to_numpy(dtype=np.int64)


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
    pre = synapses[PRE].isin(_ids(pre_ids, "pre_ids")) if pre_ids is not None else None
    post = synapses[POST].isin(_ids(post_ids, "post_ids")) if post_ids is not None else None
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

    - `on="nucleus_id"`: a reference table to the nucleus table, whose `target_id` is the
      nucleus id (its joined form also has `id_ref`, the nucleus's own id, which is the same);
      a reference table to the synapse table (its `target_id` a synapse id; it carries
      `pre_pt_root_id`/`post_pt_root_id`) is refused;
    - `on="pt_root_id"`: a table bound to segments (its `pt_root_id`).

    `how` as in `pandas.merge` (`left` keeps every unit, `inner` only those in the table).
    With `left` and `inner` the result keeps the units' index and key dtype, so it lines up
    with `units` (and a filtered `units`). Raises `ValueError` naming the problem when a column
    is missing or would clash with a column of `units`, when the key holds floats that cannot
    be exact ids, or when the table holds a key more than once (a left join would then repeat
    units: deduplicate it first, e.g. `table.drop_duplicates("target_id")`).
    """
    keys = {"nucleus_id": "target_id", "pt_root_id": "pt_root_id"}
    if on not in keys:
        raise ValueError(f"on must be one of {list(keys)}, not {on!r}")
    key = keys[on]
    columns = [columns] if isinstance(columns, str) else list(columns)
    missing = [c for c in [key, *columns] if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column(s) {missing}; it has {list(table.columns)}")
    if on == "nucleus_id" and {PRE, POST} & set(table.columns):
        raise ValueError(
            "the table references synapses, not nuclei: its target_id is a synapse id. Join "
            "it to synapses instead (individual synapses, by `id`), not to units"
        )
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
    right = right.assign(**{on: exact_ints(right[on], f"the table's {key}").astype("Int64")})
    known = units[on].notna()
    left_key = pd.Series(pd.NA, index=units.index, dtype="Int64")
    left_key[known] = exact_ints(units.loc[known, on], f"units' {on}")
    merged = units.assign(**{on: left_key}).merge(right, on=on, how=how, validate="many_to_one")
    if how == "left":  # every unit, in order: the units' own index
        merged.index = units.index
    elif how == "inner":  # the units with a match, in order (pandas keeps the left order)
        merged.index = units.index[left_key.isin(right[on]).to_numpy(bool, na_value=False)]
    else:
        return merged
    return merged.astype({on: units[on].dtype})
