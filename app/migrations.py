"""Schema of `capteo.db`, as numbered sqlite-utils migrations.

A migration is never edited once it has shipped: change the schema with a new
numbered function. They run at start-up and with `run.py migrate`, on their own
stdlib-sqlite3 connection (sqlite-utils cannot write through apsw) -- and in a
child process: apsw carries its own copy of SQLite, and two copies of SQLite in
one process break each other's POSIX locks on the same file (closing one copy's
file descriptor drops the other's locks), which shows up as "disk I/O error" or,
worse, as corruption. One process, one SQLite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("capteo")


def _run(db: sqlite_utils.Database, *statements: str) -> None:
    for sql in statements:
        db.execute(sql)


@migrations()
def m001_businesses_and_users(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """CREATE TABLE businesses (
            id INTEGER PRIMARY KEY,
            slug TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            timezone TEXT NOT NULL,
            language TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
            phone TEXT,
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE COLLATE NOCASE,
            name TEXT NOT NULL DEFAULT '',
            password_hash TEXT,
            language TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
            created_at TEXT NOT NULL
        )""",
        """CREATE TABLE memberships (
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            user_id INTEGER NOT NULL REFERENCES users(id),
            role TEXT NOT NULL CHECK (role IN ('owner', 'member')),
            PRIMARY KEY (business_id, user_id)
        )""",
        "CREATE INDEX memberships_user ON memberships(user_id)",
    )


@migrations()
def m002_leads(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """CREATE TABLE leads (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            reference TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL CHECK (channel IN ('web', 'phone', 'chat')),
            status TEXT NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'scheduled', 'contacted', 'closed', 'archived', 'anonymized')),
            language TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
            first_name TEXT,
            last_name TEXT,
            phone TEXT,
            email TEXT,
            street_address TEXT,
            postal_code TEXT,
            need TEXT,
            notes TEXT,
            custom_fields TEXT NOT NULL DEFAULT '{}',
            latitude REAL,
            longitude REAL,
            consent_text TEXT,
            consent_version TEXT,
            consent_at TEXT,
            session_id TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            archived_at TEXT,
            anonymized_at TEXT
        )""",
        "CREATE INDEX leads_business_status ON leads(business_id, status, created_at)",
        # Anonymization is terminal: no code path, and no bug, can bring a lead back.
        """CREATE TRIGGER leads_anonymized_is_final
           BEFORE UPDATE OF status ON leads
           WHEN OLD.status = 'anonymized' AND NEW.status != 'anonymized'
           BEGIN SELECT RAISE(ABORT, 'an anonymized lead cannot change status'); END""",
    )


@migrations()
def m003_audit_log(db: sqlite_utils.Database) -> None:
    _run(
        db,
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            business_id INTEGER,
            action TEXT NOT NULL,
            entity TEXT NOT NULL,
            entity_id TEXT,
            fields TEXT NOT NULL DEFAULT '[]',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_log_business ON audit_log(business_id, id)",
        # Append-only: the database itself refuses to rewrite history.
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
           BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END""",
    )


@migrations()
def m004_sessions_and_heartbeats(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # Only a hash of the session token is stored: a copy of the data directory
        # does not hand out live sessions.
        """CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )""",
        "CREATE INDEX sessions_expiry ON sessions(expires_at)",
        """CREATE TABLE heartbeats (
            name TEXT PRIMARY KEY,
            at TEXT NOT NULL
        )""",
    )


@migrations()
def m005_web_form_outbox_geocoding(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # Opening hours as JSON: {"mon": [["08:00", "17:00"]], ...}, in the business's time zone.
        "ALTER TABLE businesses ADD COLUMN hours TEXT NOT NULL DEFAULT '{}'",
        # Sites allowed to frame the form (?embed=1), e.g. ["plomberie-gagnon.ca"].
        "ALTER TABLE businesses ADD COLUMN embed_domains TEXT NOT NULL DEFAULT '[]'",
        # Phones (E.164) that get an SMS for each new lead.
        "ALTER TABLE businesses ADD COLUMN notify_phones TEXT NOT NULL DEFAULT '[]'",
        """CREATE TABLE custom_fields (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            position INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('short_text', 'long_text', 'number', 'single_choice',
                                               'multiple_choice', 'date', 'yes_no')),
            label_fr TEXT NOT NULL,
            label_en TEXT NOT NULL,
            required INTEGER NOT NULL DEFAULT 0,
            options TEXT NOT NULL DEFAULT '[]',
            active INTEGER NOT NULL DEFAULT 1
        )""",
        "CREATE INDEX custom_fields_business ON custom_fields(business_id, active, position)",
        "ALTER TABLE leads ADD COLUMN callback_time TEXT",
        # The form's signed one-time token: a resubmitted POST finds its lead instead of making two.
        "ALTER TABLE leads ADD COLUMN submission_token TEXT",
        "CREATE UNIQUE INDEX leads_submission_token ON leads(business_id, submission_token)"
        " WHERE submission_token IS NOT NULL",
        # none | pending | done | failed; the queue only wakes the work, this column is the truth.
        "ALTER TABLE leads ADD COLUMN geocode_status TEXT NOT NULL DEFAULT 'none'",
        "ALTER TABLE leads ADD COLUMN geocode_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE leads ADD COLUMN geocode_next_at TEXT",
        "CREATE INDEX leads_geocode_pending ON leads(geocode_status, geocode_next_at)"
        " WHERE geocode_status = 'pending'",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            lead_id INTEGER REFERENCES leads(id),
            kind TEXT NOT NULL,
            to_phone TEXT NOT NULL,
            body TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_at TEXT,
            provider_id TEXT,
            error_code TEXT,
            error_message TEXT,
            created_at TEXT NOT NULL,
            sent_at TEXT
        )""",
        "CREATE INDEX outbox_due ON outbox(status, next_attempt_at)",
        "CREATE INDEX outbox_business ON outbox(business_id, created_at)",
        """CREATE TABLE geocode_cache (
            postal_code TEXT PRIMARY KEY,
            latitude REAL,
            longitude REAL,
            found INTEGER NOT NULL,
            fetched_at TEXT NOT NULL
        )""",
    )

def _in_child(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "app.migrations", *args],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrations failed on {args[-1]}:\n{result.stderr.strip()}")
    return json.loads(result.stdout)


def apply(db_path: str | Path) -> list[str]:
    """Apply pending migrations in a child process; returns the names applied
    (empty when up to date). Raises RuntimeError with the child's error."""
    return _in_child(str(db_path))


def pending(db_path: str | Path) -> list[str]:
    """Names of migrations not yet applied (reads only)."""
    return _in_child("--pending", str(db_path))


def _apply_here(db_path: str | Path) -> list[str]:
    db = sqlite_utils.Database(str(db_path))
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.conn.execute("PRAGMA busy_timeout = 5000")
        pending = [m.name for m in migrations.pending(db)]
        migrations.apply(db)
        return pending
    finally:
        db.close()


if __name__ == "__main__":
    if sys.argv[1] == "--pending":
        _db = sqlite_utils.Database(sys.argv[2])
        print(json.dumps([m.name for m in migrations.pending(_db)]))
    else:
        print(json.dumps(_apply_here(sys.argv[1])))
