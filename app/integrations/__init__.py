"""Webhooks: a business's own tools (a CRM, Zapier, Make, n8n, a dispatch app) told of
what happens to its leads, in the Standard Webhooks format.

The life of an event:
1. A change commits (a lead created, its status, assignment or a correction, an
   appointment, a transcript, an anonymization); a trigger (m016) writes a row in
   `webhook_events` in the same transaction, ids and a type only, and only while the
   business has an enabled endpoint.
2. `dispatch` turns each event into one delivery per subscribed endpoint, in one
   transaction: the JSON body is written then (the lead as it is, with only the fields
   the owner ticked), and the event row is deleted.
3. `send` claims a delivery (pending → sending), checks the URL with the SSRF guard
   (guard.py: resolved once, connected to that address), signs the body (`webhook-id`,
   `webhook-timestamp`, `webhook-signature: v1,<HMAC>` — both secrets during a rotation)
   and posts it. 2xx: delivered. A network error, a timeout, 408, 429 (its `Retry-After`
   honoured) or 5xx: tried again with exponential backoff and jitter, for 24 hours from
   the event. Any other answer (a 4xx, a redirect): given up at once.
4. An endpoint failing for 24 hours is disabled, and the owners are told by SMS.

At least once: a worker killed between the post and its record sends again, with the
same `webhook-id`, which receivers use to drop the repeat. Nothing leaves but to the
business's own endpoint; an anonymized lead's bodies are erased and its pending
deliveries canceled (trigger), and what was sent (field names) is in the audit log.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import apsw
from standardwebhooks.webhooks import Webhook

from app import audit, businesses, clock
from app.config import Config
from app.db import Database
from app.i18n import N_
from app.integrations import guard
from app.leads.fields import LEAD_FIELDS
from app.messaging import outbox

EVENT_TYPES = ("lead.created", "lead.updated", "lead.anonymized", "appointment.booked", "appointment.moved",
               "appointment.canceled", "voicemail.transcribed")
EVENT_LABELS = {
    "lead.created": N_("A request is received"),
    "lead.updated": N_("A request changes (status, assignment, correction)"),
    "lead.anonymized": N_("A request is anonymized"),
    "appointment.booked": N_("An appointment is booked"),
    "appointment.moved": N_("An appointment is moved"),
    "appointment.canceled": N_("An appointment is cancelled"),
    "voicemail.transcribed": N_("A voice message is transcribed"),
}
TEST_EVENT = "webhook.test"
# The body's schema, versioned: `type`, `timestamp`, `version`, `data` (README, "Webhooks").
SCHEMA_VERSION = "2026-11-30"
# Personal fields an owner may add to what is sent; by default none.
PERSONAL_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.personal and f.exported)
RETRY_FOR = timedelta(hours=24)
DISABLE_AFTER = timedelta(hours=24)
ROTATION_OVERLAP = timedelta(hours=24)
CLAIM_TIMEOUT = timedelta(minutes=5)
RESPONSE_KEPT = 300  # bytes of the answer kept in the delivery log
LOG_KEPT = timedelta(days=30)  # a delivery, with what it sent, is kept this long once finished
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class EndpointError(ValueError):
    """An endpoint the owner cannot save; str(e) is a msgid."""


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _now() -> str:
    return clock.now_iso()


# ---- endpoints -------------------------------------------------------------------------------

def _clean(events: list[str], fields: list[str]) -> tuple[list[str], list[str]]:
    events = [e for e in EVENT_TYPES if e in set(events)]
    if not events:
        raise EndpointError(N_("Choose at least one event."))
    return events, [f for f in PERSONAL_FIELDS if f in set(fields)]


def check_url(url: str, config: Config) -> str:
    """The URL as it will be used, or EndpointError with the guard's reason."""
    url = (url or "").strip()
    if not url or len(url) > 2000:
        raise EndpointError(N_("Enter the https address of your tool's webhook."))
    try:
        guard.check(url, config)
    except guard.Refused as e:
        raise EndpointError(REFUSALS.get(e.code, N_("This address cannot be used: Capteo only calls public https "
                                                      "addresses."))) from e
    return url


REFUSALS = {
    "scheme": N_("The address must start with https://."),
    "unresolvable": N_("This address's name does not exist (check for a typo)."),
    "port": N_("Only the usual https ports (443 and 8443) can be called."),
}


