"""Leaving with everything: the whole business exported in one archive, and closing the account.

Export: a ZIP (built in a temporary file, streamed out) with `README.txt` (the schema below,
versioned), `business.json`, and for each table one `.json` (an array of objects) and one `.csv`
(UTF-8 with a BOM, a header row, the same columns in the same order; a cell a spreadsheet would
read as a formula is prefixed with an apostrophe, the JSON is never altered). Only the business's
own rows; the export is audited (`business.export`).

Closing: `closed_at` is set, every session in the business ends (but the closing owner's), its
public doors (form, voicemail API, VoIP.ms polling, calendar feed) answer that it no longer takes
requests, its dashboard is the reopen page; the Paddle subscription is canceled (a refusal is
recorded and told, never blocks). Nothing personal is erased for REOPEN_WITHIN: `reopen` brings
everything back. After that, `finalize_due` (called by the retention sweep) erases everything
personal with the retention's no-trace anonymization, deletes the team's accounts that belong to
no other business, and keeps the business's row (so its form address stays retired, never reused).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any

import apsw
from litestar.exceptions import HTTPException

from app import audit, billing, businesses, chat, clock
from app.billing import paddle
from app.config import Config
from app.db import Database
from app.leads.fields import LEAD_FIELDS
from app.privacy import retention

SCHEMA = "capteo-business-export/1"
REOPEN_WITHIN = timedelta(days=7)
ACTOR = "system:closing"
_EXPORTED_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.exported)


class BusinessGone(HTTPException):
    """A public door of a closed business: a translated 410 page saying it takes no requests."""

    status_code = 410


def is_closed(business: dict) -> bool:
    return bool(business.get("closed_at"))


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    sql: str  # one parameter: the business id
    about: str


TABLES = (
    Table("leads", ("id", "reference", "channel", "status", "language", *_EXPORTED_FIELDS, "custom_fields",
                    "consent_at", "consent_text", "consent_version", "client_id", "assigned_to", "urgent",
                    "created_at", "updated_at", "first_contact_at", "archived_at", "anonymized_at"),
          "FROM leads WHERE business_id = ? ORDER BY id",
          "every request received; custom_fields: the answers to the form's own questions, as JSON text "
          "({field id: {kind, label_fr, label_en, value}}); consent_*: when and to what text the person agreed"),
    Table("lead_events", ("id", "lead_id", "at", "user_id", "kind", "data", "body"),
          "FROM lead_events WHERE business_id = ? ORDER BY id",
          "each lead's timeline: status changes, notes (body), calls; data: JSON text"),
    Table("messages", ("id", "lead_id", "kind", "to_phone", "body", "status", "created_at", "sent_at"),
          "FROM outbox WHERE business_id = ? ORDER BY id",
          "text messages (SMS) sent to clients and to the team"),
    Table("clients", ("id", "created_at"), "FROM clients WHERE business_id = ? ORDER BY id",
          "the people behind the leads (leads.client_id names one); their details are on their leads"),
    Table("appointments", ("id", "lead_id", "starts_at", "ends_at", "status", "created_by", "created_at",
                           "updated_at"),
          "FROM appointments WHERE business_id = ? ORDER BY id", "appointments booked"),
    Table("custom_fields", ("id", "position", "kind", "label_fr", "label_en", "required", "options", "active"),
          "FROM custom_fields WHERE business_id = ? ORDER BY position, id",
          "the form's own questions; options: JSON text"),
    Table("voicemails", ("id", "lead_id", "caller_id", "duration_s", "transcript", "language", "state", "source",
                         "created_at", "audio_deleted_at"),
          "FROM voicemails WHERE business_id = ? ORDER BY id",
          "voicemail metadata and transcripts; the audio recordings are NOT in this archive"),
    Table("chat_conversations", ("id", "state", "language", "lead_id", "consent_at", "consent_text",
                                 "consent_version", "created_at", "updated_at"),
          "FROM chat_conversations WHERE business_id = ? AND state != 'erased' ORDER BY id",
          "conversations on the chat page; lead_id: the lead a conversation became"),
    Table("chat_messages", ("id", "conversation_id", "role", "body", "created_at"),
          "FROM chat_messages WHERE business_id = ? ORDER BY id",
          "the chat's messages (role: visitor, assistant or team)"),
    Table("privacy_requests", ("id", "kind", "person", "contact", "details", "source", "received_on", "due_on",
                               "status", "answer", "answered_at", "created_at"),
          "FROM privacy_requests WHERE business_id = ? ORDER BY id", "the register of Law 25 requests"),
    Table("webhook_endpoints", ("id", "url", "events", "fields", "enabled", "disabled_reason", "created_at",
                                "updated_at"),
          "FROM webhook_endpoints WHERE business_id = ? ORDER BY id",
          "integrations (webhooks); their signing secrets are NOT exported"),
    Table("team", ("email", "name", "role"),
          "FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.business_id = ? ORDER BY m.role DESC, u.email",
          "the team's accounts (never a password)"),
    Table("audit_log", ("id", "at", "actor", "action", "entity", "entity_id", "fields"),
          "FROM audit_log WHERE business_id = ? ORDER BY id",
          "the business's audit entries: who did what, when (fields: the names of the fields touched, JSON text)"),
)
_QUALIFIED = {"team": ("u.email", "u.name", "m.role")}
BUSINESS_KEYS = ("name", "slug", "phone", "timezone", "language", "hours", "notify_phones", "embed_domains",
                 "greeting_fr", "greeting_en", "trade", "service_area", "callback_hours", "created_at", "billing_state",
                 "closed_at")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def readme() -> str:
    lines = [f"Capteo business export — schema {SCHEMA}", "",
             "Every file of this archive and every column. Each table comes twice, with the same rows:",
             "  NAME.json  a JSON array of objects, one per row, keyed by the columns below (null: empty);",
             "  NAME.csv   UTF-8 with a byte-order mark, a header row, the same columns in the same order;",
             "             a cell starting with = + - @ (a formula to a spreadsheet) is prefixed with '.",
             "Dates are ISO 8601. Ids link the tables (lead_id, client_id, user_id: ids of this export).",
             "Voicemail audio recordings are not included: only their metadata and transcripts.",
             "Webhook signing secrets are not included.", "",
             "business.json", f"  {', '.join(('schema', 'generated_at', *BUSINESS_KEYS))}", ""]
    for t in TABLES:
        lines += [f"{t.name}.json, {t.name}.csv — {t.about}", f"  columns: {', '.join(t.columns)}", ""]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _rows(conn: apsw.Connection, table: Table, business_id: int) -> Iterator[dict[str, Any]]:
    cols = ", ".join(_QUALIFIED.get(table.name, table.columns))
    for row in conn.execute(f"SELECT {cols} {table.sql}", (business_id,)):
        yield {c: row[c] for c in table.columns}


def build_archive(db: Database, business_id: int, *, actor: str) -> IO[bytes]:
    """The archive, in a temporary file positioned at its start (the caller closes it). Read in one
    read transaction: every file holds the same moment. Audited."""
    business = businesses.get(db, business_id)
    out = tempfile.TemporaryFile()  # noqa: SIM115 (the caller streams then closes it)
    conn = db.reader()
    conn.execute("BEGIN")
    try:
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("README.txt", readme())
            zf.writestr("business.json", json.dumps(
                {"schema": SCHEMA, "generated_at": clock.now_iso(), **{k: business.get(k) for k in BUSINESS_KEYS}},
                ensure_ascii=False, indent=2))
            for table in TABLES:
                with zf.open(f"{table.name}.json", "w") as raw:
                    raw.write(b"[")
                    for n, row in enumerate(_rows(conn, table, business_id)):
                        raw.write((b",\n" if n else b"\n") + json.dumps(row, ensure_ascii=False).encode())
                    raw.write(b"\n]\n")
                with zf.open(f"{table.name}.csv", "w") as raw, \
                        io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
                    writer = csv.writer(text)
                    writer.writerow(table.columns)
                    for row in _rows(conn, table, business_id):
                        writer.writerow([_cell(row[c]) for c in table.columns])
    finally:
        conn.execute("COMMIT")
    with db.write() as wconn:
        audit.record(wconn, actor=actor, action="business.export", entity="business", entity_id=business_id,
                     business_id=business_id, fields=[t.name for t in TABLES])
    out.seek(0)
    return out


def chunks(fh: IO[bytes], size: int = 64 * 1024) -> Iterator[bytes]:
    try:
        while block := fh.read(size):
            yield block
    finally:
        fh.close()


# ---- closing ------------------------------------------------------------------------------------

def what_is_lost(db: Database, business_id: int) -> dict[str, int]:
    """What closing erases after REOPEN_WITHIN, counted for the confirmation page."""
    one = lambda sql: db.one(sql, (business_id,))["n"]  # noqa: E731
    return {"leads": one("SELECT count(*) AS n FROM leads WHERE business_id = ? AND status != 'anonymized'"),
            "clients": one("SELECT count(*) AS n FROM clients WHERE business_id = ?"),
            "recordings": one("SELECT count(*) AS n FROM voicemails WHERE business_id = ? AND audio_path IS NOT NULL"),
            "members": one("SELECT count(*) AS n FROM memberships WHERE business_id = ?")}


def final_in(conn: apsw.Connection, business_id: int) -> bool:
    """Whether the business's closing became final (its personal data erased)."""
    return any(True for _ in conn.execute(
        "SELECT 1 FROM audit_log WHERE business_id = ? AND action = 'business.close.final' LIMIT 1",
        (business_id,)))


