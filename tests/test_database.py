import threading

import apsw
import pytest

from app import migrations
from app.db import connect


def _schema(path):
    conn = connect(path)
    try:
        return sorted((r["name"], r["sql"]) for r in conn.execute("SELECT name, sql FROM sqlite_master"))
    finally:
        conn.close()


def test_migrations_run_twice_without_change(empty_config):
    config = empty_config
    first = migrations.apply(config.db_path)
    assert first == [m.__name__ for m in migrations.MIGRATIONS]
    before = _schema(config.db_path)
    assert migrations.apply(config.db_path) == []
    assert migrations.pending(config.db_path) == []
    assert _schema(config.db_path) == before


def test_connection_settings(db):
    def pragma(name):
        return list(db.query_one(f"PRAGMA {name}").values())[0]

    assert pragma("journal_mode") == "wal"
    assert pragma("foreign_keys") == 1
    assert pragma("secure_delete") == 1
    assert pragma("busy_timeout") == 5000
    assert pragma("synchronous") == 2  # FULL


def test_write_rolls_back_on_error(db):
    with pytest.raises(RuntimeError), db.write() as conn:
        conn.execute("INSERT INTO heartbeats (name, at) VALUES ('x', 'now')")
        raise RuntimeError("boom")
    assert db.query("SELECT * FROM heartbeats WHERE name = 'x'") == []


def test_foreign_keys_enforced(db):
    with pytest.raises(apsw.ConstraintError), db.write() as conn:
        conn.execute("INSERT INTO memberships (business_id, user_id, role) VALUES (999, 999, 'owner')")


def test_writers_in_two_connections_wait_instead_of_failing(db, config):
    """BEGIN IMMEDIATE plus the 5 s busy timeout: a second writer (another process's
    connection) waits for the first instead of raising SQLITE_BUSY."""
    other = connect(config.db_path)
    errors = []

    def hammer(conn, prefix):
        try:
            for i in range(200):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO heartbeats (name, at) VALUES (?, 'now')", (f"{prefix}{i}",))
                conn.execute("COMMIT")
        except apsw.Error as e:
            errors.append(e)

    t = threading.Thread(target=hammer, args=(other, "b"))
    t.start()
    for i in range(200):
        with db.write() as conn:
            conn.execute("INSERT INTO heartbeats (name, at) VALUES (?, 'now')", (f"a{i}",))
    t.join()
    assert errors == []
    assert db.query_one("SELECT count(*) AS n FROM heartbeats")["n"] == 400


def test_anonymized_lead_cannot_change_status(db):
    from app import businesses, leads

    with db.write() as conn:
        bid = businesses.create_business(conn, slug="b", name="B", timezone="America/Toronto")
        lead = leads.create(conn, business_id=bid, channel="web", actor="test", need="x")
        conn.execute("UPDATE leads SET status = 'anonymized' WHERE id = ?", (lead["id"],))
    with pytest.raises(apsw.ConstraintError, match="anonymized lead cannot change status"), db.write() as conn:
        conn.execute("UPDATE leads SET status = 'new' WHERE id = ?", (lead["id"],))