def create_endpoint(db: Database, config: Config, business_id: int, *, url: str, events: list[str],
                    fields: list[str], actor: str) -> tuple[int, str]:
    """A new endpoint; returns (id, secret). The secret is shown once, then only used."""
    url = check_url(url, config)
    events, fields = _clean(events, fields)
    secret = new_secret()
    with db.write() as conn:
        conn.execute(
            "INSERT INTO webhook_endpoints (business_id, url, events, fields, secret, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (business_id, url, json.dumps(events), json.dumps(fields), secret, _now(), _now()))
        endpoint_id = conn.last_insert_rowid()
        audit.record(conn, actor=actor, action="webhook.create", entity="webhook_endpoint", entity_id=endpoint_id,
                     business_id=business_id, fields=fields)
    return endpoint_id, secret


def _decode(row: dict | None) -> dict | None:
    if row is None:
        return None
    return row | {"events": json.loads(row["events"]), "fields": json.loads(row["fields"])}


def endpoints(db: Database, business_id: int) -> list[dict]:
    rows = db.query("SELECT * FROM webhook_endpoints WHERE business_id = ? ORDER BY id", (business_id,))
    return [d for d in map(_decode, rows) if d]


def endpoint(db: Database, business_id: int, endpoint_id: int) -> dict | None:
    return _decode(db.query_one("SELECT * FROM webhook_endpoints WHERE id = ? AND business_id = ?",
                                (endpoint_id, business_id)))


def update_endpoint(db: Database, config: Config, business_id: int, endpoint_id: int, *, url: str,
                    events: list[str], fields: list[str], enabled: bool, actor: str) -> bool:
    url = check_url(url, config)
    events, fields = _clean(events, fields)
    with db.write() as conn:
        changed = list(conn.execute(
            "UPDATE webhook_endpoints SET url = ?, events = ?, fields = ?, enabled = ?, "
            "disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, "
            "failing_since = CASE WHEN ? THEN NULL ELSE failing_since END, updated_at = ? "
            "WHERE id = ? AND business_id = ? RETURNING id",
            (url, json.dumps(events), json.dumps(fields), int(enabled), enabled, enabled, _now(), endpoint_id,
             business_id)))
        if changed:
            # What waits was built for the old settings: turned off or with fewer fields, it does not go out.
            conn.execute("UPDATE webhook_deliveries SET status = 'canceled', body = NULL, "
                         "last_error = 'endpoint settings changed' WHERE endpoint_id = ? AND business_id = ? "
                         "AND status = 'pending' AND (? = 0 OR EXISTS (SELECT 1 FROM json_each(fields) "
                         "WHERE value NOT IN (SELECT value FROM json_each(?))))",
                         (endpoint_id, business_id, int(enabled), json.dumps(fields)))
            audit.record(conn, actor=actor, action="webhook.edit", entity="webhook_endpoint",
                         entity_id=endpoint_id, business_id=business_id, fields=fields)
    return bool(changed)


def rotate_secret(db: Database, business_id: int, endpoint_id: int, *, actor: str) -> str | None:
    """A new secret; the old one still signs, beside it, for ROTATION_OVERLAP."""
    secret = new_secret()
    until = (clock.now() + ROTATION_OVERLAP).isoformat(timespec="seconds")
    with db.write() as conn:
        changed = list(conn.execute(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = ?, secret = ?, updated_at = ? "
            "WHERE id = ? AND business_id = ? RETURNING id", (until, secret, _now(), endpoint_id, business_id)))
        if not changed:
            return None
        audit.record(conn, actor=actor, action="webhook.rotate", entity="webhook_endpoint", entity_id=endpoint_id,
                     business_id=business_id)
    return secret


def delete_endpoint(db: Database, business_id: int, endpoint_id: int, *, actor: str) -> bool:
    with db.write() as conn:
        changed = list(conn.execute("DELETE FROM webhook_endpoints WHERE id = ? AND business_id = ? RETURNING id",
                                    (endpoint_id, business_id)))
        if changed:
            audit.record(conn, actor=actor, action="webhook.delete", entity="webhook_endpoint",
                         entity_id=endpoint_id, business_id=business_id)
    return bool(changed)


def deliveries(db: Database, business_id: int, endpoint_id: int, limit: int = 50) -> list[dict]:
    return db.query(
        "SELECT id, message_id, event_type, status, attempts, last_status, last_error, last_latency_ms, "
        "last_response, created_at, delivered_at, next_attempt_at, body IS NOT NULL AS has_body "
        "FROM webhook_deliveries WHERE business_id = ? AND endpoint_id = ? ORDER BY id DESC LIMIT ?",
        (business_id, endpoint_id, limit))


# ---- events → deliveries ---------------------------------------------------------------------

def _lead_data(conn: apsw.Connection, business_id: int, lead_id: int | None, fields: list[str],
               public_url: str) -> tuple[dict, list[str]]:
    rows = list(conn.execute("SELECT * FROM leads WHERE id = ? AND business_id = ?", (lead_id, business_id)))
    if not rows:
        return {}, []
    lead = rows[0]
    lang = lead["language"] if lead["language"] in ("fr", "en") else "fr"
    data = {"reference": lead["reference"], "status": lead["status"], "channel": lead["channel"],
            "language": lead["language"], "urgent": bool(lead["urgent"]), "created_at": lead["created_at"],
            "updated_at": lead["updated_at"], "url": f"{public_url}/{lang}/app/leads/{lead['id']}"}
    sent = []
    if lead["status"] != "anonymized":
        for name in fields:
            data[name] = lead[name]
            sent.append(name)
    return data, sent


def _body(conn: apsw.Connection, event: dict, endpoint: dict, public_url: str) -> tuple[dict, list[str]]:
    data, sent = _lead_data(conn, event["business_id"], event["lead_id"], endpoint["fields"], public_url)
    if event["type"] == "lead.updated":
        data["change"] = {"status": "status", "assign": "assignment", "edit": "correction"}.get(event["detail"])
    elif event["type"].startswith("appointment."):
        rows = list(conn.execute("SELECT id, starts_at, ends_at, status FROM appointments WHERE id = ? "
                                 "AND business_id = ?", (event["object_id"], event["business_id"])))
        if rows:
            data["appointment"] = dict(rows[0])
    elif event["type"] == "voicemail.transcribed":
        data["voicemail"] = {"id": event["object_id"]}
    return {"type": event["type"], "timestamp": event["at"], "version": SCHEMA_VERSION, "data": data}, sent


def _insert_delivery(conn: apsw.Connection, endpoint: dict, event_type: str, lead_id: int | None, body: dict,
                     sent: list[str]) -> int:
    conn.execute(
        "INSERT INTO webhook_deliveries (business_id, endpoint_id, message_id, event_type, lead_id, body, fields, "
        "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (endpoint["business_id"], endpoint["id"], "msg_" + secrets.token_hex(12), event_type, lead_id,
         json.dumps(body, ensure_ascii=False, separators=(",", ":")), json.dumps(sent), _now(), _now()))
    return conn.last_insert_rowid()


