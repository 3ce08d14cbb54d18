"""The catalogue: every role and every asset of the pipeline, by name, in one place.

For each role (what a CAVE table means; the table behind it changes across versions,
`config/versions.yaml`): its asset key, the columns downstream processing needs with the dtypes
CAVE sends, and a description. For each asset: its key, group, description, the stage (run) of
a version that builds it, and where its file lives under `<data dir>/<datastack>/`. The
assets, `load`, `versions`, the stages and the checks read their names from here; no other
module spells a role or an asset name. No Dagster imports (keys are tuples of path parts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Key = tuple[str, ...]

RAW_GROUP = RAW_PREFIX = "cave_raw"
EXTRA_GROUP = EXTRA_PREFIX = "cave_extra"
UNITS_GROUP = "units"
SYNAPSES_GROUP = "synapses"
FUNCTIONAL_GROUP = "functional"


@dataclass(frozen=True)
class Role:
    """What one CAVE table means to the pipeline."""

    name: str
    description: str
    #: Columns downstream processing needs, named as `query_table(split_positions=True)`
    #: returns them (reference tables joined: `target_id` plus the nucleus columns), with the
    #: dtypes CAVE sends.
    columns: Mapping[str, str]
    #: The columns `build_units` reads, and the kind of dtype each must have (`int`, `number`,
    #: `text`), checked on any table given to it (`processing/inputs.py`).
    needs: Mapping[str, str]

    @property
    def key(self) -> Key:
        """The role's raw asset key."""
        return (RAW_PREFIX, self.name)


_REFERENCE = {"id": "Int64", "target_id": "Int64"}
_FUNCTIONAL_UNIT = {"session": "Int32", "scan_idx": "Int32", "unit_id": "Int32"}
_FUNCTIONAL_KINDS = dict.fromkeys(_FUNCTIONAL_UNIT, "number")

#: Roles in the order the units table consumes them.
ROLE_LIST: tuple[Role, ...] = (
    Role(
        "nucleus",
        "Every detected nucleus: id, volume, position (voxels), root id.",
        {
            "id": "Int64",
            "volume": "Float32",
            "pt_position_x": "Int32",
            "pt_position_y": "Int32",
            "pt_position_z": "Int32",
            "pt_supervoxel_id": "Int64",
            "pt_root_id": "Int64",
        },
        {
            "id": "int",
            "pt_root_id": "int",
            "pt_position_x": "number",
            "pt_position_y": "number",
            "pt_position_z": "number",
        },
    ),
    Role(
        "cell_types",
        "Cell type and classification system per nucleus (reference table, joined).",
        {
            **_REFERENCE,
            "classification_system": "string",
            "cell_type": "string",
            "pt_root_id": "Int64",
        },
        {"target_id": "int", "classification_system": "text", "cell_type": "text"},
    ),
    Role(
        "cell_type_corrections",
        "Manual corrections of cell types (from version 1718).",
        {**_REFERENCE, "classification_system": "string", "cell_type": "string"},
        {"target_id": "int", "classification_system": "text", "cell_type": "text"},
    ),
    Role(
        "proofreading",
        "Proofreading status and strategy (axon, dendrite) per root id.",
        {
            "id": "Int64",
            "valid_id": "Int64",
            "pt_root_id": "Int64",
            "status_axon": "boolean",
            "status_dendrite": "boolean",
            "strategy_axon": "string",
            "strategy_dendrite": "string",
        },
        {"pt_root_id": "int", "strategy_axon": "text", "strategy_dendrite": "text"},
    ),
    Role(
        "brain_areas",
        "Visual area (V1, AL, RL, LM) per nucleus.",
        {**_REFERENCE, "tag": "string", "value": "Float32"},
        {"target_id": "int", "tag": "text"},
    ),
    Role(
        "coregistration",
        "Functional-to-EM coregistration: session, scan, unit per nucleus.",
        {
            **_REFERENCE,
            **_FUNCTIONAL_UNIT,
            "field": "Int32",
            "residual": "Float32",
            "score": "Float32",
            "pt_root_id": "Int64",
        },
        {"target_id": "int", "pt_root_id": "int", **_FUNCTIONAL_KINDS},
    ),
    Role(
        "functional_properties",
        "Functional tuning per coregistered unit (v3 BCM or digital twin).",
        {
            **_REFERENCE,
            **_FUNCTIONAL_UNIT,
            "pref_ori": "Float32",
            "pref_dir": "Float32",
            "gOSI": "Float32",
            "gDSI": "Float32",
            "cc_abs": "Float32",
            "pt_root_id": "Int64",
        },
        {
            "target_id": "int",
            "pt_root_id": "int",
            **_FUNCTIONAL_KINDS,
            **dict.fromkeys(("pref_ori", "pref_dir", "gOSI", "gDSI", "cc_abs"), "number"),
        },
    ),
)
ROLES: tuple[str, ...] = tuple(r.name for r in ROLE_LIST)
ROLE: Mapping[str, Role] = {r.name: r for r in ROLE_LIST}


