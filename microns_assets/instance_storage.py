"""Dagster's SQLite instance storage with one SQLAlchemy engine, and one open connection, per file.

`SqliteStorage` reads and writes exactly the files of Dagster's default SQLite storage (`history/
runs.db`, `history/runs/<run id>.db`, `history/runs/index.db`, `schedules/`), so a Dagster home
may switch to it and back at any time, and processes configured either way share a home. The
difference: Dagster's SQLite run and event log storages build a new SQLAlchemy engine and open a
new SQLite connection for every use, so every event pays for an engine, recompiles its SQL (the
compiled-statement cache lives on the engine), parses the database schema again (SQLite does on
every new connection) and checkpoints the write-ahead log when the connection closes. Ours keep
one engine per file and one connection in its pool, so an event costs ~1.0 ms (a log line) to
~2.6 ms (a materialization) instead of ~1.9 and ~4.6 ms (docs/benchmarks.md).

What keeps the kept connections as safe as Dagster's fresh ones:
- Forks: SQLite keeps its file locks' bookkeeping per process, and a child forked while the
  parent holds an open connection inherits it: the child's own connections to that file would
  then take no locks, and its writes could land in a write-ahead log the parent deletes. So
  before any fork every kept connection of this process is closed (`os.register_at_fork`; they
  reopen on next use), and a connection still open then (lent to another thread) is never used
  nor closed by the child (the process that opened it is checked at every checkout).
- Per file: a connection whose file was removed or replaced since it was opened (a wiped or
  deleted run) is discarded, not written into a file nobody reads.
- Threads take turns: the pool lends a connection to one thread at a time (more threads at once
  get extra connections, closed after use).
- Durability: Dagster puts these files in write-ahead-log mode, where `synchronous=NORMAL` (set on
  our connections) cannot corrupt a database; a power cut may lose the last few events.
- Live logs: the web UI follows a running run by watching its `<run id>.db` file for changes
  (inotify through `watchdog`, which reports a new modification time as a modification too), and
  with a connection kept open writes stay in `<run id>.db-wal` until a checkpoint. So after every
  use of a run's file that wrote to it, the file's modification time is set to now: the watcher
  wakes and reads the new events, which every reader sees in the write-ahead log. (A checkpoint
  after every write would signal it too, at the price of two fsyncs per event; SQLite still
  checkpoints a log of 1,000 pages by itself, and when the last connection closes.)
- Disk: with connections kept, a write-ahead log is no longer deleted when its last
  connection closes; `journal_size_limit` truncates it to `WAL_SIZE_LIMIT` after checkpoints.

One answer is kept besides: that a dynamic partition (a version) exists, for
`KNOWN_PARTITION_S`, since Dagster asks it again per partition key each time a step over many
partitions adds metadata to one of them.

Used by the `dagster.yaml` that microns-assets writes for a new Dagster home (`storage: custom:`);
it overrides the storages' private `_connect`/`connect`/`has_table` of dagster 1.13 (pinned in
setup.cfg). No microns_assets imports: this is loaded by every Dagster process of the home.
"""

from __future__ import annotations

import os
import sqlite3
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache, cached_property, partial

import sqlalchemy.exc as db_exc
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
from dagster._core.storage.event_log.sqlite import sqlite_event_log
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sql import create_engine, get_alembic_config, safe_commit
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClassData
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

#: Run shards whose engines (and open connections) are kept; least recently used ones go first.
KEPT_RUN_ENGINES = 16

#: Bytes a write-ahead log keeps on disk after a checkpoint (SQLite truncates it to this).
WAL_SIZE_LIMIT = 4 * 1024 * 1024

#: Seconds a dynamic partition found to exist is taken to exist without asking the index again
#: (`has_dynamic_partition`). Dagster asks again for every partition of a step's range each
#: time the step adds metadata to one of them (a version's 32 chunks: 64 queries of ~0.9 ms).
#: One added or deleted through this storage is known at once; one deleted by another process
#: is taken to exist for at most this long (a "no" is never kept).
KNOWN_PARTITION_S = 1.0

#: Every kept engine of this process, closed before a fork (see the module docstring).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
#: Connections a forked child inherited still open: kept referenced so it never closes them.
_INHERITED: list = []