def dispatch(db: Database, config: Config, limit: int = 500) -> list[int]:
    """Events into deliveries (one per subscribed, enabled endpoint); returns the new ids."""
    created: list[int] = []
    with db.write() as conn:
        events = list(conn.execute("SELECT * FROM webhook_events ORDER BY id LIMIT ?", (limit,)))
        if not events:
            return created
        listening: dict[int, list[dict]] = {}  # business id -> its enabled endpoints, read once
        for event in events:
            if event["business_id"] not in listening:
                listening[event["business_id"]] = [d for d in map(_decode, conn.execute(
                    "SELECT * FROM webhook_endpoints WHERE business_id = ? AND enabled = 1",
                    (event["business_id"],))) if d]
            for endpoint in listening[event["business_id"]]:
                if event["type"] in endpoint["events"]:
                    body, sent = _body(conn, event, endpoint, config.public_url)
                    created.append(_insert_delivery(conn, endpoint, event["type"], event["lead_id"], body, sent))
        # The writer's lock is held: no event came in between, every id up to the last was read.
        conn.execute("DELETE FROM webhook_events WHERE id <= ?", (events[-1]["id"],))
    return created


def send_test(db: Database, business_id: int, endpoint_id: int, *, actor: str) -> int | None:
    """A `webhook.test` delivery to this endpoint (enabled or not), with made-up data."""
    found = endpoint(db, business_id, endpoint_id)
    if found is None:
        return None
    body = {"type": TEST_EVENT, "timestamp": _now(), "version": SCHEMA_VERSION,
            "data": {"reference": "TEST-0000", "status": "new", "channel": "web", "test": True}}
    with db.write() as conn:
        delivery_id = _insert_delivery(conn, found, TEST_EVENT, None, body, [])
        audit.record(conn, actor=actor, action="webhook.test", entity="webhook_endpoint", entity_id=endpoint_id,
                     business_id=business_id)
    return delivery_id


def delivery(db: Database, business_id: int, endpoint_id: int, delivery_id: int) -> dict | None:
    """One delivery of this business's endpoint (None for anyone else's)."""
    return db.query_one("SELECT id, status, body IS NOT NULL AS has_body FROM webhook_deliveries "
                        "WHERE id = ? AND endpoint_id = ? AND business_id = ?", (delivery_id, endpoint_id, business_id))


