"""Schema of `capteo.db`: numbered migrations, and the small runner that applies them.

A migration is never edited once it has shipped: change the schema with a new
numbered function. They run at start-up and with `run.py migrate`, in this process,
through apsw like every other use of `capteo.db`: one process, one copy of SQLite.
(The stdlib's sqlite3 is another copy, and two copies of SQLite in one process break
each other's POSIX locks on the same file -- "disk I/O error", or corruption.)

The ledger is the table `schema_migrations`. Each migration runs with its ledger row
in one `BEGIN IMMEDIATE` transaction that first reads the ledger again, so when the
server and `run.py worker` start at once, one applies a migration and the other finds
it done. Databases migrated before this runner kept their ledger in sqlite-utils's
`_sqlite_migrations`: its names are copied over when `schema_migrations` is created,
and nothing is applied twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import apsw

from app import clock
from app.db import Database

Migration = Callable[[apsw.Connection], None]

# In the order they apply; a migration's name (its function's) is its key in the ledger.
MIGRATIONS: list[Migration] = []

_LEDGER_SQL = "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
# Where sqlite-utils kept the ledger, and the migration set Capteo's names were filed under.
_LEGACY_LEDGER = "_sqlite_migrations"
_LEGACY_SET = "capteo"


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration."""
    if any(m.__name__ == fn.__name__ for m in MIGRATIONS):
        raise ValueError(f"migration {fn.__name__} is registered twice")
    MIGRATIONS.append(fn)
    return fn


def _run(conn: apsw.Connection, *statements: str) -> None:
    for sql in statements:
        conn.execute(sql)


