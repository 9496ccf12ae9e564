"""Paddle Billing: each business's subscription state, set by signed, idempotent webhooks,
and what that state does — never at an end user's expense.

Not configured (no price, API key or webhook secret): every business is active, nothing here
changes anything. Configured:

- `past_due`: a banner for the owner; everything works for `grace_days` after the event.
- past that grace, or `paused` / `canceled`: the dashboard is read-only (GETs, billing, export
  and sign-out still work); the owners are told by SMS once; the public form keeps accepting
  requests for `accept_days` from `billing_restricted_since`, then says the business no longer
  takes online requests and shows its phone. The voicemail door always accepts (a caller
  cannot be shown a page). No data is ever deleted by a billing event.

Webhook events are recorded by id in `paddle_events` (a replay changes nothing) and change
the state only when their `occurred_at` is newer than the one that set it (out of order: no-op).
The `businesses` columns are read and written through app.businesses only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import apsw

from app import audit, businesses, clock, i18n
from app.billing import paddle
from app.config import Config
from app.db import Database
from app.messaging import outbox

STATES = ("none", "trialing", "active", "past_due", "paused", "canceled")
OPEN_STATES = ("none", "trialing", "active")
RESTRICTING = ("past_due", "paused", "canceled")
ACTOR = "system:paddle"
SMS_KIND = "billing_read_only"

# Which state each handled event means when its data carries no usable `status`.
EVENT_STATES: dict[str, str | None] = {
    "subscription.created": None,
    "subscription.activated": "active",
    "subscription.updated": None,
    "subscription.trialing": "trialing",
    "subscription.past_due": "past_due",
    "subscription.paused": "paused",
    "subscription.resumed": "active",
    "subscription.canceled": "canceled",
    "transaction.completed": "active",
    "transaction.payment_failed": "past_due",
}


@dataclass(frozen=True)
class Settings:
    environment: str
    api_base: str
    price_id: str
    client_token: str
    api_key: str
    webhook_secrets: tuple[str, ...]
    grace: timedelta
    accept: timedelta
    tolerance_seconds: int


def settings(config: Config) -> Settings | None:
    """Billing's settings, or None when it is not configured (every business active)."""
    b = config.billing
    api_key = config.provider_secret("paddle_api_key")
    secret = config.provider_secret("paddle_webhook_secret")
    secrets = tuple(s.strip() for s in (secret or "").split(",") if s.strip())
    if not (b.price_id and api_key and secrets):
        return None
    default_base = paddle.SANDBOX_API if b.paddle_environment == "sandbox" else paddle.PRODUCTION_API
    return Settings(environment=b.paddle_environment, api_base=b.paddle_api_base or default_base,
                    price_id=b.price_id, client_token=b.client_token, api_key=api_key.strip(),
                    webhook_secrets=secrets, grace=timedelta(days=b.grace_days),
                    accept=timedelta(days=b.accept_days), tolerance_seconds=b.signature_tolerance_seconds)


def configured(config: Config) -> bool:
    return settings(config) is not None


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


# ---- what the state does ------------------------------------------------------------------------

def restricted_since(business: dict) -> datetime | None:
    if business.get("billing_state") not in RESTRICTING:
        return None
    return _instant(business.get("billing_restricted_since"))


def dashboard_read_only(config: Config, business: dict, now: datetime) -> bool:
    """The team may look but not change anything (billing, export and sign-out excepted)."""
    if settings(config) is None:
        return False
    since = restricted_since(business)
    return since is not None and now >= since


def public_doors_open(config: Config, business: dict, now: datetime) -> bool:
    """The public form still takes requests (until `accept_days` after the restriction began)."""
    s = settings(config)
    if s is None:
        return True
    since = restricted_since(business)
    return since is None or now < since + s.accept


def banner(config: Config, business: dict, now: datetime) -> dict | None:
    """What the dashboard tells the team about billing, or None: `kind` is "past_due" (all works
    until `until`), "read_only" (the form accepts until `until`) or "doors_closed"."""
    s = settings(config)
    if s is None:
        return None
    since = restricted_since(business)
    if since is None:
        return None
    if now < since:
        return {"kind": "past_due", "until": _iso(since)}
    if now < since + s.accept:
        return {"kind": "read_only", "until": _iso(since + s.accept)}
    return {"kind": "doors_closed", "until": None}


def state_for(db: Database, business_id: int) -> dict:
    """The business's billing columns (for the billing page and the guards)."""
    row = businesses.billing_of(db, business_id)
    if row is None:
        raise LookupError(business_id)
    return row


# ---- webhooks -----------------------------------------------------------------------------------

class BadEvent(ValueError):
    """The body is not a Paddle event (malformed JSON, missing id, type or time)."""


@dataclass(frozen=True)
class Event:
    event_id: str
    event_type: str
    occurred_at: datetime
    data: dict


def parse_event(raw_body: bytes) -> Event:
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise BadEvent("malformed JSON") from None
    if not isinstance(body, dict):
        raise BadEvent("not an object")
    event_id, event_type = body.get("event_id"), body.get("event_type")
    occurred = _instant(body.get("occurred_at")) if isinstance(body.get("occurred_at"), str) else None
    data = body.get("data")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 100 and isinstance(event_type, str)
            and len(event_type) <= 100 and occurred is not None and isinstance(data, dict)):
        raise BadEvent("not a Paddle event")
    return Event(event_id, event_type, occurred, data)