def _close_before_fork() -> None:
    for engine in list(_ENGINES):
        engine.pool.dispose()  # closes the connections in the pool; lent ones stay the lender's


os.register_at_fork(before=_close_before_fork)


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


def _on_connect(path: str, dbapi_connection, record) -> None:
    record.info["opened_by"] = (os.getpid(), _file_id(path))
    cursor = dbapi_connection.cursor()
    try:
        (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
        if str(mode).lower() == "wal":  # NORMAL is only corruption-safe in WAL mode
            cursor.execute("PRAGMA synchronous=NORMAL")
            # the log is no longer deleted when a last connection closes: bound what it keeps
            cursor.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    finally:
        cursor.close()


def _on_checkout(path: str, dbapi_connection, record, proxy) -> None:
    pid, file_id = record.info.get("opened_by", (None, None))
    if pid != os.getpid():  # inherited through a fork: neither use nor close it
        _INHERITED.append(record.dbapi_connection)
        record.dbapi_connection = proxy.dbapi_connection = None
        raise DisconnectionError(f"connection to {path} was opened by process {pid}")
    if _file_id(path) != file_id:
        raise DisconnectionError(f"{path} was removed or replaced since the connection opened")


def kept_engine(url: str) -> Engine:
    """An engine for one SQLite file that keeps one connection open between uses."""
    path = make_url(url).database or ""
    engine = create_engine(
        url,
        poolclass=QueuePool,
        pool_size=1,
        max_overflow=-1,  # threads using the file at the same time get extra connections
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
    )
    event.listen(engine, "connect", partial(_on_connect, path))
    event.listen(engine, "checkout", partial(_on_checkout, path))
    _ENGINES.add(engine)
    return engine


@cache
def _migrations() -> ScriptDirectory:
    """Dagster's event log migrations (alembic), read once per process."""
    return ScriptDirectory.from_config(get_alembic_config(sqlite_event_log.__file__))


def _touch(path: str) -> None:
    """Set a file's modification time to now (a change the web UI's log watcher sees)."""
    with suppress(OSError):  # removed meanwhile: nothing is watching it
        os.utime(path)


class KeptEngineEventLogStorage(SqliteEventLogStorage):
    """Dagster's per-run-sharded event log, one kept engine per shard file."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._tables: set[str] = set()
        self._known: dict[tuple[str, str], float] = {}  # dynamic partition -> when it was seen
        self._deletions = 0  # (a "yes" read while a deletion ran here is not kept)
        super().__init__(base_dir, inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Dagster's body, with the engine kept: same lock, same lazy per-shard initialization
        with self._db_lock:
            engine = self._engines.get(shard)
            if engine is None:
                engine = kept_engine(self.conn_string_for_shard(shard))
                self._engines[shard] = engine
                self._forget_old_engines()
            self._engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
                engine.dispose()  # reconnect: a new file is in WAL mode only now
            with engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                changes = raw.total_changes
                with conn.begin():
                    yield conn
                if shard != INDEX_SHARD_NAME and raw.total_changes != changes:
                    _touch(self.path_for_shard(shard))  # for the UI's log watcher (docstring)

    def _initdb(self, engine: Engine, for_index_shard: bool = False) -> None:
        """A new run file's tables, in write-ahead-log mode, stamped with the migrations' head.

        What Dagster's `_initdb` does to a new run file, but with the migrations read once per
        process (Dagster reads every migration script twice for each new run) and the file in
        write-ahead-log mode before its tables are made (each table is then not synced to disk
        on its own): ~14 ms a new run instead of ~60 ms.
        The index file (created once) is left to Dagster. As Dagster's, it retries while
        another process creates the same file.
        """
        if for_index_shard:
            super()._initdb(engine, for_index_shard=True)
            return
        for attempt in range(11):
            try:
                with engine.connect() as connection:
                    context = MigrationContext.configure(connection)
                    if not context.get_current_revision():
                        # write-ahead log first: then creating each table is not synced to disk
                        # on its own (NORMAL is safe in WAL mode); the file ends up the same
                        connection.execute(text("PRAGMA journal_mode=WAL;"))
                        connection.execute(text("PRAGMA synchronous=NORMAL;"))
                        SqlEventLogStorageMetadata.create_all(connection)
                        context.stamp(_migrations(), "head")
                        safe_commit(connection)
                return
            except (db_exc.DatabaseError, sqlite3.DatabaseError, sqlite3.OperationalError) as exc:
                message = str(exc)
                concurrent = (
                    "already exists" in message
                    or "database is locked" in message
                    or "UNIQUE constraint failed: alembic_version.version_num" in message
                )
                if not concurrent or attempt == 10:
                    raise
                time.sleep(0.2)

    def has_table(self, table_name: str) -> bool:
        """Dagster's check (a new engine and connection each time), asked once per table found.

        Tables are only ever added (migrations), and Dagster asks this for every check
        evaluation and materialization it stores.
        """
        if table_name not in self._tables and super().has_table(table_name):
            self._tables.add(table_name)
        return table_name in self._tables

    def has_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> bool:
        """Dagster's answer; a "yes" is kept for `KNOWN_PARTITION_S`."""
        key = (partitions_def_name, partition_key)
        seen = self._known.get(key)
        if seen is not None and time.monotonic() - seen < KNOWN_PARTITION_S:
            return True
        deletions, asked = self._deletions, time.monotonic()
        found = super().has_dynamic_partition(partitions_def_name, partition_key)
        if found and deletions == self._deletions:
            self._known[key] = asked
        else:
            self._known.pop(key, None)
        return found

    def delete_dynamic_partition(self, partitions_def_name: str, partition_key: str) -> None:
        """Dagster's, and the partition is no longer taken to exist."""
        self._deletions += 1
        self._known.pop((partitions_def_name, partition_key), None)
        try:
            super().delete_dynamic_partition(partitions_def_name, partition_key)
        finally:
            self._deletions += 1
            self._known.pop((partitions_def_name, partition_key), None)

    def wipe(self) -> None:
        """Dagster's, and no partition is taken to exist."""
        self._deletions += 1
        self._known.clear()
        try:
            super().wipe()
        finally:
            self._deletions += 1
            self._known.clear()

    def _forget_old_engines(self) -> None:
        """Keep the index's engine and the most recently used run shards' engines.

        A webserver or daemon touches every run over time; each engine holds ~40 KB of SQL and
        an open connection (its page cache, three file descriptors in WAL mode).
        """
        runs = [k for k in self._engines if k != INDEX_SHARD_NAME]
        for shard in runs[: max(0, len(runs) - KEPT_RUN_ENGINES)]:
            self._engines.pop(shard).dispose()

    def dispose(self) -> None:
        """Dispose of the kept engines (and close their connections) too."""
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


class KeptEngineRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, one kept engine for its `runs.db`."""

    @cached_property
    def _kept_engine(self) -> Engine:
        return kept_engine(self._conn_string)

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection in a transaction, from the kept engine."""
        with self._kept_engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close the kept connection too."""
        super().dispose()
        if "_kept_engine" in self.__dict__:
            self._kept_engine.dispose()


class SqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (same files, same `base_dir`), keeping SQLAlchemy engines.

    In `dagster.yaml`:

        storage:
          custom:
            module: microns_assets.instance_storage
            class: SqliteStorage
            config:
              base_dir: /absolute/path/of/the/dagster/home
    """

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        self.base_dir = base_dir
        self._run_storage = KeptEngineRunStorage.from_local(os.path.join(base_dir, "history"))
        self._event_log_storage = KeptEngineEventLogStorage(
            os.path.join(base_dir, "history", "runs")
        )
        self._schedule_storage = SqliteScheduleStorage.from_local(
            os.path.join(base_dir, "schedules")
        )
        self._inst_data = inst_data
        # DagsterStorage's own initialisation, skipped by not calling DagsterSqliteStorage's
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(  # Dagster's returns its own class, whatever `cls` is
        cls, inst_data: ConfigurableClassData | None, config_value: dict
    ) -> SqliteStorage:
        """The storage `dagster.yaml` configures (`base_dir`)."""
        return cls.from_local(inst_data=inst_data, **config_value)
