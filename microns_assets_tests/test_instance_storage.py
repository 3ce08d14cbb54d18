"""`instance_storage.SqliteStorage`: Dagster's SQLite files, written and read with kept engines."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
import yaml
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

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


def _schema(path: Path) -> tuple:
    """What a run file holds besides events: its tables and indexes, revision and log mode."""
    with sqlite3.connect(path) as db:
        objects = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
        revision = db.execute("SELECT version_num FROM alembic_version").fetchall()
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
        return objects.fetchall(), revision, mode


def test_a_new_run_file_is_made_as_dagster_makes_it(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    KeptEngineEventLogStorage(str(ours)).store_event(_hello("run-a"))
    SqliteEventLogStorage(str(theirs)).store_event(_hello("run-a"))
    made = _schema(ours / "run-a.db")
    assert made == _schema(theirs / "run-a.db")
    objects, revision, mode = made
    assert {"event_logs", "asset_keys"} <= {name for kind, name, _, _ in objects if kind == "table"}
    assert len(revision) == 1 and mode == "wal"
    # and Dagster's storage reads (and would migrate) a run file we made
    with sqlite3.connect(ours / "run-a.db") as db:
        assert db.execute("SELECT count(*) FROM event_logs").fetchone() == (1,)
    assert len(SqliteEventLogStorage(str(ours)).get_logs_for_run("run-a")) == 1


def _hello(run_id: str) -> EventLogEntry:
    return EventLogEntry(
        error_info=None, level=20, user_message="hello", run_id=run_id, timestamp=time.time(),
        step_key=None, job_name="job",
    )  # fmt: skip


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


def _log_line(instance: dg.DagsterInstance, run_id: str, text: str) -> None:
    instance.report_engine_event(text, instance.get_run_by_id(run_id))


def _messages(home: Path, run_id: str) -> list[str]:
    """A run's log lines as Dagster's own SQLite storage reads them (a process of its own)."""
    other = home.parent / f"reader-{home.name}"
    other.mkdir(exist_ok=True)
    (other / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {home}\ntelemetry:\n  enabled: false\n"
    )
    code = (
        "import sys, dagster as dg\n"
        "with dg.DagsterInstance.from_config(sys.argv[1]) as i:\n"
        "    print('\\n'.join(e.message for e in i.all_logs(sys.argv[2])))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(other), run_id], capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def test_connections_are_kept_open_and_reused(tmp_path):
    (tmp_path / "dagster.yaml").write_text(dagster_yaml(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run_id = _materialize(tmp_path, "a")
        _log_line(instance, run_id, "first")
        engine = instance.event_log_storage._engines[run_id]
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            limit = raw.execute("PRAGMA journal_size_limit").fetchone()[0]
            assert limit == instance_storage.WAL_SIZE_LIMIT
        _log_line(instance, run_id, "second")
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection is raw  # the same SQLite connection
        assert engine.pool.checkedin() == 1
    assert _messages(tmp_path, run_id)[-2:] == ["first", "second"]


def test_a_forked_childs_writes_survive_the_parent_closing_its_connection(tmp_path):
    """Kept connections are closed before a fork.

    SQLite's lock bookkeeping is per process: a child forked while the parent held an open
    connection would take no locks, and the parent's last close would then delete the
    write-ahead log holding the child's later writes.
    """
    path = tmp_path / "x.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (a INTEGER)")
    setup.close()  # (an open connection here would keep the log alive whatever the storage does)
    engine = instance_storage.kept_engine(f"sqlite:///{path}")

    def insert(value: int) -> None:
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text("INSERT INTO t VALUES (:a)"), {"a": value})

    insert(1)  # the parent's connection stays open in the pool
    written, go = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write, let the parent close, write again, leave at once
        status = 1
        try:
            insert(2)
            os.write(written[1], b"1")
            os.read(go[0], 1)
            insert(3)
            status = 0
        finally:
            os._exit(status)
    assert os.read(written[0], 1) == b"1"
    engine.dispose()  # the parent closes its connection, as a process does when it ends
    os.write(go[1], b"1")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    reader = sqlite3.connect(path)  # a fresh connection: what is really stored
    assert [r[0] for r in reader.execute("SELECT a FROM t ORDER BY a")] == [1, 2, 3]
    reader.close()


def test_a_run_file_removed_under_a_kept_connection_is_written_anew(tmp_path):
    (tmp_path / "dagster.yaml").write_text(dagster_yaml(tmp_path))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        run_id = _materialize(tmp_path, "a")
        _log_line(instance, run_id, "before the wipe")
        assert run_id in instance.event_log_storage._engines
        instance.event_log_storage.wipe()  # unlinks every run's file, as `dagster` can
        _log_line(instance, run_id, "after the wipe")
    # not written into the removed file, where nobody would read it
    assert _messages(tmp_path, run_id) == ["after the wipe"]


@pytest.mark.parametrize("web_ui_storage", ["dagster's", "ours"])
def test_the_web_uis_log_watcher_sees_every_write(tmp_path, web_ui_storage):
    """The web UI (Dagster's storage class, or ours from the home's dagster.yaml) follows."""
    (tmp_path / "dagster.yaml").write_text(dagster_yaml(tmp_path))
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "dagster.yaml").write_text(
        dagster_yaml(tmp_path)
        if web_ui_storage == "ours"
        else f"storage:\n  sqlite:\n    base_dir: {tmp_path}\ntelemetry:\n  enabled: false\n"
    )
    run_id = _materialize(tmp_path, "a")
    seen: list[str] = []
    with (
        dg.DagsterInstance.from_config(str(tmp_path)) as instance,
        dg.DagsterInstance.from_config(str(reader)) as watching,
    ):
        # as the web UI follows a run: a file watcher on the run's file, reading what is new
        watching.event_log_storage.watch(run_id, None, lambda e, c: seen.append(e.message))
        time.sleep(0.5)  # the watcher's thread is up
        for n in range(3):
            _log_line(instance, run_id, f"live {n}")
            deadline = time.monotonic() + 10
            while f"live {n}" not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
            assert f"live {n}" in seen, f"the watcher did not see write {n} in 10 s"


def _index_queries(storage: KeptEngineEventLogStorage) -> list[str]:
    """The SQL statements run on the index file from now on (a listener on its kept engine)."""
    with storage.index_connection():
        pass  # (the engine exists from here on)
    seen: list[str] = []
    sa.event.listen(
        storage._engines["index"],
        "before_cursor_execute",
        lambda conn, cursor, statement, *args: seen.append(statement),
    )
    return seen


def test_an_existing_dynamic_partition_is_asked_once_a_second_and_a_no_never_kept(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(instance_storage, "KNOWN_PARTITION_S", 0.5)
    (tmp_path / "dagster.yaml").write_text(dagster_yaml(tmp_path))
    with (
        dg.DagsterInstance.from_config(str(tmp_path)) as ours,
        dg.DagsterInstance.from_config(str(tmp_path)) as other,  # another process, say
    ):
        storage = ours.event_log_storage
        queries = _index_queries(storage)
        assert not storage.has_dynamic_partition("v", "1300")
        other.add_dynamic_partitions("v", ["1300"])
        assert storage.has_dynamic_partition("v", "1300")  # a "no" was not kept
        asked = len(queries)
        assert all(storage.has_dynamic_partition("v", "1300") for _ in range(20))
        assert len(queries) == asked  # the "yes" was kept
        # deleted here: known at once
        storage.delete_dynamic_partition("v", "1300")
        assert not storage.has_dynamic_partition("v", "1300")
        # deleted by another process: taken to exist for at most KNOWN_PARTITION_S
        ours.add_dynamic_partitions("v", ["1300"])
        assert storage.has_dynamic_partition("v", "1300")
        other.delete_dynamic_partition("v", "1300")
        time.sleep(0.6)
        assert not storage.has_dynamic_partition("v", "1300")
        assert not other.event_log_storage.has_dynamic_partition("v", "1300")