@migration
def m001_businesses_and_users(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m002_leads(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m003_audit_log(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m004_sessions_and_heartbeats(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m005_web_form_outbox_geocoding(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m006_dashboard(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m007_law25(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m008_voicemail_pipeline(conn: apsw.Connection) -> None:
    _run(
        conn,
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


@migration
def m009_invitations(conn: apsw.Connection) -> None:
    _run(
        conn,
        # Someone who already has an account joins another business only by accepting an
        # invitation: adding their email never moves or demotes them. `user_id` is the account
        # made for the invitation when the email had none (it joins at its first sign-in).
        """CREATE TABLE invitations (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            email TEXT NOT NULL COLLATE NOCASE,
            role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'member')),
            token_hash TEXT NOT NULL,
            user_id INTEGER REFERENCES users(id),
            created_by INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            accepted_at TEXT,
            declined_at TEXT,
            cancelled_at TEXT
        )""",
        "CREATE INDEX invitations_email ON invitations(email, expires_at)",
        "CREATE INDEX invitations_business ON invitations(business_id, created_at)",
        # Cloudflare Access mode has no session rows: the business a person last switched to.
        "ALTER TABLE users ADD COLUMN current_business_id INTEGER REFERENCES businesses(id)",
    )


@migration
def m010_previous_slugs(conn: apsw.Connection) -> None:
    _run(
        conn,
        # A form address a business used before stays its own (it redirects), so no other
        # business can claim it and receive requests sent to a link still out there.
        """CREATE TABLE previous_slugs (
            slug TEXT PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            retired_at TEXT NOT NULL
        )""",
        "CREATE INDEX previous_slugs_business ON previous_slugs(business_id)",
    )


@migration
def m011_password_resets(conn: apsw.Connection) -> None:
    _run(
        conn,
        # Only a hash of the link's token is kept: a copy of the data directory hands out no reset.
        """CREATE TABLE password_resets (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id),
            token_hash TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT
        )""",
        "CREATE INDEX password_resets_user ON password_resets(user_id)",
    )


def group_by_contact(rows: list[dict]) -> list[list[int]]:
    """Lead ids grouped into one person each: two leads with the same phone or the same
    email (any case) are the same person, and so is a chain of them (a phone shared with
    one lead, an email with another). Rows are {"id", "phone", "email"}; groups and the
    ids in them come in the order of the rows. Used once, by m012, on a business's leads."""
    parent = {r["id"]: r["id"] for r in rows}
    position = {r["id"]: n for n, r in enumerate(rows)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[str, str], int] = {}
    for r in rows:
        for key in (("phone", r["phone"]), ("email", (r["email"] or "").strip().lower())):
            if not key[1]:
                continue
            if key in first_with:
                a, b = root(first_with[key]), root(r["id"])
                if a != b:
                    # The earlier lead stays the root: a group starts with its first request.
                    parent[max(a, b, key=position.__getitem__)] = min(a, b, key=position.__getitem__)
            else:
                first_with[key] = r["id"]
    groups: dict[int, list[int]] = {}
    for r in rows:
        groups.setdefault(root(r["id"]), []).append(r["id"])
    return list(groups.values())


@migration
def m012_clients(conn: apsw.Connection) -> None:
    # A client is one person across requests and channels. The row holds only ids and a
    # date: what identifies the person stays on their leads, where anonymization erases it.
    _run(
        conn,
        """CREATE TABLE clients (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX clients_business ON clients(business_id)",
        "ALTER TABLE leads ADD COLUMN client_id INTEGER REFERENCES clients(id)",
        "CREATE INDEX leads_client ON leads(client_id)",
        # An anonymized lead must not stay tied to the person's other requests (that tie
        # would say whose it was): it leaves its client, and a client left without leads goes.
        """CREATE TRIGGER leads_anonymized_leave_client AFTER UPDATE OF status ON leads
           WHEN new.status = 'anonymized' AND old.client_id IS NOT NULL BEGIN
            UPDATE leads SET client_id = NULL WHERE id = new.id;
            DELETE FROM clients WHERE id = old.client_id
              AND NOT EXISTS (SELECT 1 FROM leads WHERE client_id = old.client_id);
        END""",
    )
    for business in list(conn.execute("SELECT id FROM businesses ORDER BY id")):
        rows = list(conn.execute(
            "SELECT id, phone, email, created_at FROM leads WHERE business_id = ? AND status != 'anonymized'"
            " ORDER BY created_at, id", (business["id"],)))
        first_at = {r["id"]: r["created_at"] for r in rows}
        for group in group_by_contact(rows):
            conn.execute("INSERT INTO clients (business_id, created_at) VALUES (?, ?)",
                         (business["id"], first_at[group[0]]))
            client_id = conn.last_insert_rowid()
            conn.executemany("UPDATE leads SET client_id = ? WHERE id = ?", [(client_id, i) for i in group])


@migration
def m013_shared_inbox(conn: apsw.Connection) -> None:
    _run(
        conn,
        # Who on the team handles the lead; NULL: nobody yet (the "unassigned" view).
        "ALTER TABLE leads ADD COLUMN assigned_to INTEGER REFERENCES users(id)",
        "CREATE INDEX leads_assigned ON leads(business_id, assigned_to)",
        # When each person last opened each lead: a lead changed since (leads.updated_at) is unread again.
        """CREATE TABLE lead_reads (
            user_id INTEGER NOT NULL REFERENCES users(id),
            lead_id INTEGER NOT NULL REFERENCES leads(id),
            read_at TEXT NOT NULL,
            PRIMARY KEY (user_id, lead_id)
        ) WITHOUT ROWID""",
        # The timeline gains 'assign' events. SQLite cannot alter a CHECK: the table is
        # rebuilt, ids kept (nothing references lead_events).
        """CREATE TABLE lead_events_new (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            lead_id INTEGER NOT NULL REFERENCES leads(id),
            at TEXT NOT NULL,
            user_id INTEGER REFERENCES users(id),
            kind TEXT NOT NULL CHECK (kind IN ('status', 'note', 'edit', 'appointment', 'sms', 'assign')),
            data TEXT NOT NULL DEFAULT '{}',
            body TEXT
        )""",
        """INSERT INTO lead_events_new (id, business_id, lead_id, at, user_id, kind, data, body)
           SELECT id, business_id, lead_id, at, user_id, kind, data, body FROM lead_events""",
        "DROP TABLE lead_events",
        "ALTER TABLE lead_events_new RENAME TO lead_events",
        "CREATE INDEX lead_events_lead ON lead_events(business_id, lead_id, at)",
    )


@migration
def m014_user_phone(conn: apsw.Connection) -> None:
    # The person's own mobile number (E.164, normalize.phone), set on their account page:
    # told by SMS of a lead assigned to them, and sent their password-reset link. NULL: none.
    _run(conn, "ALTER TABLE users ADD COLUMN phone TEXT")


@migration
def m015_unassign_removed_members(conn: apsw.Connection) -> None:
    _run(
        conn,
        # Whoever leaves a team leaves its leads: they go back to "unassigned" in the same transaction.
        """CREATE TRIGGER memberships_unassign AFTER DELETE ON memberships
           BEGIN UPDATE leads SET assigned_to = NULL
                 WHERE business_id = OLD.business_id AND assigned_to = OLD.user_id; END""",
    )


@migration
def m016_webhooks(conn: apsw.Connection) -> None:
    # Webhook endpoints of a business (app/integrations). Events are written by triggers in
    # the same transaction as the change they announce, whatever code path made it, and only
    # while the business has an enabled endpoint; the dispatcher turns each into one delivery
    # per subscribed endpoint. Nothing personal in an event row: ids and a type.
    _run(
        conn,
        """CREATE TABLE webhook_endpoints (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            url TEXT NOT NULL,
            events TEXT NOT NULL DEFAULT '[]',
            fields TEXT NOT NULL DEFAULT '[]',
            secret TEXT NOT NULL,
            previous_secret TEXT,
            previous_until TEXT,
            enabled INTEGER NOT NULL DEFAULT 1,
            disabled_reason TEXT,
            failing_since TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX webhook_endpoints_business ON webhook_endpoints(business_id)",
        """CREATE TABLE webhook_events (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL,
            type TEXT NOT NULL,
            lead_id INTEGER,
            object_id INTEGER,
            detail TEXT,
            at TEXT NOT NULL
        )""",
        """CREATE TABLE webhook_deliveries (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            endpoint_id INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
            message_id TEXT NOT NULL UNIQUE,
            event_type TEXT NOT NULL,
            lead_id INTEGER,
            body TEXT,
            fields TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'delivered', 'failed', 'canceled')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_at TEXT,
            last_status INTEGER,
            last_error TEXT,
            last_latency_ms INTEGER,
            last_response TEXT,
            created_at TEXT NOT NULL,
            delivered_at TEXT
        )""",
        "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at)",
        "CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, created_at)",
        "CREATE INDEX webhook_deliveries_lead ON webhook_deliveries(lead_id)",
    )
    listening = ("EXISTS (SELECT 1 FROM webhook_endpoints WHERE business_id = NEW.business_id AND enabled = 1)")
    now = "strftime('%Y-%m-%dT%H:%M:%S+00:00', 'now')"
    _run(
        conn,
        f"""CREATE TRIGGER webhook_lead_created AFTER INSERT ON leads WHEN {listening}
            BEGIN INSERT INTO webhook_events (business_id, type, lead_id, at)
                  VALUES (NEW.business_id, 'lead.created', NEW.id, {now}); END""",
        f"""CREATE TRIGGER webhook_lead_updated AFTER INSERT ON lead_events
            WHEN NEW.kind IN ('status', 'assign', 'edit') AND {listening}
            BEGIN INSERT INTO webhook_events (business_id, type, lead_id, detail, at)
                  VALUES (NEW.business_id, 'lead.updated', NEW.lead_id, NEW.kind, {now}); END""",
        # Anonymized: what was sent about the person is erased here too, and nothing more
        # about them leaves (deliveries not yet made are canceled); the event itself says
        # only which reference was anonymized.
        f"""CREATE TRIGGER webhook_lead_anonymized AFTER UPDATE OF status ON leads
            WHEN NEW.status = 'anonymized' AND OLD.status != 'anonymized'
            BEGIN
              UPDATE webhook_deliveries SET body = NULL, last_response = NULL,
                     status = CASE WHEN status IN ('pending', 'sending') THEN 'canceled' ELSE status END
               WHERE lead_id = NEW.id;
              INSERT INTO webhook_events (business_id, type, lead_id, at)
                SELECT NEW.business_id, 'lead.anonymized', NEW.id, {now} WHERE {listening};
            END""",
        f"""CREATE TRIGGER webhook_appointment_booked AFTER INSERT ON appointments WHEN {listening}
            BEGIN INSERT INTO webhook_events (business_id, type, lead_id, object_id, at)
                  VALUES (NEW.business_id, 'appointment.booked', NEW.lead_id, NEW.id, {now}); END""",
        f"""CREATE TRIGGER webhook_appointment_changed AFTER UPDATE ON appointments
            WHEN (NEW.status != OLD.status OR NEW.starts_at != OLD.starts_at) AND {listening}
            BEGIN INSERT INTO webhook_events (business_id, type, lead_id, object_id, at)
                  VALUES (NEW.business_id, CASE WHEN NEW.status = 'cancelled' THEN 'appointment.canceled'
                                                ELSE 'appointment.moved' END, NEW.lead_id, NEW.id, {now}); END""",
        f"""CREATE TRIGGER webhook_voicemail_transcribed AFTER UPDATE OF state ON voicemails
            WHEN NEW.state = 'transcribed' AND OLD.state != 'transcribed' AND {listening}
            BEGIN INSERT INTO webhook_events (business_id, type, lead_id, object_id, at)
                  VALUES (NEW.business_id, 'voicemail.transcribed', NEW.lead_id, NEW.id, {now}); END""",
    )


@migration
def m017_subscribers(conn: apsw.Connection) -> None:
    # Sign-up, trial and Paddle billing (app/billing), closing an account, and the policy
    # versions owners are told of (issue 14). A business made before this keeps billing
    # 'none': not billed, every door open (billing not configured behaves the same).
    _run(
        conn,
        "ALTER TABLE businesses ADD COLUMN trial_ends_at TEXT",
        """ALTER TABLE businesses ADD COLUMN billing_state TEXT NOT NULL DEFAULT 'none'
           CHECK (billing_state IN ('none', 'trialing', 'active', 'past_due', 'paused', 'canceled'))""",
        # occurred_at of the Paddle event that set billing_state: an older event changes nothing.
        "ALTER TABLE businesses ADD COLUMN billing_state_at TEXT",
        "ALTER TABLE businesses ADD COLUMN billing_restricted_since TEXT",
        "ALTER TABLE businesses ADD COLUMN paddle_customer_id TEXT",
        "ALTER TABLE businesses ADD COLUMN paddle_subscription_id TEXT",
        "ALTER TABLE businesses ADD COLUMN closed_at TEXT",
        "ALTER TABLE businesses ADD COLUMN checklist_done TEXT NOT NULL DEFAULT '[]'",
        """CREATE TABLE paddle_events (
            event_id TEXT PRIMARY KEY,
            business_id INTEGER,
            event_type TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            received_at TEXT NOT NULL,
            outcome TEXT NOT NULL
        )""",
        """CREATE TABLE policy_versions (
            version TEXT PRIMARY KEY,
            published_at TEXT NOT NULL,
            effective_at TEXT NOT NULL,
            summary_fr TEXT NOT NULL DEFAULT '',
            summary_en TEXT NOT NULL DEFAULT ''
        )""",
        """CREATE TABLE policy_notices_dismissed (
            user_id INTEGER NOT NULL REFERENCES users(id),
            version TEXT NOT NULL REFERENCES policy_versions(version),
            dismissed_at TEXT NOT NULL,
            PRIMARY KEY (user_id, version)
        )""",
    )


@migration
def m018_chat(conn: apsw.Connection) -> None:
    # The third door (issue 13): a conversation on the business's site that becomes a lead.
    # The page holds a random session token; only its SHA-256 is stored (session_hash), and
    # that is the "session identifier" the policy names: anonymization replaces it.
    _run(
        conn,
        # Postal code prefixes ("H2X", "J4") and city names, one per line: where the business works.
        "ALTER TABLE businesses ADD COLUMN service_area TEXT NOT NULL DEFAULT ''",
        # Hours within which the team calls back (NULL: not said).
        "ALTER TABLE businesses ADD COLUMN callback_hours INTEGER",
        """CREATE TABLE chat_conversations (
            id INTEGER PRIMARY KEY,
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            session_hash TEXT NOT NULL UNIQUE,
            language TEXT NOT NULL DEFAULT 'fr' CHECK (language IN ('fr', 'en')),
            engine TEXT NOT NULL DEFAULT 'guided' CHECK (engine IN ('guided', 'assistant')),
            state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'lead', 'closed', 'erased')),
            flow TEXT NOT NULL DEFAULT '{}',
            consent_text TEXT NOT NULL,
            consent_version TEXT NOT NULL,
            consent_at TEXT NOT NULL,
            answered_through INTEGER NOT NULL DEFAULT 0,
            reply_due_at TEXT,
            taken_over_by INTEGER REFERENCES users(id),
            taken_over_at TEXT,
            lead_id INTEGER REFERENCES leads(id),
            created_at TEXT NOT NULL,
            visitor_at TEXT NOT NULL,
            visitor_seen_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
        "CREATE INDEX chat_conversations_business ON chat_conversations(business_id, updated_at)",
        "CREATE INDEX chat_conversations_open ON chat_conversations(state, visitor_at)",
        "CREATE INDEX chat_conversations_lead ON chat_conversations(lead_id)",
        """CREATE TABLE chat_messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES chat_conversations(id),
            business_id INTEGER NOT NULL REFERENCES businesses(id),
            role TEXT NOT NULL CHECK (role IN ('visitor', 'assistant', 'team')),
            body TEXT NOT NULL,
            user_id INTEGER REFERENCES users(id),
            created_at TEXT NOT NULL
        )""",
        "CREATE INDEX chat_messages_conversation ON chat_messages(conversation_id, id)",
    )


@migration
def m019_voicemail_states(conn: apsw.Connection) -> None:
    # /metrics counts voicemails by state at every scrape: an index, not a scan of the table.
    _run(conn, "CREATE INDEX voicemails_state ON voicemails(state)")


@migration
def m020_inbox_order(conn: apsw.Connection) -> None:
    # The inbox's first page, in its own order (urgent new leads first, then newest): read 26
    # index entries of this business instead of all its leads then a sort. At 1M leads, a
    # business's rows are scattered through the file, and that sort read each of their pages.
    _run(conn, "CREATE INDEX leads_inbox ON leads(business_id, (urgent = 1 AND status = 'new') DESC,"
               " created_at DESC, id DESC)")


# What m021's search index splits words on besides the ones the tokenizer sees: every ASCII
# character that is not a letter or a digit, and the punctuation and spaces French and
# English text typed on phones carries. Frozen with m021 (its index was built with it).
_M021_SEPARATORS = (
    "\t\n\r!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "\u00a0\u00a1\u00a2\u00a3\u00a4\u00a5\u00a6\u00a7\u00a8\u00a9\u00ab\u00ac\u00ad\u00ae\u00af\u00b0\u00b1"
    "\u00b4\u00b6\u00b7\u00b8\u00bb\u00bf\u00d7\u00f7"
    "\u2009\u200b\u2010\u2011\u2012\u2013\u2014\u2015\u2018\u2019\u201a\u201c\u201d\u201e\u2022\u2026\u202f"
    "\u2032\u2033\u20ac\u2122\u2212\ufeff"
)
_M021_FIELDS = ("first_name", "last_name", "search_phone", "email", "need", "notes", "transcript")


def _m021_terms(row: str) -> str:
    """The SQL that gives a lead's searchable words, each glued to its business's mark
    ("b<id>z"): 'Hélène Côté' of business 17 -> 'b17zHélène b17zCôté'. `row` is the
    trigger's `new`/`old`, or `leads` for the view."""
    text = f"concat_ws(' ', {', '.join(f'{row}.{f}' for f in _M021_FIELDS)})"
    for char in _M021_SEPARATORS:
        literal = "'" + char.replace("'", "''") + "'" if " " < char < "\x7f" else f"char({ord(char)})"
        text = f"replace({text}, {literal}, ' ')"
    for _ in range(3):  # runs of up to 8 spaces become one: fewer empty marks
        text = f"replace({text}, '  ', ' ')"
    mark = f"'b' || {row}.business_id || 'z'"
    return f"{mark} || replace(trim({text}), ' ', ' ' || {mark})"


@migration
def m021_search_by_business(conn: apsw.Connection) -> None:
    # Search, partitioned by business. m006's index held every business's words side by
    # side, a tenant token beside them: a prefix query ("hél"*) first gathered the entries
    # of every word of every business that starts so, then kept this business's. Its cost
    # grew with the whole index. Here each word is indexed glued to its business's mark
    # ("b17zhelene"), so "b17zhel"* only reads business 17's words. Same tokenizer (accents
    # and case folded), same fields (phone tails included); the index is rebuilt from the
    # leads, and secure-delete is on before the first word is written (Law 25: an erased
    # word leaves the index). What is indexed is the view leads_search, which also lets
    # FTS5's 'rebuild' and 'integrity-check' read it.
    columns = ", ".join(_M021_FIELDS)
    _run(
        conn,
        "DROP TRIGGER leads_fts_insert",
        "DROP TRIGGER leads_fts_delete",
        "DROP TRIGGER leads_fts_update",
        "DROP TABLE leads_fts",
        f"CREATE VIEW leads_search (id, terms) AS SELECT leads.id, {_m021_terms('leads')} FROM leads",
        """CREATE VIRTUAL TABLE leads_fts USING fts5(
            terms, content='leads_search', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
        )""",
        "INSERT INTO leads_fts(leads_fts, rank) VALUES ('secure-delete', 1)",
        f"""CREATE TRIGGER leads_fts_insert AFTER INSERT ON leads BEGIN
            INSERT INTO leads_fts(rowid, terms) VALUES (new.id, {_m021_terms('new')});
        END""",
        f"""CREATE TRIGGER leads_fts_delete AFTER DELETE ON leads BEGIN
            INSERT INTO leads_fts(leads_fts, rowid, terms) VALUES ('delete', old.id, {_m021_terms('old')});
        END""",
        f"""CREATE TRIGGER leads_fts_update AFTER UPDATE OF business_id, {columns.replace('search_phone', 'phone')}
            ON leads BEGIN
            INSERT INTO leads_fts(leads_fts, rowid, terms) VALUES ('delete', old.id, {_m021_terms('old')});
            INSERT INTO leads_fts(rowid, terms) VALUES (new.id, {_m021_terms('new')});
        END""",
        "INSERT INTO leads_fts(leads_fts) VALUES ('rebuild')",
    )


@migration
def m022_inbox_filters_in_order(conn: apsw.Connection) -> None:
    # A status tab, and the views of who handles a lead ("my leads", "unassigned"), read
    # their first page in the inbox's order too: 26 entries of this business and status (or
    # assignee) instead of all of them, then a sort. These two indexes replace m002's
    # (business_id, status, created_at) and m013's (business_id, assigned_to), which are
    # their first columns (the tab counts read the first). All three orders carry the
    # columns the inbox filters on (status, channel, who handles it) after the id: a filter,
    # or a search's list of ids, is checked in the index, and only the rows shown are read
    # from the table.
    order = "(urgent = 1 AND status = 'new') DESC, created_at DESC, id DESC"
    _run(
        conn,
        "DROP INDEX leads_inbox",
        f"CREATE INDEX leads_inbox ON leads(business_id, {order}, status, channel, assigned_to)",
        "DROP INDEX leads_business_status",
        f"CREATE INDEX leads_inbox_status ON leads(business_id, status, {order}, channel, assigned_to)",
        "DROP INDEX leads_assigned",
        f"CREATE INDEX leads_inbox_assigned ON leads(business_id, assigned_to, {order}, status, channel)",
    )


def apply(db_path: str | Path) -> list[str]:
    """Apply pending migrations, in order; returns the names applied (empty when up
    to date). Safe to run from two processes at once: each migration is applied by one.
    A migration that fails is rolled back with its ledger row, and its error raised."""
    db = Database(db_path)
    try:
        if not _has_table(db.reader(), "schema_migrations"):
            _create_ledger(db)
        done = _applied(db.reader())
        applied = []
        for fn in MIGRATIONS:
            name = fn.__name__
            if name in done:
                continue
            with db.write() as conn:
                # Read again under the write lock: another process may have applied it meanwhile.
                if name in _applied(conn):
                    continue
                fn(conn)
                conn.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                             (name, clock.now_iso()))
            applied.append(name)
        _index_secure_delete(db)
        return applied
    finally:
        db.close()


def pending(db_path: str | Path) -> list[str]:
    """Names of migrations not yet applied, in order (reads only; a database that does
    not exist yet has them all pending)."""
    if not Path(db_path).exists():
        return [fn.__name__ for fn in MIGRATIONS]
    db = Database(db_path)
    try:
        conn = db.reader()
        # Before the first apply(), the names it will copy over from sqlite-utils's ledger.
        done = _applied(conn) if _has_table(conn, "schema_migrations") else _legacy_applied(conn)
        return [fn.__name__ for fn in MIGRATIONS if fn.__name__ not in done]
    finally:
        db.close()


def _has_table(conn: apsw.Connection, name: str) -> bool:
    return bool(list(conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))))


def _applied(conn: apsw.Connection) -> set[str]:
    return {r["name"] for r in conn.execute("SELECT name FROM schema_migrations")}


def _legacy_applied(conn: apsw.Connection) -> set[str]:
    if not _has_table(conn, _LEGACY_LEDGER):
        return set()
    return {r["name"] for r in conn.execute(
        f"SELECT name FROM {_LEGACY_LEDGER} WHERE migration_set = ?", (_LEGACY_SET,))}


def _create_ledger(db: Database) -> None:
    """Create `schema_migrations`, taking over sqlite-utils's ledger where there is one.
    The check is repeated in the write transaction, for the process that lost the race."""
    with db.write() as conn:
        if _has_table(conn, "schema_migrations"):
            return
        conn.execute(_LEDGER_SQL)
        if _has_table(conn, _LEGACY_LEDGER):
            # Left in place (not dropped): it costs nothing and keeps the history.
            conn.execute(f"INSERT INTO schema_migrations (name, applied_at) SELECT name, coalesce(applied_at, '')"
                         f" FROM {_LEGACY_LEDGER} WHERE migration_set = ? ORDER BY rowid", (_LEGACY_SET,))


def _index_secure_delete(db: Database) -> None:
    """FTS5 keeps a deleted row's words in old index segments until they are merged,
    unless its secure-delete option is on. Turned on in the same run as the migration
    that creates the index, before any lead is written, so an erased name never lingers
    in the search index (Law 25). Checked at every run rather than filed as a migration:
    it holds again if a later migration ever rebuilds `leads_fts`; a no-op once set."""
    check = "SELECT 1 FROM leads_fts_config WHERE k = 'secure-delete' AND v = 1"
    if list(db.reader().execute(check)):
        return
    with db.write() as conn:
        if not list(conn.execute(check)):
            conn.execute("INSERT INTO leads_fts(leads_fts, rank) VALUES ('secure-delete', 1)")