def reopen_until(business: dict) -> datetime | None:
    closed = business.get("closed_at")
    return datetime.fromisoformat(closed) + REOPEN_WITHIN if closed else None


@dataclass(frozen=True)
class Closed:
    subscription_canceled: bool
    cancel_failed: bool


def close(db: Database, config: Config, business_id: int, *, actor: str, keep_token: str | None) -> Closed:
    """Close the business (reversible for REOPEN_WITHIN). `keep_token`: the closing owner's session
    cookie, which stays so they land on the reopen page. Then cancel the Paddle subscription."""
    with db.write() as conn:
        if businesses.closed_at_in(conn, business_id):
            return Closed(False, False)
        businesses.set_closed(conn, business_id, clock.now_iso())
        conn.execute("DELETE FROM sessions WHERE business_id = ? AND token_hash IS NOT ?",
                     (business_id, businesses.token_hash(keep_token) if keep_token else None))
        audit.record(conn, actor=actor, action="business.close", entity="business", entity_id=business_id,
                     business_id=business_id, fields=["closed_at"])
    settings = billing.settings(config)
    subscription = (businesses.billing_of(db, business_id) or {}).get("paddle_subscription_id")
    if settings is None or not subscription:
        return Closed(False, False)
    try:
        paddle.PaddleClient(settings.api_base, settings.api_key).cancel_subscription(subscription)
    except paddle.PaddleError:
        with db.write() as conn:
            audit.record(conn, actor=actor, action="billing.cancel_failed", entity="business",
                         entity_id=business_id, business_id=business_id, fields=["paddle_subscription_id"])
        return Closed(False, True)
    with db.write() as conn:
        audit.record(conn, actor=actor, action="billing.cancel", entity="business", entity_id=business_id,
                     business_id=business_id, fields=["paddle_subscription_id"])
    return Closed(True, False)


