"""The migration runner: its ledger, the upgrade from sqlite-utils's ledger, two
processes starting at once, and a migration that fails."""

from __future__ import annotations

import multiprocessing

import pytest

from app import leads, migrations
from app.db import connect

NAMES = [fn.__name__ for fn in migrations.MIGRATIONS]

# sqlite-utils's ledger, as its Migrations.ensure_migrations_table() (4.2) created it.
SQLITE_UTILS_LEDGER = (
    'CREATE TABLE "_sqlite_migrations" (\n   "id" INTEGER PRIMARY KEY,\n   "migration_set" TEXT,\n'
    '   "name" TEXT,\n   "applied_at" TEXT\n)',
    'CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"\n'
    '    ON "_sqlite_migrations" ("migration_set", "name")',
)


def migrated_by_sqlite_utils(path, count: int) -> None:
    """capteo.db as the sqlite-utils runner left it after the first `count` migrations:
    their SQL, each recorded in `_sqlite_migrations` under the set 'capteo', and FTS5
    secure-delete, which that runner turned on after each run once the index existed."""
    conn = connect(path)
    try:
        for sql in SQLITE_UTILS_LEDGER:
            conn.execute(sql)
        # Another application's set in the same ledger is not ours to import.
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
                     " VALUES ('other', 'm009_not_capteo', '2026-01-01 00:00:00.000000+00:00')")
        for number, fn in enumerate(migrations.MIGRATIONS[:count], start=1):
            conn.execute("BEGIN")
            fn(conn)
            conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('capteo', ?, ?)",
                         (fn.__name__, f"2026-01-{number:02d} 12:00:00.000000+00:00"))
            conn.execute("COMMIT")
        if list(conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'leads_fts'")):
            conn.execute("INSERT INTO leads_fts(leads_fts, rank) VALUES ('secure-delete', 1)")
        conn.execute("INSERT INTO businesses (slug, name, timezone, created_at)"
                     " VALUES ('gagnon', 'Plomberie Gagnon', 'America/Toronto', '2026-01-01T00:00:00+00:00')")
        conn.execute("INSERT INTO leads (business_id, reference, channel, first_name, created_at, updated_at)"
                     " VALUES (1, 'L-1', 'web', 'Hélène', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
    finally:
        conn.close()


def schema(path, without=("_sqlite_migrations", "idx__sqlite_migrations_migration_set_name")):
    conn = connect(path)
    try:
        return sorted((r["type"], r["name"], r["sql"]) for r in conn.execute(
            "SELECT type, name, sql FROM sqlite_master") if r["name"] not in without)
    finally:
        conn.close()


def query(path, sql, params=()):
    conn = connect(path)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def found(path, q, business_id=1):
    """The leads the search index gives for what was typed in this business's inbox."""
    return query(path, "SELECT rowid FROM leads_fts WHERE leads_fts MATCH ?", (leads.fts_query(q, business_id),))


def secure_delete_on(path) -> bool:
    return bool(query(path, "SELECT 1 FROM leads_fts_config WHERE k = 'secure-delete' AND v = 1"))


def test_a_fresh_database_gets_every_migration_and_fts_secure_delete(empty_config):
    assert migrations.pending(empty_config.db_path) == NAMES
    assert not empty_config.db_path.exists()  # pending() only reads
    assert migrations.apply(empty_config.db_path) == NAMES
    assert [r["name"] for r in query(empty_config.db_path, "SELECT name FROM schema_migrations")] == NAMES
    assert secure_delete_on(empty_config.db_path)


def test_a_database_migrated_by_sqlite_utils_upgrades_without_reapplying_anything(empty_config, migrated_db):
    path = empty_config.db_path
    migrated_by_sqlite_utils(path, len(NAMES))
    assert migrations.pending(path) == []
    assert migrations.apply(path) == []
    # Re-applying m001 would have failed ("table businesses already exists"); the dates are the old ones.
    assert query(path, "SELECT name, applied_at FROM schema_migrations ORDER BY name") == [
        {"name": name, "applied_at": f"2026-01-{n:02d} 12:00:00.000000+00:00"} for n, name in enumerate(NAMES, 1)]
    assert schema(path) == schema(migrated_db)
    assert found(path, "helene") == [{"rowid": 1}]
    assert secure_delete_on(path)
    assert migrations.apply(path) == [] and migrations.pending(path) == []


def test_an_older_sqlite_utils_database_gets_only_the_newer_migrations(empty_config, migrated_db):
    path = empty_config.db_path
    migrated_by_sqlite_utils(path, 5)  # before the dashboard (m006) made the search index
    assert migrations.pending(path) == NAMES[5:]
    assert migrations.apply(path) == NAMES[5:]
    assert schema(path) == schema(migrated_db)
    assert secure_delete_on(path)
    # m006 indexed the lead that was already there.
    assert found(path, "helene") == [{"rowid": 1}]


def apply_in_step(paths, barrier, results) -> None:
    """One process: apply() on each file in turn, at the same moment as the others."""
    for path in paths:
        barrier.wait()
        try:
            results.put((path, migrations.apply(path)))
        except Exception as e:  # reported, and fails the test
            results.put((path, repr(e)))


def test_processes_starting_at_once_apply_each_migration_once(tmp_path):
    """The server and `run.py worker` start together on a new data directory: each
    migration is applied by exactly one of them, and none fails (a new file's switch
    to WAL and the ledger are both contended). Three processes, twelve new files."""
    context = multiprocessing.get_context("spawn")  # fresh processes, as in production
    paths = [str(tmp_path / f"capteo-{n}.db") for n in range(12)]
    barrier, results = context.Barrier(3), context.Queue()
    processes = [context.Process(target=apply_in_step, args=(paths, barrier, results)) for _ in range(3)]
    for p in processes:
        p.start()
    got = [results.get(timeout=60) for _ in range(3 * len(paths))]
    for p in processes:
        p.join(10)
    for path in paths:
        outcomes = [outcome for where, outcome in got if where == path]
        assert not [o for o in outcomes if isinstance(o, str)], outcomes
        assert sorted(name for applied in outcomes for name in applied) == sorted(NAMES)
        assert secure_delete_on(path)


def test_a_failing_migration_is_rolled_back_with_its_ledger_row(empty_config, monkeypatch):
    path = empty_config.db_path

    def m999_broken(conn):
        conn.execute("CREATE TABLE half_done (id INTEGER PRIMARY KEY)")
        raise RuntimeError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, m999_broken])
    with pytest.raises(RuntimeError, match="boom"):
        migrations.apply(path)
    assert migrations.pending(path) == ["m999_broken"]
    assert query(path, "SELECT name FROM sqlite_master WHERE name = 'half_done'") == []
