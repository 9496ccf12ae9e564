"""Outgoing SMS, kept in `capteo.db` until Twilio has taken them.

A message is written in the same transaction as what it announces; the queue
only wakes the sender. Sending claims the row first (pending -> sending), so two
workers never send one message twice; a claim older than CLAIM_TIMEOUT belonged
to a worker that died mid-send and is taken back (at-least-once for that rare case).
Texts never hold personal data: a link to the dashboard, which asks for sign-in.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import cast

import apsw

from app import clock, i18n
from app.db import Database
from app.messaging.twilio import TwilioClient, TwilioError

MAX_ATTEMPTS = 10
CLAIM_TIMEOUT = timedelta(minutes=5)


def backoff(attempts: int) -> timedelta:
    """1 min, 2, 4, ... capped at 1 h."""
    return timedelta(seconds=min(60 * 2 ** max(attempts - 1, 0), 3600))


def queue_new_lead_sms(conn: apsw.Connection, *, business: dict, lead_id: int, public_url: str,
                       urgent: bool = False) -> list[int]:
    """One SMS per notification phone of the business, in the business's language."""
    lang = business.get("language") or "fr"
    link = f"{public_url}/{lang}/app/leads/{lead_id}"
    text = (i18n.gettext_in(lang, "URGENT request on Capteo — %(link)s") if urgent
            else i18n.gettext_in(lang, "New request on Capteo — %(link)s")) % {"link": link}
    return [queue(conn, business_id=business["id"], lead_id=lead_id, kind="owner_new_lead", to=phone, body=text)
            for phone in json.loads(business.get("notify_phones") or "[]")]


def queue_assigned_sms(conn: apsw.Connection, *, business: dict, lead_id: int, to: str, lang: str,
                       public_url: str) -> int:
    """Tell a team member a lead was given to them, in their own language: the business's
    name and a link to the lead (which asks for sign-in), nothing about the client."""
    lang = lang if lang in ("fr", "en") else "fr"
    link = f"{public_url}/{lang}/app/leads/{lead_id}"
    text = i18n.gettext_in(lang, "%(business)s: a request was assigned to you — %(link)s") % {
        "business": business["name"], "link": link}
    return queue(conn, business_id=business["id"], lead_id=lead_id, kind="assigned", to=to, body=text)


def queue_webhook_disabled_sms(conn: apsw.Connection, *, business: dict, public_url: str) -> list[int]:
    """Tell the owners a webhook endpoint was turned off after a day of failures."""
    lang = business.get("language") or "fr"
    link = f"{public_url}/{lang}/app/settings/integrations"
    text = i18n.gettext_in(lang, "%(business)s: a webhook was turned off after 24 hours of failures — %(link)s") % {
        "business": business["name"], "link": link}
    return [queue(conn, business_id=business["id"], lead_id=None, kind="webhook_disabled", to=phone, body=text)
            for phone in json.loads(business.get("notify_phones") or "[]")]


# Characters outside the GSM 03.38 alphabet make an SMS UCS-2: 70 characters a part
# instead of 160, so twice the parts and twice the cost for the same text.
_GSM_FRIENDLY = str.maketrans({"\u2014": "-", "\u2013": "-", "\u202f": " ", "\u00a0": " ", "\u2019": "'",
                               "\u00ab": '"', "\u00bb": '"'})


def queue(conn: apsw.Connection, *, business_id: int, lead_id: int | None, kind: str, to: str, body: str) -> int:
    """Put one SMS in the outbox, in the caller's transaction; returns its id."""
    body = body.translate(_GSM_FRIENDLY)
    now = clock.now_iso()
    conn.execute(
        "INSERT INTO outbox (business_id, lead_id, kind, to_phone, body, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (business_id, lead_id, kind, to, body, now, now),
    )
    return conn.last_insert_rowid()


def pending_for_lead(db: Database, lead_id: int) -> list[int]:
    """A committed lead's messages not yet sent, to wake at once."""
    return [r["id"] for r in db.query("SELECT id FROM outbox WHERE lead_id = ? AND status = 'pending'", (lead_id,))]


def due(db: Database, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Messages to try now: pending and due, or claimed by a worker that died."""
    now = now or clock.now()
    return [r["id"] for r in db.query(
        """SELECT id FROM outbox
           WHERE (status = 'pending' AND next_attempt_at <= ?)
              OR (status = 'sending' AND claimed_at <= ?)
           ORDER BY next_attempt_at LIMIT ?""",
        (now.isoformat(timespec="seconds"), (now - CLAIM_TIMEOUT).isoformat(timespec="seconds"), limit),
    )]


def send(db: Database, client: TwilioClient | None, message_id: int, now: datetime | None = None) -> str:
    """Try to send one message; returns its status afterwards. Without a client
    (Twilio not configured) nothing is attempted and the message stays pending."""
    now = now or clock.now()
    stamp = now.isoformat(timespec="seconds")
    if client is None:
        return "pending"
    with db.write() as conn:
        claimed = conn.execute(
            """UPDATE outbox SET status = 'sending', claimed_at = ?, attempts = attempts + 1
               WHERE id = ? AND ((status = 'pending' AND next_attempt_at <= ?)
                                 OR (status = 'sending' AND claimed_at <= ?))
               RETURNING to_phone, body, attempts""",
            (stamp, message_id, stamp, (now - CLAIM_TIMEOUT).isoformat(timespec="seconds")),
        ).fetchall()
    if not claimed:
        row = db.query_one("SELECT status FROM outbox WHERE id = ?", (message_id,))
        return row["status"] if row else "missing"
    msg = cast(dict, claimed[0])  # rows are dicts (db.connect's row trace)
    try:
        sid = client.send(msg["to_phone"], msg["body"])
    except TwilioError as e:
        give_up = not e.retryable or msg["attempts"] >= MAX_ATTEMPTS
        status = "failed" if give_up else "pending"
        with db.write() as conn:
            conn.execute(
                """UPDATE outbox SET status = ?, claimed_at = NULL, error_code = ?, error_message = ?,
                   next_attempt_at = ? WHERE id = ?""",
                (status, e.code, e.message[:500], (now + backoff(msg["attempts"])).isoformat(timespec="seconds"),
                 message_id),
            )
        return status
    with db.write() as conn:
        conn.execute(
            """UPDATE outbox SET status = 'sent', claimed_at = NULL, provider_id = ?, sent_at = ?,
               error_code = NULL, error_message = NULL WHERE id = ?""",
            (sid, clock.now_iso(), message_id),
        )
    return "sent"


def for_lead(db: Database, business_id: int, lead_id: int) -> list[dict]:
    return db.query(
        "SELECT * FROM outbox WHERE business_id = ? AND lead_id = ? ORDER BY id", (business_id, lead_id)
    )


def queue_billing_read_only_sms(conn: apsw.Connection, *, business: dict, public_url: str) -> list[int]:
    """Tell the owners their dashboard became read-only (billing): the business's name and a
    link to the billing page; the public form still takes requests for a while."""
    lang = business.get("language") or "fr"
    link = f"{public_url}/{lang}/app/billing"
    text = i18n.gettext_in(lang, "%(business)s: your Capteo dashboard is read-only until the subscription is "
                                 "paid. Your clients can still send requests for now — %(link)s") % {
        "business": business["name"], "link": link}
    phones = list(dict.fromkeys(json.loads(business.get("notify_phones") or "[]")))
    return [queue(conn, business_id=business["id"], lead_id=None, kind="billing_read_only", to=phone, body=text)
            for phone in phones]