def reopen(db: Database, business_id: int, *, actor: str) -> bool:
    """Reopen a closed business within REOPEN_WITHIN: nothing was erased, everything is back."""
    with db.write() as conn:
        closed = businesses.closed_at_in(conn, business_id)
        if not closed or final_in(conn, business_id) \
                or clock.now() >= datetime.fromisoformat(closed) + REOPEN_WITHIN:
            return False
        businesses.set_closed(conn, business_id, None)
        audit.record(conn, actor=actor, action="business.reopen", entity="business", entity_id=business_id,
                     business_id=business_id, fields=["closed_at"])
    return True


_USER_REFERENCES = (
    "UPDATE lead_events SET user_id = NULL WHERE user_id = ?1",
    "UPDATE appointments SET created_by = NULL WHERE created_by = ?1",
    "UPDATE leads SET assigned_to = NULL WHERE assigned_to = ?1",
    "UPDATE invitations SET user_id = NULL WHERE user_id = ?1",
    "UPDATE invitations SET created_by = NULL WHERE created_by = ?1",
    "DELETE FROM lead_reads WHERE user_id = ?1",
    "DELETE FROM password_resets WHERE user_id = ?1",
    "DELETE FROM policy_notices_dismissed WHERE user_id = ?1",
    "DELETE FROM sessions WHERE user_id = ?1",
)


