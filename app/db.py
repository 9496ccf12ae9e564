"""The database: `capteo.db` in WAL mode, read and written through apsw.

Reads use one connection per thread. Every write goes through `Database.write()`:
a process-wide lock (one writer) around a `BEGIN IMMEDIATE` transaction, so a
read-then-write never fails half-way with SQLITE_BUSY and another process (the
worker, a backup) simply waits its turn up to the busy timeout.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import apsw
import apsw.bestpractice

BUSY_TIMEOUT_MS = 5000


def _dict_row(cursor: apsw.Cursor, row: tuple) -> dict[str, Any]:
    return {d[0]: v for d, v in zip(cursor.get_description(), row)}


def connect(path: str | Path) -> apsw.Connection:
    """A connection configured the way every Capteo connection must be."""
    conn = apsw.Connection(str(path))
    # bestpractice's own busy timeout is 100 ms; ours is set after it.
    apsw.bestpractice.connection_wal(conn)
    apsw.bestpractice.connection_enable_foreign_keys(conn)
    apsw.bestpractice.connection_dqs(conn)
    conn.set_busy_timeout(BUSY_TIMEOUT_MS)
    # Erased personal data is overwritten, not left in free pages (Law 25).
    conn.execute("PRAGMA secure_delete = ON")
    # FULL: a commit is on disk before we answer "accepted".
    conn.execute("PRAGMA synchronous = FULL")
    conn.row_trace = _dict_row
    return conn


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
                    conn.execute("ROLLBACK")
                    raise
                else:
                    conn.execute("COMMIT")
            else:
                yield conn

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return list(self.reader().execute(sql, params))

    def query_one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        for row in self.reader().execute(sql, params):
            return row
        return None

    def close(self) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