def send_again(db: Database, business_id: int, delivery_id: int, *, actor: str,
               endpoint_id: int | None = None) -> bool:
    """The same message (same `webhook-id`) once more, now; not when its body was erased."""
    with db.write() as conn:
        changed = list(conn.execute(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, claimed_at = NULL "
            "WHERE id = ? AND business_id = ? AND endpoint_id = coalesce(?, endpoint_id) AND body IS NOT NULL "
            "AND status IN ('delivered', 'failed') RETURNING endpoint_id",
            (_now(), delivery_id, business_id, endpoint_id)))
        if changed:
            audit.record(conn, actor=actor, action="webhook.resend", entity="webhook_delivery",
                         entity_id=delivery_id, business_id=business_id)
    return bool(changed)


def prune(db: Database, now: datetime | None = None) -> int:
    """Forget finished deliveries older than LOG_KEPT (their bodies hold what was sent)."""
    before = ((now or clock.now()) - LOG_KEPT).isoformat(timespec="seconds")
    with db.write() as conn:
        gone = list(conn.execute("DELETE FROM webhook_deliveries WHERE created_at < ? AND status IN "
                                 "('delivered', 'failed', 'canceled') RETURNING id", (before,)))
    return len(gone)


# ---- sending ---------------------------------------------------------------------------------

