"""What the synthetic datastack publishes: its versions, which tables each version has, metadata.

This mirrors the real `minnie65_public` service and is independent of
`microns_assets/config/versions.yaml` on purpose: the emulator plays CAVE, the pipeline's config
is checked against it, not derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DATASTACK = "minnie65_synthetic"
ALIGNED_VOLUME = "minnie65_synthetic_volume"
VOXEL_RESOLUTION = (4.0, 4.0, 40.0)
SERVER_VERSION = "5.26.0"
INFO_VERSION = "4.3.1"

NUCLEUS = "nucleus_detection_v0"
CELL_TYPES = "aibs_metamodel_celltypes_v661"
CORRECTIONS = "aibs_metamodel_celltypes_v661_corrections"
PROOFREADING = "proofreading_status_and_strategy"
AREAS = "nucleus_functional_area_assignment"
COREG = "coregistration_manual_v4"
FUNC_V3 = "functional_properties_v3_bcm"
DIGITAL_TWIN = "digital_twin_properties_bcm_coreg_v4"
SYNAPSES = "synapses_pni_2"
#: Tables no role uses, for `cave_extra/<table>`: a reference table (to the nucleus table), a
#: plain one, one of a row per synapse (over twice the default row cap at `small` scale), and
#: a reference table to the synapse table (a prediction for every fifth synapse).
COLUMN_TYPES = "allen_v1_column_types_slanted_ref"
ALT_POINTS = "nucleus_alternative_points"
TARGET_STRUCTURE = "synapse_target_structure"
TARGET_PREDICTIONS = "synapse_target_predictions_ssa"
EXTRA_TABLES = (COLUMN_TYPES, ALT_POINTS, TARGET_STRUCTURE, TARGET_PREDICTIONS)


@dataclass(frozen=True)
class Version:
    """One materialization version of the synthetic datastack."""

    number: int
    time_stamp: datetime
    expired: bool

    def metadata(self, datastack: str) -> dict:
        """The record `GET .../version/{v}` returns."""
        expires = None if not self.expired else self.time_stamp + timedelta(days=120)
        return {
            "id": self.number,
            "datastack": datastack,
            "version": self.number,
            "time_stamp": self.time_stamp.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "valid": not self.expired,
            "expires_on": expires.strftime("%Y-%m-%dT%H:%M:%S.%f") if expires else None,
            "status": "EXPIRED" if self.expired else "AVAILABLE",
            "is_merged": True,
        }


def _ts(day: str) -> datetime:
    return datetime.strptime(day, "%Y-%m-%d").replace(hour=10, minute=10, tzinfo=UTC)


#: Versions in publication order. Later versions carry more proofreading and new tables.
VERSIONS: tuple[Version, ...] = (
    Version(117, _ts("2021-06-11"), False),
    Version(943, _ts("2024-01-22"), False),
    Version(1078, _ts("2024-06-05"), True),
    Version(1181, _ts("2024-09-10"), True),
    Version(1300, _ts("2025-01-13"), False),
    Version(1412, _ts("2025-04-14"), True),
    Version(1507, _ts("2025-06-30"), True),  # expired 2026-07-31, as on the real service
    Version(1621, _ts("2025-09-22"), False),
    Version(1718, _ts("2025-12-15"), False),
    Version(1822, _ts("2026-03-30"), False),
)
VERSION_INDEX = {v.number: i for i, v in enumerate(VERSIONS)}


def tables_in(version: int) -> list[str]:
    """The annotation tables version `version` publishes (what `get_tables` lists)."""
    names = [NUCLEUS, SYNAPSES, ALT_POINTS]
    if version >= 943:
        names += [CELL_TYPES, PROOFREADING, AREAS, COREG, COLUMN_TYPES]
    if version >= 1300:
        names += [TARGET_STRUCTURE, TARGET_PREDICTIONS]
    if 943 <= version <= 1412:
        names.append(FUNC_V3)
    if version >= 1507:
        names.append(DIGITAL_TWIN)
    if version >= 1718:
        names.append(CORRECTIONS)
    return names


_SCHEMAS = {
    NUCLEUS: ("nucleus_detection", None, "Nuclei detected in the volume (SYNTHETIC)."),
    CELL_TYPES: ("cell_type_reference", NUCLEUS, "Metamodel cell types (SYNTHETIC)."),
    CORRECTIONS: ("cell_type_reference", NUCLEUS, "Manual cell type corrections (SYNTHETIC)."),
    PROOFREADING: ("proofreading_boolstatus_user", None, "Proofreading strategy (SYNTHETIC)."),
    AREAS: ("nucleus_area_assignment", NUCLEUS, "Brain area per nucleus (SYNTHETIC)."),
    COREG: ("func_unit_em_match", NUCLEUS, "Manual coregistration (SYNTHETIC)."),
    FUNC_V3: ("functional_props_ref", NUCLEUS, "Functional properties v3 (SYNTHETIC)."),
    DIGITAL_TWIN: ("digital_twin_properties", NUCLEUS, "Digital twin properties (SYNTHETIC)."),
    SYNAPSES: ("synapse", None, "Automated synapse detection (SYNTHETIC)."),
    COLUMN_TYPES: ("cell_type_reference", NUCLEUS, "Cell types in a column (SYNTHETIC)."),
    ALT_POINTS: ("bound_tag", None, "Alternative point per nucleus (SYNTHETIC)."),
    TARGET_STRUCTURE: ("bound_tag", None, "Postsynaptic structure per synapse (SYNTHETIC)."),
    TARGET_PREDICTIONS: (
        "reference_tag_float",
        SYNAPSES,
        "Predicted postsynaptic structure of synapses (SYNTHETIC).",
    ),
}


def table_metadata(table: str, version: int, datastack: str) -> dict:
    """The record `GET .../table/{t}/metadata` returns."""
    schema_type, reference, description = _SCHEMAS[table]
    vx, vy, vz = VOXEL_RESOLUTION
    return {
        "aligned_volume": ALIGNED_VOLUME,
        "table_name": table,
        "schema": schema_type,
        "schema_type": schema_type,
        "reference_table": reference,
        "description": description,
        "notice_text": "Synthetic data served by the microns_assets emulator. Not real.",
        "voxel_resolution_x": vx,
        "voxel_resolution_y": vy,
        "voxel_resolution_z": vz,
        "valid": True,
        "user_id": "0",
        "created": VERSIONS[0].time_stamp.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        "write_permission": "PRIVATE",
        "read_permission": "PUBLIC",
        "datastack": datastack,
        "version": version,
    }


def datastack_info(base_url: str, datastack: str) -> dict:
    """The record `GET /info/api/v2/datastack/full/{ds}` returns; everything points home."""
    return {
        "aligned_volume": {
            "id": 1,
            "name": ALIGNED_VOLUME,
            "image_source": "precomputed://synthetic/none",
            "description": "SYNTHETIC MICrONS-like volume served by the microns_assets emulator.",
            "display_name": "minnie65 (synthetic)",
        },
        "datastack": datastack,
        "local_server": base_url,
        "synapse_table": SYNAPSES,
        "soma_table": NUCLEUS,
        "segmentation_source": f"graphene://{base_url}/segmentation/table/{datastack}",
        "analysis_database": None,
        "viewer_site": base_url,
        "viewer_resolution_x": VOXEL_RESOLUTION[0],
        "viewer_resolution_y": VOXEL_RESOLUTION[1],
        "viewer_resolution_z": VOXEL_RESOLUTION[2],
        "description": "SYNTHETIC data. Not the MICrONS dataset.",
        "proofreading_status_table": None,
        "cell_identification_table": None,
    }