def _forget_user(conn: apsw.Connection, user_id: int) -> None:
    """Delete an account that belongs to no business any more; should a table we do not know
    still point at it, its personal columns are erased instead."""
    conn.execute("SAVEPOINT forget_user")
    try:
        for sql in _USER_REFERENCES:
            conn.execute(sql, (user_id,))
        conn.execute("DELETE FROM users WHERE id = ?", (user_id,))
    except apsw.ConstraintError:
        conn.execute("ROLLBACK TO forget_user")
        conn.execute("UPDATE users SET email = ?, name = NULL, phone = NULL, password_hash = NULL WHERE id = ?",
                     (f"deleted-{user_id}@invalid", user_id))
    conn.execute("RELEASE forget_user")


def finalize(db: Database, config: Config, business_id: int) -> None:
    """Erase everything personal of a closed business, in one transaction, then checkpoint."""
    now = clock.now_iso()
    with db.write() as conn:
        for lead in list(conn.execute("SELECT * FROM leads WHERE business_id = ? ORDER BY id", (business_id,))):
            retention.anonymize(conn, config, lead, actor=ACTOR, reason="closing")
        for vm in list(conn.execute(
                """SELECT * FROM voicemails WHERE business_id = ? AND (audio_path IS NOT NULL OR caller_id IS NOT NULL
                   OR transcript IS NOT NULL OR extraction IS NOT NULL) ORDER BY id""", (business_id,))):
            retention.erase_voicemail(conn, config, vm, actor=ACTOR, reason="closing", now=now)
        for conversation in list(conn.execute("SELECT id FROM chat_conversations WHERE business_id = ?"
                                              " AND state != 'erased'", (business_id,))):
            chat.erase(conn, conversation["id"], actor=ACTOR, business_id=business_id, reason="closing")
        conn.execute("UPDATE outbox SET to_phone = '', body = '' WHERE business_id = ?", (business_id,))
        conn.execute("DELETE FROM webhook_deliveries WHERE business_id = ?", (business_id,))
        conn.execute("DELETE FROM webhook_events WHERE business_id = ?", (business_id,))
        conn.execute("DELETE FROM webhook_endpoints WHERE business_id = ?", (business_id,))
        conn.execute("UPDATE privacy_requests SET person = '', contact = '', details = '', answer = NULL "
                     "WHERE business_id = ?", (business_id,))
        conn.execute("UPDATE leads SET client_id = NULL WHERE business_id = ?", (business_id,))
        conn.execute("DELETE FROM clients WHERE business_id = ?", (business_id,))
        conn.execute("DELETE FROM lead_reads WHERE lead_id IN (SELECT id FROM leads WHERE business_id = ?)",
                     (business_id,))
        conn.execute("DELETE FROM invitations WHERE business_id = ?", (business_id,))
        conn.execute("DELETE FROM sessions WHERE business_id = ?", (business_id,))
        members = [r["user_id"] for r in conn.execute("SELECT user_id FROM memberships WHERE business_id = ?",
                                                      (business_id,))]
        conn.execute("DELETE FROM memberships WHERE business_id = ?", (business_id,))
        forgotten = 0
        for user_id in members:
            if not list(conn.execute("SELECT 1 FROM memberships WHERE user_id = ?", (user_id,))):
                _forget_user(conn, user_id)
                forgotten += 1
        businesses.erase_contact(conn, business_id)
        audit.record(conn, actor=ACTOR, action="business.close.final", entity="business", entity_id=business_id,
                     business_id=business_id, fields=["leads", "voicemails", "chats", "clients", "messages", "webhooks",
                                                      "privacy_requests", "team", "phone", "notify_phones"])
    retention.checkpoint(db, config)


def finalize_due(db: Database, config: Config, as_of: datetime | None = None) -> list[int]:
    """Every business closed more than REOPEN_WITHIN before `as_of` (now) and not yet final: a
    catch-up, like the retention sweep that calls it."""
    as_of = as_of or clock.now()
    done = []
    for business_id in businesses.closed_before(db, (as_of - REOPEN_WITHIN).isoformat(timespec="seconds")):
        if not final_in(db.reader(), business_id):
            finalize(db, config, business_id)
            done.append(business_id)
    return done