def due(db: Database, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Deliveries to try now: pending and due, or claimed by a worker that died."""
    now = now or clock.now()
    return [r["id"] for r in db.query(
        "SELECT id FROM webhook_deliveries WHERE (status = 'pending' AND next_attempt_at <= ?) "
        "OR (status = 'sending' AND claimed_at <= ?) ORDER BY id LIMIT ?",
        (now.isoformat(timespec="seconds"), (now - CLAIM_TIMEOUT).isoformat(timespec="seconds"), limit))]


def signature(endpoint: dict, message_id: str, timestamp: datetime, body: str, now: datetime) -> str:
    """`v1,<base64>` with the current secret, and with the previous one during a rotation."""
    secrets_in_use = [endpoint["secret"]]
    if endpoint["previous_secret"] and endpoint["previous_until"] and endpoint["previous_until"] > now.isoformat():
        secrets_in_use.append(endpoint["previous_secret"])
    return " ".join(Webhook(s).sign(message_id, timestamp, body) for s in secrets_in_use)


def retry_after(value: str | None, now: datetime) -> timedelta | None:
    """A `Retry-After` header (seconds or an HTTP date), capped at an hour."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        delay = timedelta(seconds=min(int(text[:7]), 3600))  # "99999999999999999999" is an hour, not an overflow
    else:
        try:
            delay = parsedate_to_datetime(text) - now
        except (TypeError, ValueError, OverflowError):
            return None
    return min(max(delay, timedelta(0)), timedelta(hours=1))


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, … capped at 1 h, each ±20 % so that retries spread out."""
    base = min(30 * 2 ** max(attempts - 1, 0), 3600)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def _claim(db: Database, delivery_id: int, now: datetime) -> dict | None:
    with db.write() as conn:
        rows = list(conn.execute(
            "UPDATE webhook_deliveries SET status = 'sending', claimed_at = ? WHERE id = ? AND "
            "((status = 'pending' AND next_attempt_at <= ?) OR (status = 'sending' AND claimed_at <= ?)) "
            "RETURNING *",
            (now.isoformat(timespec="seconds"), delivery_id, now.isoformat(timespec="seconds"),
             (now - CLAIM_TIMEOUT).isoformat(timespec="seconds"))))
    return rows[0] if rows else None


def send(db: Database, config: Config, delivery_id: int, *, now: datetime | None = None,
         resolve: Callable[[str, int], list[str]] | None = None, ssl_context: ssl.SSLContext | None = None) -> str:
    """Try one delivery now; returns its status afterwards."""
    now = now or clock.now()
    delivery = _claim(db, delivery_id, now)
    if delivery is None:
        row = db.query_one("SELECT status FROM webhook_deliveries WHERE id = ?", (delivery_id,))
        return row["status"] if row else "missing"
    try:
        return _attempt(db, config, delivery, now, resolve, ssl_context)
    except Exception as e:  # a claimed delivery always gets its outcome recorded, never stays "sending"
        return _finish(db, config, delivery, now, retry=True, error=f"{type(e).__name__}: {e}"[:300])


def _attempt(db: Database, config: Config, delivery: dict, now: datetime,
             resolve: Callable[[str, int], list[str]] | None, ssl_context: ssl.SSLContext | None) -> str:
    found = endpoint(db, delivery["business_id"], delivery["endpoint_id"])
    if found is None or delivery["body"] is None:
        return _finish(db, config, delivery, now, status="canceled", error="endpoint removed or body erased")
    if not found["enabled"] and delivery["event_type"] != TEST_EVENT:
        return _finish(db, config, delivery, now, status="canceled", error="endpoint turned off")
    timestamp = now.replace(microsecond=0)
    headers = {
        "content-type": "application/json", "user-agent": "Capteo-Webhooks/1",
        "webhook-id": delivery["message_id"], "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature(found, delivery["message_id"], timestamp, delivery["body"], now),
    }
    try:
        target = guard.check(found["url"], config, resolve=resolve)
        answer = guard.post(target, delivery["body"].encode(), headers, config, ssl_context=ssl_context)
    except guard.Refused as e:
        return _finish(db, config, delivery, now, retry=True, error=f"refused: {e}")
    except guard.DeliveryError as e:
        return _finish(db, config, delivery, now, retry=True, error=str(e))
    head = answer.body[:RESPONSE_KEPT].decode("utf-8", "replace")
    if 200 <= answer.status < 300:
        return _finish(db, config, delivery, now, status="delivered", code=answer.status, latency=answer.elapsed_ms,
                       response=head)
    asked = retry_after(answer.headers.get("retry-after"), now) if answer.status in (429, 503) else None
    # A receiver may ask for more time, never for less than the backoff ("Retry-After: 0").
    wait = max(asked, backoff(delivery["attempts"] + 1)) if asked is not None else None
    return _finish(db, config, delivery, now, retry=answer.status in RETRYABLE, code=answer.status,
                   latency=answer.elapsed_ms, response=head, error=f"HTTP {answer.status}", wait=wait)


def _finish(db: Database, config: Config, delivery: dict, now: datetime, *, status: str | None = None,
            retry: bool = False, code: int | None = None, latency: int | None = None, response: str | None = None,
            error: str | None = None, wait: timedelta | None = None) -> str:
    attempts = delivery["attempts"] + (0 if status == "canceled" else 1)
    if status is None:
        created = datetime.fromisoformat(delivery["created_at"])
        next_at = now + (wait if wait is not None else backoff(attempts))
        status = "pending" if retry and next_at - created < RETRY_FOR else "failed"
    else:
        next_at = now
    stamp = now.isoformat(timespec="seconds")
    business = businesses.get(db, delivery["business_id"]) if status in ("pending", "failed") else None
    with db.write() as conn:
        conn.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, claimed_at = NULL, "
            "last_status = ?, last_error = ?, last_latency_ms = ?, last_response = ?, "
            "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END "
            "WHERE id = ? AND status = 'sending'",
            (status, attempts, next_at.isoformat(timespec="seconds"), code, error, latency, response, status, stamp,
             delivery["id"]))
        if status == "delivered":
            conn.execute("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?", (delivery["endpoint_id"],))
            audit.record(conn, actor="system:webhooks", action="webhook.sent", entity="webhook_delivery",
                         entity_id=delivery["id"], business_id=delivery["business_id"],
                         fields=json.loads(delivery["fields"]), at=stamp)
        elif status == "failed" and code is not None and code not in RETRYABLE:
            # It answered (a 4xx): refused this message, but it is up.
            conn.execute("UPDATE webhook_endpoints SET failing_since = NULL WHERE id = ?", (delivery["endpoint_id"],))
        elif business is not None:
            _failing(conn, config, delivery, business, now)
    return status


def _failing(conn: apsw.Connection, config: Config, delivery: dict, business: dict, now: datetime) -> None:
    """Note the endpoint failing; after DISABLE_AFTER of failures, disable it and tell the owners."""
    stamp = now.isoformat(timespec="seconds")
    conn.execute("UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) WHERE id = ?",
                 (stamp, delivery["endpoint_id"]))
    day_ago = (now - DISABLE_AFTER).isoformat(timespec="seconds")
    if delivery["created_at"] > day_ago:
        return  # off only once a delivery has itself been failing for the whole day
    rows = list(conn.execute(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = 'failing', updated_at = ? "
        "WHERE id = ? AND enabled = 1 AND failing_since <= ? RETURNING id",
        (stamp, delivery["endpoint_id"], day_ago)))
    if not rows:
        return
    audit.record(conn, actor="system:webhooks", action="webhook.disable", entity="webhook_endpoint",
                 entity_id=delivery["endpoint_id"], business_id=delivery["business_id"], at=stamp)
    outbox.queue_webhook_disabled_sms(conn, business=business, public_url=config.public_url)
