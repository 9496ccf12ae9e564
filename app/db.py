"""The database: `capteo.db` in WAL mode, read and written through apsw.

Reads use one connection per thread. Every write goes through `Database.write()`:
a process-wide lock (one writer) around a `BEGIN IMMEDIATE` transaction, so a
read-then-write never fails half-way with SQLITE_BUSY and another process (the
worker, a backup) simply waits its turn up to the busy timeout.

Which library opens which file: `capteo.db` only ever through apsw and its own
bundled SQLite -- the web process, the worker, backups and the migrations alike.
`queue.db` is Huey's, opened through the stdlib's sqlite3 (another copy of SQLite).
Two copies of SQLite in one process break each other's POSIX locks on a file they
both open; here they never share a file, so each file's locks stay with one copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import apsw
import apsw.bestpractice

BUSY_TIMEOUT_MS = 5000


def _dict_row(cursor: apsw.Cursor, row: tuple) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.get_description(), row, strict=True)}


def connect(path: str | Path) -> apsw.Connection:
    """A connection configured the way every Capteo connection must be."""
    conn = apsw.Connection(str(path))
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    _use_wal(conn)
    apsw.bestpractice.connection_enable_foreign_keys(conn)
    apsw.bestpractice.connection_dqs(conn)
    # Erased personal data is overwritten, not left in free pages (Law 25).
    conn.execute("PRAGMA secure_delete = ON")
    # FULL: a commit is on disk before we answer "accepted".
    conn.execute("PRAGMA synchronous = FULL")
    conn.row_trace = _dict_row
    conn.set_update_hook(lambda op, _db, table, _rowid: _changed(conn, op, table))
    return conn


def _use_wal(conn: apsw.Connection) -> None:
    # Only a new file is not in WAL mode yet, and switching it takes an exclusive lock.
    # When two processes open a new file at once (the server and `run.py worker` on a
    # new data directory), SQLite may answer "busy" at once instead of calling the busy
    # handler (waiting could deadlock), so the wait is here.
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            apsw.bestpractice.connection_wal(conn)
            return
        except apsw.BusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


# Work that must follow a transaction's commit, never precede it (a file written or
# deleted to match rows), by the writing connection; dropped on rollback.
_AFTER_COMMIT: dict[int, dict[str, Callable[[], object]]] = {}


def relaxed_durability(conn: Any) -> None:
    """`synchronous = NORMAL` on a WAL file whose rows can be lost at a power cut without harm
    (the queues' wake-ups): commits skip the fsync; the file is never corrupted."""
    conn.execute("PRAGMA synchronous = NORMAL")


def after_commit(conn: apsw.Connection, key: str, fn: Callable[[], object]) -> None:
    """Run `fn` once the write transaction open on `conn` has committed (not at all if
    it rolls back); one `fn` per `key` per transaction. Runs under the writer's lock."""
    _AFTER_COMMIT.setdefault(id(conn), {})[key] = fn


# Work that follows rows inserted into a table, whoever inserted them (a trigger writes
# `webhook_events`): `on_insert(table, fn)` runs `fn` once after the commit of a write
# transaction that inserted there (jobs/ registers the wake-ups; with none registered
# nothing runs, and sweeps find the work anyway). SQLite's update hook sees the rows
# triggers write, and needs nothing of the SQL: other tools keep writing these tables.
_ON_INSERT: dict[str, Callable[[], object]] = {}


def on_insert(table: str, fn: Callable[[], object]) -> None:
    _ON_INSERT[table] = fn


def _changed(conn: apsw.Connection, op: int, table: str) -> None:
    fn = _ON_INSERT.get(table)
    if fn is not None and op == apsw.SQLITE_INSERT and conn.in_transaction:
        after_commit(conn, f"insert:{table}", fn)


class Database:
    """Connections to one SQLite file: thread-local readers, one serialized writer."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._writer: apsw.Connection | None = None

    def reader(self) -> apsw.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    @contextmanager
    def write(self) -> Iterator[apsw.Connection]:
        """A write transaction: `with db.write() as conn: conn.execute(...)`.
        Commits on success, rolls back on any exception. Re-entrant in one thread."""
        with self._write_lock:
            if self._writer is None:
                self._writer = connect(self.path)
            conn = self._writer
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    _AFTER_COMMIT.pop(id(conn), None)
                    conn.execute("ROLLBACK")
                    raise
                else:
                    callbacks = _AFTER_COMMIT.pop(id(conn), {})
                    conn.execute("COMMIT")  # if this raises, the callbacks are dropped with the transaction
                    for fn in callbacks.values():
                        fn()
            else:
                yield conn

    @contextmanager
    def writes_held(self) -> Iterator[None]:
        """No write of this process starts until the block ends (no transaction is open: a
        checkpoint can run inside it)."""
        with self._write_lock:
            yield

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return list(self.reader().execute(sql, params))

    def query_one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        for row in self.reader().execute(sql, params):
            return row
        return None

    def one(self, sql: str, params: Any = ()) -> dict[str, Any]:
        """The row that must exist (an aggregate, a row this code just wrote); LookupError if not."""
        row = self.query_one(sql, params)
        if row is None:
            raise LookupError(sql)
        return row

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
