"""Paddle Billing: the webhook over HTTP with real signatures (a test secret), the state it
records, what that state does (read-only dashboard, public doors, the owners' SMS, the 30-day
cut-over) under a settable clock, the billing page and the customer-portal session against a
local server speaking Paddle's API."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import TestClient

from app import billing, businesses, clock
from app import config as config_mod
from app.billing import paddle
from app.db import Database
from app.web import create_app
from tests.fakes import FakeService
from tests.support.app import write_config
from tests.support.audio import tone_wav
from tests.support.people import make_business, signed_in

SECRET = "pdl_ntfset_test_secret_current"
OLD_SECRET = "pdl_ntfset_test_secret_previous"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class FakePaddle(FakeService):
    """POST /customers/{customer_id}/portal-sessions with a Bearer API key, as Paddle answers it."""

    def answer(self, request):
        parts = request["path"].strip("/").split("/")
        if request["headers"].get("Authorization") != "Bearer pdl_test_apikey":
            return 403, {"error": {"type": "request_error", "code": "forbidden", "detail": "bad key"}}
        if request["method"] == "POST" and len(parts) == 3 and parts[0] == "customers" \
                and parts[2] == "portal-sessions":
            return 201, {"data": {"id": "cpls_01", "customer_id": parts[1], "urls": {
                "general": {"overview": f"https://customer-portal.paddle.com/cpl_01?token=t&c={parts[1]}"},
                "subscriptions": []}, "created_at": "2026-03-02T15:00:00Z"}, "meta": {"request_id": "r"}}
        return 404, {"error": {"type": "request_error", "code": "not_found", "detail": "no"}}


@pytest.fixture
def fake_paddle():
    with FakePaddle() as fake:
        yield fake


@pytest.fixture
def world(tmp_path, migrated_db, monkeypatch, fake_paddle):
    monkeypatch.setenv("CAPTEO_SECRET_PADDLE_API_KEY", "pdl_test_apikey")
    monkeypatch.setenv("CAPTEO_SECRET_PADDLE_WEBHOOK_SECRET", f"{SECRET}, {OLD_SECRET}")
    now = {"t": T0}
    monkeypatch.setattr(clock, "now", lambda: now["t"])
    cfg = config_mod.load(write_config(tmp_path, billing={
        "price_id": "pri_01test", "client_token": "test_clienttoken", "paddle_api_base": fake_paddle.url}), env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    db = Database(cfg.db_path)
    bid, ids = make_business(db, "gagnon", "Plomberie Gagnon", notify=["+15145550100"])
    with db.write() as conn:
        b = businesses.billing_in(conn, bid)
        businesses.set_contact(conn, bid, hours=businesses.get(db, bid)["hours"], notify_phones=b["notify_phones"],
                               phone="+15145550199")
        ids["owner"] = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password="x" * 12)
        ids["member"] = businesses.add_user(conn, business_id=bid, email="member@gagnon.test", password="x" * 12,
                                            role="member")
    ids["business"] = bid
    with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as client:
        yield {"client": client, "db": db, "cfg": cfg, "ids": ids, "now": now}
    db.close()


def event(event_type, *, business_id, occurred, event_id=None, status=None, **data):
    body = {"event_id": event_id or f"evt_{event_type}_{occurred.timestamp()}", "event_type": event_type,
            "occurred_at": occurred.isoformat().replace("+00:00", "Z"), "notification_id": "ntf_01",
            "data": {"id": "sub_01", "status": status, "customer_id": "ctm_01",
                     "custom_data": {"business_id": str(business_id)} if business_id is not None else None,
                     "items": [{"price": {"id": "pri_01test"}, "quantity": 1}], **data}}
    return json.dumps(body, separators=(",", ":")).encode()


def deliver(client, raw: bytes, *, secrets=(SECRET,), ts: int | None = None, header: str | None = None):
    ts = int(clock.now().timestamp()) if ts is None else ts
    if header is None:
        header = f"ts={ts};" + ";".join(f"h1={paddle.sign(s, ts, raw)}" for s in secrets)
    return client.post("/webhooks/paddle", content=raw,
                       headers={"Paddle-Signature": header, "content-type": "application/json"})


def snapshot(db) -> dict:
    return {"businesses": db.query("SELECT * FROM businesses ORDER BY id"),
            "audit": db.one("SELECT count(*) AS n FROM audit_log")["n"],
            "events": db.query("SELECT * FROM paddle_events ORDER BY event_id"),
            "outbox": db.query("SELECT * FROM outbox ORDER BY id")}


def state(w) -> dict:
    return businesses.billing_of(w["db"], w["ids"]["business"])


# ---- the webhook --------------------------------------------------------------------------------

def test_a_good_event_sets_the_state_and_is_audited(world):
    w = world
    before = snapshot(w["db"])
    r = deliver(w["client"], event("subscription.activated", business_id=w["ids"]["business"], status="active",
                                   occurred=T0 - timedelta(seconds=5)))
    assert r.status_code == 200 and r.json() == {"outcome": "applied"}
    s = state(w)
    assert s["billing_state"] == "active" and s["paddle_customer_id"] == "ctm_01"
    assert s["paddle_subscription_id"] == "sub_01" and s["billing_restricted_since"] is None
    after = snapshot(w["db"])
    assert after["audit"] == before["audit"] + 1
    entry = w["db"].one("SELECT * FROM audit_log ORDER BY id DESC LIMIT 1")
    assert entry["action"] == "billing.state" and entry["business_id"] == w["ids"]["business"]
    assert [e["outcome"] for e in after["events"]] == ["applied"]


@pytest.mark.parametrize("case", ["bad_signature", "other_body", "unknown_secret", "stale", "future",
                                  "no_header", "garbled_header", "malformed_json", "not_an_event"])
def test_refused_deliveries_change_nothing(world, case):
    w = world
    raw = event("subscription.canceled", business_id=w["ids"]["business"], status="canceled", occurred=T0)
    now = int(T0.timestamp())
    before = snapshot(w["db"])
    if case == "bad_signature":
        r = deliver(w["client"], raw, header=f"ts={now};h1={'0' * 64}")
    elif case == "other_body":
        r = deliver(w["client"], raw, header=f"ts={now};h1={paddle.sign(SECRET, now, raw + b' ')}")
    elif case == "unknown_secret":
        r = deliver(w["client"], raw, secrets=("someone-elses-secret",))
    elif case == "stale":
        r = deliver(w["client"], raw, ts=now - 301)
    elif case == "future":
        r = deliver(w["client"], raw, ts=now + 301)
    elif case == "no_header":
        r = w["client"].post("/webhooks/paddle", content=raw)
    elif case == "garbled_header":
        r = deliver(w["client"], raw, header="ts=abc;h1")
    elif case == "malformed_json":
        r = deliver(w["client"], b'{"event_id": "evt_1", "event_type": ')
    else:
        r = deliver(w["client"], json.dumps({"event_id": "evt_2", "data": {}}).encode())
    assert r.status_code == 400, r.text
    assert snapshot(w["db"]) == before


def test_within_the_tolerance_is_accepted(world):
    w = world
    raw = event("subscription.past_due", business_id=w["ids"]["business"], status="past_due", occurred=T0)
    assert deliver(w["client"], raw, ts=int(T0.timestamp()) - 299).status_code == 200


def test_rotated_secrets_each_verify(world):
    w = world
    bid = w["ids"]["business"]
    # Paddle rotating: two h1, the first from a secret we no longer have.
    r = deliver(w["client"], event("subscription.trialing", business_id=bid, status="trialing",
                                   occurred=T0 - timedelta(minutes=3), next_billed_at="2026-03-16T15:00:00Z"),
                secrets=("retired-secret", SECRET))
    assert r.status_code == 200 and state(w)["billing_state"] == "trialing"
    assert state(w)["trial_ends_at"] == "2026-03-16T15:00:00+00:00"
    # Our side rotating: the previous secret, still configured, verifies too.
    r = deliver(w["client"], event("subscription.activated", business_id=bid, status="active",
                                   occurred=T0 - timedelta(minutes=2)), secrets=(OLD_SECRET,))
    assert r.status_code == 200 and state(w)["billing_state"] == "active"


def test_a_replay_changes_nothing_twice(world):
    w = world
    raw = event("subscription.paused", business_id=w["ids"]["business"], status="paused", occurred=T0,
                event_id="evt_replayed")
    assert deliver(w["client"], raw).json()["outcome"] == "applied"
    before = snapshot(w["db"])
    w["now"]["t"] = T0 + timedelta(minutes=1)
    r = deliver(w["client"], raw)
    assert r.status_code == 200 and r.json()["outcome"] == "duplicate"
    assert snapshot(w["db"]) == before


def test_out_of_order_events_follow_occurred_at(world):
    w = world
    bid = w["ids"]["business"]
    later = event("subscription.canceled", business_id=bid, status="canceled", occurred=T0 - timedelta(seconds=10))
    earlier = event("subscription.activated", business_id=bid, status="active", occurred=T0 - timedelta(seconds=60))
    assert deliver(w["client"], later).json()["outcome"] == "applied"
    before = snapshot(w["db"])
    r = deliver(w["client"], earlier)
    assert r.status_code == 200 and r.json()["outcome"] == "stale"
    after = snapshot(w["db"])
    assert after["businesses"] == before["businesses"] and after["audit"] == before["audit"]
    assert state(w)["billing_state"] == "canceled"


def test_unknown_business_is_recorded_and_ignored(world):
    w = world
    for business_id in (987654, None):
        before = snapshot(w["db"])
        raw = event("subscription.canceled", business_id=business_id, status="canceled", occurred=T0,
                    event_id=f"evt_unknown_{business_id}")
        r = deliver(w["client"], raw)
        assert r.status_code == 200 and r.json()["outcome"] == "ignored"
        after = snapshot(w["db"])
        assert after["businesses"] == before["businesses"] and after["audit"] == before["audit"]
        assert after["outbox"] == before["outbox"]
        row = w["db"].one("SELECT * FROM paddle_events WHERE event_id = ?", (f"evt_unknown_{business_id}",))
        assert row["business_id"] is None and row["outcome"] == "ignored"


def test_a_checkout_card_refusal_does_not_lapse_the_subscription(world):
    w = world
    bid = w["ids"]["business"]
    deliver(w["client"], event("subscription.activated", business_id=bid, status="active", occurred=T0))
    r = deliver(w["client"], event("transaction.payment_failed", business_id=bid, occurred=T0 + timedelta(seconds=1),
                                   subscription_id="sub_01", origin="web"))
    assert r.json()["outcome"] == "ignored" and state(w)["billing_state"] == "active"


def test_not_configured_the_webhook_changes_nothing(world, monkeypatch):
    w = world
    monkeypatch.delenv("CAPTEO_SECRET_PADDLE_WEBHOOK_SECRET")
    before = snapshot(w["db"])
    r = deliver(w["client"], event("subscription.canceled", business_id=w["ids"]["business"], status="canceled",
                                   occurred=T0))
    assert r.status_code == 404 and snapshot(w["db"]) == before


# ---- what the state does ------------------------------------------------------------------------

def _settings_post(w, csrf):
    return w["client"].post("/fr/app/settings/fields", data={"_csrf_token": csrf, "kind": "short_text",
                                                             "label_fr": "Q", "label_en": "Q"},
                            follow_redirects=False)


def test_past_due_banner_then_read_only_after_grace_with_one_sms(world):
    w = world
    bid = w["ids"]["business"]
    csrf = signed_in(w["client"], w["db"], w["ids"]["owner"], bid)
    deliver(w["client"], event("subscription.past_due", business_id=bid, status="past_due", occurred=T0))
    w["now"]["t"] = T0 + timedelta(days=1)
    page = w["client"].get("/fr/app/leads")
    assert "Le dernier paiement de Capteo n'a pas été accepté" in page.text
    assert _settings_post(w, csrf).status_code in (200, 303)  # everything works during the grace
    assert billing.sweep(w["db"], w["cfg"]) == 0
    w["now"]["t"] = T0 + timedelta(days=7, minutes=1)
    r = _settings_post(w, csrf)
    assert r.status_code == 403 and "Le tableau de bord est en lecture seule" in r.text
    assert 'href="/fr/app/billing"' in r.text
    r = w["client"].post("/fr/app/settings/fields", headers={"hx-request": "true", "x-csrftoken": csrf},
                         data={"_csrf_token": csrf})
    assert r.status_code == 204 and r.headers["hx-redirect"] == "/fr/app/billing"
    assert w["client"].get("/fr/app/leads").status_code == 200  # reading still works
    assert w["client"].get("/fr/app/billing").status_code == 200
    assert billing.sweep(w["db"], w["cfg"]) == 1
    assert billing.sweep(w["db"], w["cfg"]) == 0
    sms = w["db"].one("SELECT * FROM outbox WHERE kind = 'billing_read_only'")
    assert sms["to_phone"] == "+15145550100" and "/fr/app/billing" in sms["body"] and sms["lead_id"] is None
    # Paid again: writable, no restriction left.
    deliver(w["client"], event("subscription.activated", business_id=bid, status="active",
                               occurred=w["now"]["t"] - timedelta(seconds=1)))
    assert _settings_post(w, csrf).status_code in (200, 303)
    assert state(w)["billing_restricted_since"] is None
    assert w["client"].post("/fr/logout", data={"_csrf_token": csrf}, follow_redirects=False).status_code == 303


def test_canceled_public_doors_accept_for_30_days_then_the_form_shows_the_phone(world):
    w = world
    bid = w["ids"]["business"]
    client = w["client"]
    pbx = businesses.new_pbx_token(w["db"], bid, actor="t")
    deliver(client, event("subscription.canceled", business_id=bid, status="canceled", occurred=T0))
    # The owners are told at once.
    assert w["db"].one("SELECT count(*) AS n FROM outbox WHERE kind = 'billing_read_only'")["n"] == 1
    csrf = signed_in(client, w["db"], w["ids"]["owner"], bid)
    assert _settings_post(w, csrf).status_code == 403
    client.cookies.clear()
    w["now"]["t"] = T0 + timedelta(days=29)
    form = client.get("/fr/f/gagnon")
    assert form.status_code == 200 and 'name="form_token"' in form.text
    w["now"]["t"] = T0 + timedelta(days=30, seconds=1)
    closed = client.get("/fr/f/gagnon")
    assert closed.status_code == 200 and "ne prend plus de demandes en ligne" in closed.text
    assert 'href="tel:+15145550199"' in closed.text and 'name="form_token"' not in closed.text
    refused = client.post("/fr/f/gagnon", data={"form_token": "x", "first_name": "A"})
    assert refused.status_code == 410 and "ne prend plus de demandes en ligne" in refused.text
    # The voicemail door never turns a caller away.
    r = client.post("/api/voicemail", headers={"authorization": f"Bearer {pbx}"},
                    files={"audio": ("vm.wav", tone_wav(1.0), "audio/wav")})
    assert r.status_code == 201, r.text
    # No data is deleted by a billing event.
    assert businesses.billing_of(w["db"], bid)["name"] == "Plomberie Gagnon"


def test_not_configured_every_business_is_open(world, monkeypatch):
    w = world
    bid = w["ids"]["business"]
    deliver(w["client"], event("subscription.canceled", business_id=bid, status="canceled", occurred=T0))
    monkeypatch.delenv("CAPTEO_SECRET_PADDLE_API_KEY")
    w["now"]["t"] = T0 + timedelta(days=90)
    b = state(w)
    assert not billing.dashboard_read_only(w["cfg"], b, w["now"]["t"])
    assert billing.public_doors_open(w["cfg"], b, w["now"]["t"])
    csrf = signed_in(w["client"], w["db"], w["ids"]["owner"], bid)
    assert _settings_post(w, csrf).status_code in (200, 303)
    assert "Facturation" in w["client"].get("/fr/app/billing").text
    w["client"].cookies.clear()
    assert 'name="form_token"' in w["client"].get("/fr/f/gagnon").text


# ---- the billing page and the portal ------------------------------------------------------------

def test_billing_page_loads_paddle_js_only_there(world):
    w = world
    bid = w["ids"]["business"]
    signed_in(w["client"], w["db"], w["ids"]["owner"], bid)
    page = w["client"].get("/fr/app/billing")
    assert page.status_code == 200
    assert "https://cdn.paddle.com/paddle/v2/paddle.js" in page.text and f'data-business="{bid}"' in page.text
    assert 'data-price="pri_01test"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' https://cdn.paddle.com" in policy and "https://sandbox-buy.paddle.com" in policy
    for other in ("/fr/app/leads", "/fr/app/settings"):
        r = w["client"].get(other)
        assert "paddle" not in r.text.split("</nav>", 1)[-1].lower() or "cdn.paddle.com" not in r.text
        assert "paddle" not in r.headers["content-security-policy"]
    w["client"].cookies.clear()
    public = w["client"].get("/fr/f/gagnon")
    assert "cdn.paddle.com" not in public.text and "paddle" not in public.headers["content-security-policy"]
    signed_in(w["client"], w["db"], w["ids"]["member"], bid)
    assert w["client"].get("/fr/app/billing").status_code == 403


def test_manage_billing_opens_a_portal_session(world, fake_paddle):
    w = world
    bid = w["ids"]["business"]
    csrf = signed_in(w["client"], w["db"], w["ids"]["owner"], bid)
    r = w["client"].post("/fr/app/billing/portal", data={"_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 409 and "Il n'y a pas encore d'abonnement" in r.text
    assert fake_paddle.requests == []
    deliver(w["client"], event("subscription.canceled", business_id=bid, status="canceled", occurred=T0))
    r = w["client"].post("/fr/app/billing/portal", data={"_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303  # allowed while read-only: it is the way to pay
    assert r.headers["location"].startswith("https://customer-portal.paddle.com/cpl_01") and "ctm_01" in \
        r.headers["location"]
    sent = fake_paddle.requests[-1]
    assert sent["method"] == "POST" and sent["path"] == "/customers/ctm_01/portal-sessions"
    fake_paddle.script.append((500, {"error": {"type": "api_error", "code": "internal_error", "detail": "x"}}))
    r = w["client"].post("/fr/app/billing/portal", data={"_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 502 and "Paddle, notre fournisseur de paiement, est injoignable" in r.text


def test_signature_helpers_match_paddles_scheme():
    raw = b'{"a":1}'
    ts = int(time.time())
    header = f"ts={ts};h1={paddle.sign('s', ts, raw)}"
    paddle.verify(header, raw, ["s"], now=datetime.now(UTC), tolerance_seconds=5)
    import hashlib
    import hmac
    assert paddle.sign("s", ts, raw) == hmac.new(b"s", f"{ts}:".encode() + raw, hashlib.sha256).hexdigest()
