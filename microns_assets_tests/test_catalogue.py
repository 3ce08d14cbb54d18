"""The catalogue is what the definitions, storage and `load` use, and nothing else lists names."""

from __future__ import annotations

import ast
from pathlib import Path

import dagster as dg
import pytest

from microns_assets import catalogue
from microns_assets.resources import ParquetIOManager

PACKAGE = Path(catalogue.__file__).parent
#: Modules that may spell names: the catalogue itself, and the emulator, which plays CAVE.
EXEMPT = {PACKAGE / "catalogue.py", *(PACKAGE / "emulator").rglob("*.py")}


@pytest.fixture(scope="module")
def graph():
    from microns_assets.definitions import defs

    return defs.resolve_asset_graph()


def _entries() -> list[catalogue.Asset]:
    return [*catalogue.PER_VERSION, catalogue.FUNCTIONAL_RECORDINGS]


def test_every_asset_of_the_definitions_is_in_the_catalogue_as_it_says(graph):
    keys = {tuple(k.path) for k in graph.get_all_asset_keys()}
    listed = {a.key for a in _entries()}
    extras = {k for k in keys if k[0] == catalogue.EXTRA_PREFIX}
    assert keys - extras == listed
    for asset in _entries():
        node = graph.get(dg.AssetKey(asset.key))
        assert node.group_name == asset.group, asset.name
        assert node.description == asset.description, asset.name
        per_version = node.partitions_def is not None
        assert per_version == (asset.stage > 0), asset.name


def test_roles_are_the_raw_assets_and_the_inputs_of_units(graph):
    units = graph.get(dg.AssetKey(catalogue.UNITS.key))
    raw = {dg.AssetKey(catalogue.ROLE[r].key) for r in catalogue.ROLES}
    assert raw <= units.parent_keys
    assert {k for k in graph.get_all_asset_keys() if k.path[0] == catalogue.RAW_PREFIX} == raw
    for role in catalogue.ROLE_LIST:
        assert set(role.needs) <= set(role.columns), role.name  # needed columns are required


def test_files_live_where_the_catalogue_says(tmp_path):
    io = ParquetIOManager(data_dir=str(tmp_path), datastack="ds")
    for asset in catalogue.PER_VERSION:
        partition = (
            dg.MultiPartitionKey({"mat_version": "1300", "synapse_chunk": "07"})
            if asset == catalogue.SYNAPSE_CHUNKS
            else "1300"
        )
        got = io.path_for(dg.AssetKey(asset.key), partition, asset.suffix)
        want = tmp_path / "ds" / asset.layout.format(version=1300, chunk="07")
        assert str(got) == str(want), asset.name


def _names() -> set[str]:
    return {*catalogue.ROLES, *(a.name for a in _entries()), *(a.key[-1] for a in _entries())}


#: Names that are also plain words of metadata labels ("units": 120): a listing needs a name
#: besides these to count.
WORDS = {"units", "synapses"}


def _listings(path: Path) -> list[tuple[int, list[str]]]:
    """Container literals (and dict keys) in `path` that hold two or more catalogue names.

    `__all__` (Python names) is not a listing.
    """
    names, found, tree = _names(), [], ast.parse(path.read_text())
    exports = {
        id(n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
    }
    for node in ast.walk(tree):
        items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if not isinstance(node, (ast.Dict, ast.List, ast.Tuple, ast.Set)) or id(node) in exports:
            continue
        spelled = [i.value for i in items if isinstance(i, ast.Constant) and i.value in names]
        if len(set(spelled)) >= 2 and set(spelled) - WORDS:
            found.append((node.lineno, spelled))
    return found


def test_no_module_outside_the_catalogue_lists_role_or_asset_names():
    offenders = {
        str(path.relative_to(PACKAGE)): found
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in EXEMPT and (found := _listings(path))
    }
    assert offenders == {}


def test_the_listing_finder_finds_a_listing(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        f"X = ({catalogue.ROLES[0]!r}, {catalogue.ROLES[1]!r})\n"
        "Y = {'units': 1, 'synapse_chunks': 2}\n"
        "Z = {'units': 1, 'synapses': 2}\n"  # metadata labels
        "__all__ = ['synapse_chunks', 'synapses']\n"  # Python names
    )
    assert _listings(probe) == [
        (1, list(catalogue.ROLES[:2])),
        (2, ["units", "synapse_chunks"]),
    ]
