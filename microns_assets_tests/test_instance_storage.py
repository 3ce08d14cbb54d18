"""`instance_storage.SqliteStorage`: Dagster's SQLite files, written and read with kept engines."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import yaml

from microns_assets import instance_storage
from microns_assets.commands.environment import dagster_yaml
from microns_assets.instance_storage import KeptEngineEventLogStorage, KeptEngineRunStorage
from microns_assets_tests.materialize.cli_helpers import clean_env

PARTS = dg.StaticPartitionsDefinition(["a", "b", "c"])


@dg.asset(partitions_def=PARTS)
def numbers(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    context.log.info(f"partition {context.partition_key}")
    return dg.MaterializeResult(metadata={"partition": context.partition_key})


def _materialize(home: Path, partition: str) -> str:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([numbers], instance=instance, partition_key=partition)
        assert result.success
        return result.run_id


def _seen(home: Path) -> tuple[set[str], dict[str, str]]:
    """Run ids and each partition's materialization metadata, read through `home`'s config."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {r.run_id for r in instance.get_runs()}
        records = instance.fetch_materializations(numbers.key, limit=10).records
        found = {
            r.partition_key: r.asset_materialization.metadata["partition"].value for r in records
        }
        return runs, found


def test_new_homes_use_it_and_share_files_with_dagsters_own_storage(tmp_path):
    ours, default = tmp_path / "ours", tmp_path / "default"
    ours.mkdir()
    default.mkdir()
    (ours / "dagster.yaml").write_text(dagster_yaml(ours))
    config = yaml.safe_load((ours / "dagster.yaml").read_text())["storage"]["custom"]
    assert config["config"]["base_dir"] == str(ours)
    with dg.DagsterInstance.from_config(str(ours)) as instance:
        assert isinstance(instance.event_log_storage, KeptEngineEventLogStorage)
        assert isinstance(instance.run_storage, KeptEngineRunStorage)
    # another home whose yaml puts Dagster's own SQLite storage on the same files
    (default / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {ours}\ntelemetry:\n  enabled: false\n"
    )
    with dg.DagsterInstance.from_config(str(default)) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
    first = _materialize(ours, "a")
    second = _materialize(default, "b")
    third = _materialize(ours, "c")
    for home in (ours, default):
        runs, found = _seen(home)
        assert runs == {first, second, third}
        assert found == {"a": "a", "b": "b", "c": "c"}


def test_one_engine_per_database_file_for_all_events_of_a_run(tmp_path):
    (tmp_path / "dagster.yaml").write_text(dagster_yaml(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        result = dg.materialize([numbers], instance=instance, partition_key="a")
        event_log = instance.event_log_storage
        # the run's own shard and the cross-run index: one engine each, for ~20 events
        assert set(event_log._engines) == {result.run_id, "index"}
        assert len(instance.all_logs(result.run_id)) > 10
        engine = event_log._engines[result.run_id]
        instance.report_engine_event("one more", instance.get_run_by_id(result.run_id))
        assert event_log._engines[result.run_id] is engine
    assert event_log._engines == {}  # disposed with the instance


def test_engines_of_old_runs_are_let_go(tmp_path, monkeypatch):
    monkeypatch.setattr(instance_storage, "KEPT_RUN_ENGINES", 2)
    (tmp_path / "dagster.yaml").write_text(dagster_yaml(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        runs = [dg.materialize([numbers], instance=instance, partition_key=p).run_id for p in "abc"]
        kept = set(instance.event_log_storage._engines)
        assert kept == {"index", runs[1], runs[2]}  # the oldest run's engine was disposed
        # and reading the old run still works: its engine comes back, another one goes
        assert len(instance.all_logs(runs[0])) > 10
        assert set(instance.event_log_storage._engines) == {"index", runs[2], runs[0]}


def test_a_moved_home_is_refused_naming_the_setting(tmp_path, emulator_cache):
    old, moved = tmp_path / "old", tmp_path / "moved"
    moved.mkdir()
    (moved / "dagster.yaml").write_text(dagster_yaml(old))  # as if `old` had been moved
    env = {**clean_env(emulator_cache)}
    args = [sys.executable, "-m", "microns_assets.cli", "versions", "--server", "embedded",
            "--dagster-home", str(moved), "--data-dir", str(tmp_path / "data")]  # fmt: skip
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert f"keeps this instance's files in {old}" in out.stderr
    assert f"base_dir: {moved}" in out.stderr
    assert not old.exists()  # nothing was written to the old place