def _business_id(data: dict) -> int | None:
    custom = data.get("custom_data")
    value = custom.get("business_id") if isinstance(custom, dict) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 < value < 2**63 else None
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _new_state(event: Event) -> str | None:
    """The state the event means, or None when it means none (a checkout's failed payment)."""
    data = event.data
    if event.event_type.startswith("subscription."):
        status = data.get("status")
        if status in ("trialing", "active", "past_due", "paused", "canceled"):
            return str(status)
        return EVENT_STATES[event.event_type]
    if not data.get("subscription_id"):
        return None  # a transaction outside a subscription says nothing about it
    if event.event_type == "transaction.payment_failed" and data.get("origin") != "subscription_recurring":
        return None  # a card refused at checkout: the subscription did not lapse
    return EVENT_STATES[event.event_type]


def _restricted_since(current: dict, state: str, occurred: datetime, s: Settings) -> str | None:
    if state in OPEN_STATES:
        return None
    existing = _instant(current.get("billing_restricted_since")) \
        if current.get("billing_state") in RESTRICTING else None
    if state == "past_due":
        return _iso(existing) if existing else _iso(occurred + s.grace)
    # paused or canceled: read-only from the event on (or earlier, if it already was).
    return _iso(min(existing, occurred) if existing else occurred)


def handle_event(db: Database, config: Config, event: Event, *, now: datetime | None = None) -> str:
    """Record and apply one verified event; returns the outcome: "applied", "unchanged" (nothing
    new), "stale" (older than the state), "ignored" (not ours to handle, unknown business) or
    "duplicate" (this event id was handled before: nothing happens again)."""
    s = settings(config)
    assert s is not None, "handle_event with billing not configured"
    now = now or clock.now()
    business_id = _business_id(event.data)
    with db.write() as conn:
        if list(conn.execute("SELECT 1 FROM paddle_events WHERE event_id = ?", (event.event_id,))):
            return "duplicate"
        current = businesses.billing_in(conn, business_id) if business_id is not None else None
        if event.event_type not in EVENT_STATES or current is None:
            outcome = "ignored"
        else:
            outcome = _apply(conn, s, current, event, now, config.public_url)
        conn.execute(
            "INSERT INTO paddle_events (event_id, business_id, event_type, occurred_at, received_at, outcome) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (event.event_id, current["id"] if current else None, event.event_type,
             event.occurred_at.astimezone(UTC).isoformat(), _iso(now), outcome))
    return outcome


def _apply(conn: apsw.Connection, s: Settings, current: dict, event: Event, now: datetime,
           public_url: str) -> str:
    state = _new_state(event)
    if state is None:
        return "ignored"
    last = _instant(current.get("billing_state_at"))
    if last is not None and event.occurred_at <= last:
        return "stale"
    data = event.data
    subscription_id = data.get("id") if event.event_type.startswith("subscription.") else data.get("subscription_id")
    columns: dict[str, Any] = {
        "billing_state": state,
        "billing_state_at": event.occurred_at.astimezone(UTC).isoformat(),
        "billing_restricted_since": _restricted_since(current, state, event.occurred_at, s),
    }
    if isinstance(data.get("customer_id"), str) and data["customer_id"]:
        columns["paddle_customer_id"] = data["customer_id"][:100]
    if isinstance(subscription_id, str) and subscription_id:
        columns["paddle_subscription_id"] = subscription_id[:100]
    changed = [k for k, v in columns.items() if k != "billing_state_at" and current.get(k) != v]
    if state == "trialing" and isinstance(data.get("next_billed_at"), str):
        ends = _instant(data["next_billed_at"])
        if ends is not None and _iso(ends) != current.get("trial_ends_at"):
            columns["trial_ends_at"] = _iso(ends)
            changed.append("trial_ends_at")
    businesses.set_billing(conn, current["id"], **columns)
    if not changed:
        return "unchanged"
    audit.record(conn, actor=ACTOR, action="billing.state", entity="business", entity_id=current["id"],
                 business_id=current["id"], fields=changed)
    notify_if_read_only(conn, current["id"], now, public_url)
    return "applied"


# ---- telling the owners -------------------------------------------------------------------------

def notify_if_read_only(conn: apsw.Connection, business_id: int, now: datetime, public_url: str) -> list[int]:
    """Once per restriction: SMS the business's notification phones that its dashboard is
    read-only (no personal data: the business's name and a link to the billing page)."""
    business = businesses.billing_in(conn, business_id)
    if business is None:
        return []
    since = restricted_since(business)
    if since is None or now < since:
        return []
    already = list(conn.execute(
        "SELECT 1 FROM outbox WHERE business_id = ? AND kind = ? AND created_at >= ? LIMIT 1",
        (business_id, SMS_KIND, _iso(since))))
    if already:
        return []
    return outbox.queue_billing_read_only_sms(conn, business=business, public_url=public_url)


def sweep(db: Database, config: Config, now: datetime | None = None) -> int:
    """Hourly: tell the owners of businesses whose grace period has just ended (past_due)."""
    if settings(config) is None:
        return 0
    now = now or clock.now()
    sent = 0
    for business_id in businesses.billing_restricted(db, _iso(now)):
        with db.write() as conn:
            sent += len(notify_if_read_only(conn, business_id, now, config.public_url))
    return sent


def format_until(value: str | None, tz: str) -> str:
    return i18n.format_date(value, tz) if value else ""


class ReadOnly(Exception):
    """A change asked of a dashboard that billing made read-only (app.http answers it)."""
