"""The annotation tables of one version, as Arrow tables in the form the real server sends them.

Each table is built from the version-independent `World` arrays: a version index picks each
cell's root id and which proofreading rows exist. Columns carry the dtypes the real server's
pandas reader produces (nullable Int64/Int32/Float32/boolean, `string`, UTC timestamps), kept
as pandas schema metadata so caveclient reconstructs them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from microns_assets.emulator import catalog as cat
from microns_assets.emulator.synthetic import (
    AREAS,
    CELL_TYPES,
    CLASSES,
    NEVER,
    TYPE_CLASS,
    TYPE_NAMES,
    World,
)
from microns_assets.vocabulary import STRATEGY_AXON, STRATEGY_DENDRITE

_STRINGS = {"classification_system", "cell_type", "tag", "strategy_axon", "strategy_dendrite"}
TARGET_STRUCTURES = ("spine", "shaft", "soma")


def _dtype(name: str) -> str:
    if name in ("created",):
        return "datetime64[ns, UTC]"
    if name in ("valid", "status_axon", "status_dendrite"):
        return "boolean"
    if name in _STRINGS:
        return "string"
    if name.endswith(("_position_x", "_position_y", "_position_z")) or name in (
        "session", "scan_idx", "unit_id", "field", "size",
    ):  # fmt: skip
        return "Int32"
    if name in ("volume", "value", "residual", "score") or name in _FLOAT_PROPS:
        return "Float32"
    return "Int64"


_FLOAT_PROPS = {
    "pref_ori", "pref_dir", "gOSI", "gDSI", "cc_abs", "cc_max", "cc_norm",
    "OSI", "DSI", "readout_loc_x", "readout_loc_y",
}  # fmt: skip


def _schema(columns: list[str]) -> pa.Schema:
    empty = pd.DataFrame({c: pd.Series([], dtype=_dtype(c)) for c in columns})
    return pa.Schema.from_pandas(empty, preserve_index=False)


def _table(columns: dict[str, np.ndarray | pa.Array]) -> pa.Table:
    schema = _schema(list(columns))
    arrays = []
    for field, values in zip(schema, columns.values(), strict=True):
        arr = values if isinstance(values, pa.Array) else pa.array(values)
        arrays.append(arr if arr.type == field.type else arr.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _common(n: int, created: datetime, with_superceded: bool = True) -> dict:
    cols = {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "created": pa.array(np.full(n, np.datetime64(created.replace(tzinfo=None), "ns"))),
    }
    if with_superceded:
        cols["superceded_id"] = pa.nulls(n, pa.int64())
    cols["valid"] = np.ones(n, dtype=bool)
    return cols


def _strings(labels: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(labels)).cast(
        pa.string()
    )


def _point(prefix: str, x, y, z, sv, root) -> dict:
    return {
        f"{prefix}_position_x": x,
        f"{prefix}_position_y": y,
        f"{prefix}_position_z": z,
        f"{prefix}_supervoxel_id": sv,
        f"{prefix}_root_id": root,
    }


def deleted_nucleus_ids(world: World, n: int) -> np.ndarray:
    """`n` nuclei deleted from the nucleus table, spread over the cells with a cell type.

    As when CAVE deletes a false-positive nucleus: annotations of other tables that reference
    it stay (orphans), and the server's join of those tables with the nucleus table drops them.
    """
    typed = np.flatnonzero(world.cells["typed"])
    if n <= 0 or typed.size == 0:
        return np.empty(0, dtype=np.int64)
    picks = np.unique(np.linspace(0, typed.size - 1, min(n, typed.size)).astype(np.int64))
    return world.cells["nucleus_id"][typed[picks]].astype(np.int64)


class VersionTables:
    """Builds (and memoizes) the tables of one materialization version."""

    def __init__(self, world: World, version: int, deleted_nuclei: int = 0) -> None:
        self.world = world
        self.version = version
        self.deleted_nucleus_ids = deleted_nucleus_ids(world, deleted_nuclei)
        self.k = cat.VERSION_INDEX[version]
        self.created = cat.VERSIONS[0].time_stamp
        self._roots = world.roots_at(self.k)
        self._cache: dict[str, pa.Table] = {}
        self._builders: dict[str, Callable[[], pa.Table]] = {
            cat.NUCLEUS: self._nucleus,
            cat.CELL_TYPES: self._cell_types,
            cat.CORRECTIONS: self._corrections,
            cat.PROOFREADING: self._proofreading,
            cat.AREAS: self._areas,
            cat.COREG: self._coreg,
            cat.FUNC_V3: self._func_v3,
            cat.DIGITAL_TWIN: self._digital_twin,
            cat.SYNAPSES: self._synapses,
            cat.COLUMN_TYPES: self._column_types,
            cat.ALT_POINTS: self._alt_points,
            cat.TARGET_STRUCTURE: self._target_structure,
            cat.TARGET_PREDICTIONS: self._target_predictions,
        }

    def get(self, table: str) -> pa.Table:
        """The table as stored (with `superceded_id`, before any join)."""
        if table not in self._cache:
            self._cache[table] = self._builders[table]()
        return self._cache[table]

    # --- plain tables -----------------------------------------------------------------
    def _nucleus(self) -> pa.Table:
        c = self.world.cells
        n = c["nucleus_id"].size
        nulls = pa.nulls(n, pa.int32())
        cols = _common(n, self.created)
        cols["id"] = c["nucleus_id"]
        cols["volume"] = c["volume"]
        cols.update(_point("pt", c["x"], c["y"], c["z"], c["supervoxel"], self._roots))
        for p in ("bb_start", "bb_end"):
            cols.update({f"{p}_position_{a}": nulls for a in "xyz"})
        order = [
            "id", "created", "superceded_id", "valid", "volume",
            "pt_position_x", "pt_position_y", "pt_position_z",
            "bb_start_position_x", "bb_start_position_y", "bb_start_position_z",
            "bb_end_position_x", "bb_end_position_y", "bb_end_position_z",
            "pt_supervoxel_id", "pt_root_id",
        ]  # fmt: skip
        table = _table({k: cols[k] for k in order})
        if self.deleted_nucleus_ids.size:
            gone = pa.array(self.deleted_nucleus_ids)
            table = table.filter(pc.invert(pc.is_in(table["id"], value_set=gone)))
        return table

    def _proofreading(self) -> pa.Table:
        c = self.world.cells
        rows = np.flatnonzero(c["proof_k"] <= self.k)
        sa, sd = c["strategy_axon"][rows], c["strategy_dendrite"][rows]
        cols = _common(rows.size, self.created)
        cols.update(
            _point(
                "pt",
                c["x"][rows],
                c["y"][rows],
                c["z"][rows],
                c["supervoxel"][rows],
                self._roots[rows],
            )
        )
        cols["valid_id"] = self._roots[rows]
        cols["status_dendrite"] = sd > 0
        cols["status_axon"] = sa > 0
        cols["strategy_dendrite"] = _strings(STRATEGY_DENDRITE, sd)
        cols["strategy_axon"] = _strings(STRATEGY_AXON, sa)
        return _table(cols)

    def _synapses(self) -> pa.Table:
        s = self.world.synapses
        cols = _common(s["id"].size, self.created)
        cols["id"] = s["id"]
        for p in ("pre", "post", "ctr"):
            cols.update({f"{p}_pt_position_{a}": s[f"{p}_{a}"] for a in "xyz"})
        cols["size"] = s["size"]
        cols["pre_pt_supervoxel_id"] = s["pre_sv"]
        cols["pre_pt_root_id"] = self.world.pre_roots_at(self.k, self._roots)
        cols["post_pt_supervoxel_id"] = s["post_sv"]
        cols["post_pt_root_id"] = self._roots[s["post_idx"]]
        return _table(cols)

    def _alt_points(self) -> pa.Table:
        """A second point per nucleus, 2 µm off its centre (plain, bound to the segment)."""
        c = self.world.cells
        cols = _common(c["nucleus_id"].size, self.created)
        cols.update(_point("pt", c["x"] + 500, c["y"], c["z"], c["supervoxel"], self._roots))
        return _table(cols)

    def _target_structure(self) -> pa.Table:
        """What each synapse lands on (spine, shaft, soma): a row per synapse (plain)."""
        s = self.world.synapses
        cols = _common(s["id"].size, self.created)
        cols["tag"] = _strings(TARGET_STRUCTURES, (s["id"] * 7 + s["size"]) % 3)
        cols.update(
            _point(
                "pt",
                s["ctr_x"],
                s["ctr_y"],
                s["ctr_z"],
                s["post_sv"],
                self._roots[s["post_idx"]],
            )
        )
        return _table(cols)

    def _target_predictions(self) -> pa.Table:
        """A predicted target structure for every fifth synapse: references the synapse table."""
        s = self.world.synapses
        rows = np.arange(0, s["id"].size, 5)
        cols = _common(rows.size, self.created)
        cols["target_id"] = s["id"][rows]
        codes = (s["id"][rows] * 7 + s["size"][rows]) % 3
        cols["tag"] = _strings(TARGET_STRUCTURES, codes)
        cols["value"] = 0.5 + 0.5 * ((s["id"][rows] % 97) / 97.0)  # the classifier's confidence
        return _table(cols)

    # --- tables that reference the nucleus table ------------------------------------
    def _reference(self, rows: np.ndarray, own: dict) -> pa.Table:
        cols = _common(rows.size, self.created)
        cols["target_id"] = self.world.cells["nucleus_id"][rows]
        cols.update(own)
        return _table(cols)

    def _typed(self, codes: np.ndarray, rows: np.ndarray) -> dict:
        return {
            "classification_system": _strings(CLASSES, TYPE_CLASS[codes]),
            "cell_type": _strings(TYPE_NAMES, codes),
        }

    def _cell_types(self) -> pa.Table:
        c = self.world.cells
        rows = np.flatnonzero(c["typed"])
        return self._reference(rows, self._typed(c["type"][rows], rows))

    def _column_types(self) -> pa.Table:
        """Cell types of the typed cells within a slanted column of the volume (a sixth)."""
        c = self.world.cells
        x = c["x"].astype(np.float64) + 0.2 * c["y"].astype(np.float64)
        low, high = np.quantile(x, [0.4, 0.567])
        rows = np.flatnonzero(c["typed"] & (x >= low) & (x < high))
        return self._reference(rows, self._typed(c["type"][rows], rows))

    def _corrections(self) -> pa.Table:
        c = self.world.cells
        rows = np.flatnonzero(c["correction"] >= 0)
        return self._reference(rows, self._typed(c["correction"][rows], rows))

    def _areas(self) -> pa.Table:
        c = self.world.cells
        rows = np.flatnonzero(c["area_typed"])
        return self._reference(
            rows, {"tag": _strings(AREAS, c["area"][rows]), "value": c["area_value"][rows]}
        )

    def _coreg_rows(self, flag: str | None) -> tuple[np.ndarray, np.ndarray]:
        g = self.world.coreg
        keep = np.ones(g["cell"].size, bool) if flag is None else g[flag]
        return np.flatnonzero(keep), g["cell"][keep]

    def _coreg(self) -> pa.Table:
        g = self.world.coreg
        sel, cells = self._coreg_rows(None)
        own = {
            k: g[k][sel] for k in ("session", "scan_idx", "unit_id", "field", "residual", "score")
        }
        return self._reference(cells, own)

    def _func_v3(self) -> pa.Table:
        g = self.world.coreg
        sel, cells = self._coreg_rows("in_v3")
        keys = ("session", "scan_idx", "unit_id", "pref_ori", "pref_dir", "gOSI", "gDSI", "cc_abs")
        return self._reference(cells, {k: g[k][sel] for k in keys})

    def _digital_twin(self) -> pa.Table:
        g = self.world.coreg
        sel, cells = self._coreg_rows("in_v4")
        own = {k: g[k][sel] for k in ("session", "scan_idx", "unit_id")}
        own["pref_ori"] = np.degrees(g["pref_ori"][sel])
        own["pref_dir"] = np.degrees(g["pref_dir"][sel])
        for k in ("gOSI", "gDSI", "cc_abs", "cc_max", "cc_norm", "OSI", "DSI"):
            own[k] = g[k][sel]
        own["readout_loc_x"] = g["readout_loc_x"][sel]
        own["readout_loc_y"] = g["readout_loc_y"][sel]
        return self._reference(cells, own)


__all__ = ["CELL_TYPES", "NEVER", "VersionTables"]