@dataclass(frozen=True)
class Asset:
    """One asset the pipeline materializes."""

    key: Key
    group: str
    description: str
    #: The run of a version that builds it (1: raw tables, units, layer segments; 2: synapse
    #: chunks; 3: roll-up), or 0 for an asset that is not per version.
    stage: int
    #: Its file under `<data dir>/<datastack>/` (`{version}`, `{chunk}` filled in).
    layout: str
    suffix: str = ".parquet"
    #: Columns and dtypes of its table, where fixed (the rest depend on the run config).
    columns: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The key as one string, `/`-joined (what `load` and the CLI take)."""
        return "/".join(self.key)


def raw(role: str) -> Asset:
    """The raw asset of a role."""
    r = ROLE[role]
    return Asset(
        r.key, RAW_GROUP, r.description, 1, f"v{{version}}/{RAW_PREFIX}/{role}.parquet",
        columns=r.columns,
    )  # fmt: skip


def extra(table: str) -> Asset:
    """The asset of an extra CAVE table (`MICRONS_EXTRA_TABLES`)."""
    return Asset(
        (EXTRA_PREFIX, table), EXTRA_GROUP,
        f"CAVE table `{table}` of the version, as the server sends it.", 1,
        f"v{{version}}/{EXTRA_PREFIX}/{table}.parquet",
    )  # fmt: skip


UNITS = Asset(
    ("units",),
    UNITS_GROUP,
    "One row per cell (per scan in functional modes `all`/`match`): nucleus and root id, "
    "position in µm, cell type, area, proofreading, layer.",
    1,
    "v{version}/units.parquet",
)
LAYER_SEGMENTS = Asset(
    ("layer_segments",),
    UNITS_GROUP,
    "Cortical layer regions along depth: layer, region_index, y_start, y_end, height (µm).",
    1,
    "v{version}/layer_segments.parquet",
    columns={
        "layer": "string",
        "region_index": "int64",
        "y_start": "float64",
        "y_end": "float64",
        "height": "float64",
    },
)
SYNAPSE_CHUNKS = Asset(
    ("synapse_chunks",),
    SYNAPSES_GROUP,
    "Synapses onto the selected post cells of one chunk, from the selected pre cells (one "
    "partition per version x chunk; a run covers a range of them).",
    2,
    "v{version}/synapse_chunks/{chunk}.parquet",
)
SYNAPSES = Asset(
    ("synapses",),
    SYNAPSES_GROUP,
    "All synapse chunks of a version in one file, sorted by (pre, post).",
    3,
    "v{version}/synapses.parquet",
)
CONNECTOME = Asset(
    ("connectome",),
    SYNAPSES_GROUP,
    "Synapses per pair among the version's units as a sparse matrix (rows pre, columns post, "
    "in the order of `units`, one per segment) with its index of root ids. "
    '`matrix, index = load("connectome", v)`.',
    3,
    "v{version}/connectome.npz",
    suffix=".npz",
)
FUNCTIONAL_RECORDINGS = Asset(
    ("functional_recordings",),
    FUNCTIONAL_GROUP,
    "The MICrONS functional recordings (trials, responses, stimuli; one HDF5 file), downloaded "
    "whole; read it with microns_assets.functional.FunctionalReader.",
    0,
    "functional/microns.h5",
    suffix=".h5",
)

#: The assets of a version, in the order of their stages (extra tables join the first).
PER_VERSION: tuple[Asset, ...] = (
    *(raw(r) for r in ROLES),
    UNITS,
    LAYER_SEGMENTS,
    SYNAPSE_CHUNKS,
    SYNAPSES,
    CONNECTOME,
)
#: Per stage (run) of a version, its assets' keys.
STAGES: tuple[tuple[Key, ...], ...] = tuple(
    tuple(a.key for a in PER_VERSION if a.stage == s) for s in (1, 2, 3)
)
STAGE_NAMES = (
    "raw tables, units and layer segments",
    "synapse chunks",
    "synapses roll-up and connectome",
)
#: What `load` reads by name: the derived assets, and raw roles by role and by key.
LOADABLE: Mapping[str, Asset] = {
    **{a.name: a for a in (UNITS, LAYER_SEGMENTS, SYNAPSES, CONNECTOME)},
    **{r: raw(r) for r in ROLES},
    **{raw(r).name: raw(r) for r in ROLES},
}
#: Keys stored as a matrix file, not Parquet.
MATRIX_KEYS = frozenset(a.key for a in PER_VERSION if a.suffix == ".npz")
