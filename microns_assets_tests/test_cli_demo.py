"""`microns-assets demo` end to end, as a new user runs it: files, instance, printed guidance."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

import microns_assets
from microns_assets.config import ROLES
from microns_assets.storage import read_frame
from microns_assets_tests.materialize.cli_helpers import aggregated_truth

README = Path(__file__).resolve().parents[1] / "README.md"
NOTEBOOKS_DOC = README.parent / "docs" / "notebooks.md"
MARKER = "MICRONS_TEST_DEMO_FOLDER"


def processes_with(variable: str, value: str) -> list[str]:
    """Command lines of the live processes whose environment has `variable=value`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            if f"{variable}={value}".encode() in environ:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory, emulator_cache) -> tuple[Path, subprocess.CompletedProcess]:
    """`microns-assets demo` run in a fresh folder, as in the README's first command."""
    folder = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MICRONS_", "DAGSTER_"))}
    env["MICRONS_EMULATOR_CACHE"] = str(emulator_cache)
    env[MARKER] = str(folder)  # inherited by every process the demo starts
    out = subprocess.run(
        [sys.executable, "-m", "microns_assets.cli", "demo"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return folder, out


def test_the_demos_emulator_process_served_its_runs_and_is_gone(demo):
    folder, _ = demo
    assert processes_with(MARKER, str(folder)) == []
    nucleus = folder / "data" / "minnie65_synthetic" / "v1300" / "cave_raw" / "nucleus.parquet"
    provenance = read_frame(nucleus).attrs["provenance"]
    # the runs were given the process's URL, not `embedded` (an emulator inside each run)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", provenance["server_setting"])
    assert provenance["server"] == provenance["server_setting"]


def test_demo_materializes_version_1300_into_a_persistent_instance(demo):
    tmp_path, out = demo
    data = UPath(tmp_path) / "data" / "minnie65_synthetic" / "v1300" / "cave_raw"
    for role in ROLES:
        assert str(data / f"{role}.parquet") in out.stdout
    assert len(read_frame(data / "nucleus.parquet")) == 3_000
    units = data.parent / "units.parquet"
    assert str(units) in out.stdout and len(read_frame(units)) > 1_000
    synapses = data.parent / "synapses.parquet"
    assert str(synapses) in out.stdout and len(read_frame(synapses)) > 10_000
    hint = next(line for line in out.stdout.splitlines() if "microns_assets.load(" in line)
    call = hint[hint.index("microns_assets.load(") :]
    loaded = eval(call, {"microns_assets": microns_assets})  # the printed call, as a user pastes it
    assert len(loaded) == len(read_frame(synapses))
    assert "microns-assets dev --server embedded --datastack minnie65_synthetic" in out.stdout
    assert str(tmp_path / ".dagster_home") in out.stdout

    home = tmp_path / ".dagster_home"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 3 and all(r.is_success for r in runs)
        partitions = [
            r.tags.get("dagster/partition") or r.tags["dagster/asset_partition_range_start"]
            for r in reversed(runs)
        ]
        assert partitions == ["1300", "1300|00", "1300"]
        key = dg.AssetKey(["cave_raw", "nucleus"])
        assert instance.get_latest_materialization_event(key) is not None


def notebook_blocks(page: Path) -> list[str]:
    """The Python code blocks of a page's Notebooks section (the whole page for docs/)."""
    text = page.read_text()
    if page == README:
        text = text[text.index("\n## Notebooks") :]
        text = text[: text.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_notebook_code_runs_on_the_demo_output(demo, session_emulator, monkeypatch):
    """The README's Notebooks blocks, then docs/notebooks.md's, as a user pastes them."""
    folder, _ = demo
    monkeypatch.chdir(folder)  # the calls use the default data dir, ./data
    monkeypatch.delenv("MICRONS_DATA_DIR", raising=False)
    readme, docs = notebook_blocks(README), notebook_blocks(NOTEBOOKS_DOC)
    assert len(readme) >= 1 and len(docs) >= 2
    names: dict = {}
    for block in readme:
        exec(compile(block, str(README), "exec"), names)
    expected = aggregated_truth(session_emulator, names["units"])
    merged = names["synapses"].sort_values(["pre_pt_root_id", "post_pt_root_id"])
    assert len(merged) == len(expected) > 0  # every connected pair among the units, once
    assert merged["n_synapses"].tolist() == expected["count"].tolist()
    assert names["units"].attrs["provenance"]["version"] == 1300
    for block in docs:
        exec(compile(block, str(NOTEBOOKS_DOC), "exec"), names)
    by_type = names["by_type"]
    units = names["units"]
    truth = session_emulator.ground_truth(1300, "synapses_pni_2")
    typed = units.drop_duplicates("pt_root_id").set_index("pt_root_id")["cell_type"]
    pre = truth["pre_pt_root_id"].map(typed)
    post = truth["post_pt_root_id"].map(typed)
    for a, b in [("23P", "23P"), ("23P", "BC"), ("BC", "23P")]:
        expected = int(((pre == a) & (post == b)).sum())
        assert expected > 0 and by_type.loc[a, b] == expected, (a, b)
