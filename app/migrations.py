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

@migrations()
def m006_dashboard(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # First time a person moved the lead out of `new` (for "time to first contact").
        "ALTER TABLE leads ADD COLUMN first_contact_at TEXT",
        # Filled by the voicemail pipeline; searched with the rest.
        "ALTER TABLE leads ADD COLUMN transcript TEXT",
        # What full-text search indexes for a phone: the digits and their usual tails, so
        # "514 555-0101", "5550101" and "0101" all find +15145550101.
        """ALTER TABLE leads ADD COLUMN search_phone TEXT GENERATED ALWAYS AS (
            CASE WHEN phone IS NULL THEN NULL ELSE
              substr(phone, 2) || ' ' || substr(phone, 3) || ' ' || substr(phone, -7) || ' ' || substr(phone, -4)
            END) VIRTUAL""",
        # The business as a search token: a search only walks its own business's entries.
        "ALTER TABLE leads ADD COLUMN search_tenant TEXT GENERATED ALWAYS AS ('b' || business_id) VIRTUAL",
        """CREATE VIRTUAL TABLE leads_fts USING fts5(
            search_tenant, first_name, last_name, search_phone, email, need, notes, transcript,
            content='leads', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads BEGIN
            INSERT INTO leads_fts(rowid, search_tenant, first_name, last_name, search_phone, email, need,
                                  notes, transcript)
            VALUES (new.id, new.search_tenant, new.first_name, new.last_name, new.search_phone, new.email,
                    new.need, new.notes, new.transcript);
        END""",
        """CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
            INSERT INTO leads_fts(leads_fts, rowid, search_tenant, first_name, last_name, search_phone, email,
                                  need, notes, transcript)
            VALUES ('delete', old.id, old.search_tenant, old.first_name, old.last_name, old.search_phone,
                    old.email, old.need, old.notes, old.transcript);
        END""",
        """CREATE TRIGGER leads_fts_update AFTER UPDATE OF first_name, last_name, phone, email, need, notes,
                                                   transcript ON leads BEGIN
            INSERT INTO leads_fts(leads_fts, rowid, search_tenant, first_name, last_name, search_phone, email,
                                  need, notes, transcript)
            VALUES ('delete', old.id, old.search_tenant, old.first_name, old.last_name, old.search_phone,
                    old.email, old.need, old.notes, old.transcript);
            INSERT INTO leads_fts(rowid, search_tenant, first_name, last_name, search_phone, email, need,
                                  notes, transcript)
            VALUES (new.id, new.search_tenant, new.first_name, new.last_name, new.search_phone, new.email,
                    new.need, new.notes, new.transcript);
        END""",
        "INSERT INTO leads_fts(leads_fts) VALUES ('rebuild')",
        "CREATE INDEX leads_business_created ON leads(business_id, created_at)",
        "CREATE INDEX leads_business_channel ON leads(business_id, channel, created_at)",
        # The lead's timeline: status changes, notes, edits (field names), appointments, SMS.
        """CREATE TABLE lead_events (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            lead_id INTEGER NOT NULL REFERENCES leads(id),
            at TEXT NOT NULL,
            user_id INTEGER REFERENCES users(id),
            kind TEXT NOT NULL CHECK (kind IN ('status', 'note', 'edit', 'appointment', 'sms')),
            data TEXT NOT NULL DEFAULT '{}',
            body TEXT
        )""",
        "CREATE INDEX lead_events_lead ON lead_events(business_id, lead_id, at)",
        """CREATE TABLE appointments (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            lead_id INTEGER NOT NULL REFERENCES leads(id),
            starts_at TEXT NOT NULL,
            ends_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'cancelled')),
            created_by INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX appointments_business_time ON appointments(business_id, starts_at)",
        # Secret of the business's calendar feed URL; greeting texts for its phone system.
        "ALTER TABLE businesses ADD COLUMN ics_token TEXT",
        "ALTER TABLE businesses ADD COLUMN greeting_fr TEXT",
        "ALTER TABLE businesses ADD COLUMN greeting_en TEXT",
        "ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0",
    )

@migrations()
def m007_law25(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # A voicemail's audio and transcript; the voicemail pipeline adds its processing state.
        """CREATE TABLE voicemails (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            lead_id INTEGER REFERENCES leads(id),
            caller_id TEXT,
            audio_path TEXT,
            duration_s REAL,
            transcript TEXT,
            created_at TEXT NOT NULL,
            audio_deleted_at TEXT
        )""",
        "CREATE INDEX voicemails_audio_due ON voicemails(created_at) WHERE audio_path IS NOT NULL",
        "CREATE INDEX voicemails_business ON voicemails(business_id, created_at)",
        "CREATE INDEX leads_archived ON leads(archived_at) WHERE status = 'archived'",
        # Set when a person contests what the AI extracted: a human must review it.
        "ALTER TABLE leads ADD COLUMN review_requested_at TEXT",
        """CREATE TABLE privacy_requests (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            kind TEXT NOT NULL CHECK (kind IN ('access', 'rectification', 'erasure', 'portability',
                                               'withdrawal', 'contest', 'deindexing')),
            person TEXT NOT NULL,
            contact TEXT NOT NULL,
            details TEXT,
            source TEXT NOT NULL CHECK (source IN ('dashboard', 'public')),
            received_on TEXT NOT NULL,
            due_on TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered')),
            answer TEXT,
            answered_at TEXT,
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX privacy_requests_business ON privacy_requests(business_id, status, due_on)",
        # The regulation's register (s. 7): every incident, all fields required, append-only.
        """CREATE TABLE incidents (
            id INTEGER PRIMARY KEY,
            recorded_at TEXT NOT NULL,
            business_id INTEGER REFERENCES businesses(id),
            information_involved TEXT NOT NULL CHECK (length(trim(information_involved)) > 0),
            circumstances TEXT NOT NULL CHECK (length(trim(circumstances)) > 0),
            occurred TEXT NOT NULL CHECK (length(trim(occurred)) > 0),
            learned_on TEXT NOT NULL CHECK (length(trim(learned_on)) > 0),
            persons_concerned TEXT NOT NULL CHECK (length(trim(persons_concerned)) > 0),
            risk_assessment TEXT NOT NULL CHECK (length(trim(risk_assessment)) > 0),
            serious_injury_risk INTEGER NOT NULL CHECK (serious_injury_risk IN (0, 1)),
            commission_notified_on TEXT,
            persons_notified_on TEXT,
            measures TEXT NOT NULL CHECK (length(trim(measures)) > 0)
        )""",
        """CREATE TRIGGER incidents_no_update BEFORE UPDATE ON incidents
           BEGIN SELECT RAISE(ABORT, 'the incident register is append-only'); END""",
        """CREATE TRIGGER incidents_no_delete BEFORE DELETE ON incidents
           BEGIN SELECT RAISE(ABORT, 'the incident register is append-only'); END""",
    )

@migrations()
def m008_voicemail_pipeline(db: sqlite_utils.Database) -> None:
    _run(
        db,
        # The voicemail's own state machine; the queue only wakes the work up.
        "ALTER TABLE voicemails ADD COLUMN state TEXT NOT NULL DEFAULT 'received'"
        " CHECK (state IN ('received', 'transcribed', 'extracted', 'lead_created', 'failed'))",
        "ALTER TABLE voicemails ADD COLUMN source TEXT NOT NULL DEFAULT 'upload'"
        " CHECK (source IN ('voipms', 'pbx', 'upload'))",
        # VoIP.ms mailbox/folder/message: seeing the same message twice makes one voicemail.
        "ALTER TABLE voicemails ADD COLUMN external_id TEXT",
        "CREATE UNIQUE INDEX voicemails_external ON voicemails(business_id, external_id)"
        " WHERE external_id IS NOT NULL",
        "ALTER TABLE voicemails ADD COLUMN language TEXT",
        "ALTER TABLE voicemails ADD COLUMN extraction TEXT",
        "ALTER TABLE voicemails ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE voicemails ADD COLUMN error TEXT",
        "ALTER TABLE voicemails ADD COLUMN next_attempt_at TEXT",
        "ALTER TABLE voicemails ADD COLUMN updated_at TEXT",
        "CREATE INDEX voicemails_pending ON voicemails(state, next_attempt_at)"
        " WHERE state IN ('received', 'transcribed', 'extracted')",
        "ALTER TABLE businesses ADD COLUMN voipms_mailbox TEXT",
        "ALTER TABLE businesses ADD COLUMN pbx_token_hash TEXT",
        "ALTER TABLE businesses ADD COLUMN trade TEXT",
        "ALTER TABLE leads ADD COLUMN urgent INTEGER NOT NULL DEFAULT 0",
        # Names of the fields the AI filled, still to be verified by a person.
        "ALTER TABLE leads ADD COLUMN ai_fields TEXT NOT NULL DEFAULT '[]'",
        "CREATE INDEX leads_business_urgent ON leads(business_id, urgent, created_at)",
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
    applied = _in_child(str(db_path))
    _index_secure_delete(db_path)
    return applied


def _index_secure_delete(db_path: str | Path) -> None:
    """FTS5 keeps a deleted row's words in old index segments until they are merged,
    unless its secure-delete option is on (SQLite 3.44+: apsw's SQLite has it, the
    stdlib's 3.40 that runs the migrations does not). Turned on here, before any row
    is written, so an erased name never lingers in the search index (Law 25)."""
    from app.db import connect

    conn = connect(db_path)
    try:
        conn.execute("INSERT INTO leads_fts(leads_fts, rank) VALUES ('secure-delete', 1)")
    finally:
        conn.close()


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
