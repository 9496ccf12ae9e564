"""Webhooks (issue 15): events written with the change, one delivery per endpoint, signed
in the Standard Webhooks format, retried, disabled after a day of failures; a local
receiver plays the business's tool (allow_private_targets is on in these tests only)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from standardwebhooks.webhooks import Webhook

from app import clock, integrations, leads
from app import config as config_mod
from app.appointments import Slot
from tests.support.people import make_business


class Receiver:
    """A webhook receiver on 127.0.0.1: answers from a script of (status, headers), keeps
    every request (headers, body), and is idempotent by `webhook-id` as receivers must be."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        self.seen_ids: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- the stdlib's name
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body.decode()})
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
                if status < 300:
                    receiver.seen_ids.add(self.headers["webhook-id"])
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def cfg(config, receiver):
    return config_mod.load(config.path, env={"CAPTEO_INTEGRATIONS_ALLOW_PRIVATE_TARGETS": "true",
                                             "CAPTEO_INTEGRATIONS_ALLOWED_PORTS": f"443,{receiver.port}",
                                             "CAPTEO_INTEGRATIONS_TIMEOUT_SECONDS": "3"})


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "hooks", "Plomberie Hooks", custom=False)
    return bid


def _endpoint(db, cfg, bid, url, events=("lead.created",), fields=()):
    return integrations.create_endpoint(db, cfg, bid, url=url, events=list(events), fields=list(fields),
                                        actor="test")


def _lead(db, bid, **kw):
    with db.write() as conn:
        return leads.create(conn, business_id=bid, channel="web", actor="test",
                            **({"need": "Fuite sous l'évier", "first_name": "Hélène", "phone": "+15145550101"} | kw))


def _deliver_all(db, cfg, now=None):
    for delivery_id in integrations.dispatch(db, cfg) + integrations.due(db, now):
        integrations.send(db, cfg, delivery_id, now=now)


def test_a_new_lead_is_delivered_signed_with_only_what_the_owner_ticked(db, cfg, shop, receiver):
    endpoint_id, secret = _endpoint(db, cfg, shop, receiver.url, fields=["first_name"])
    lead = _lead(db, shop)
    _deliver_all(db, cfg)
    [request] = receiver.requests
    payload = Webhook(secret).verify(request["body"], request["headers"])  # raises if the signature is wrong
    assert payload["type"] == "lead.created" and payload["version"] == integrations.SCHEMA_VERSION
    data = payload["data"]
    assert data["reference"] == lead["reference"] and data["status"] == "new" and data["channel"] == "web"
    assert data["first_name"] == "Hélène" and "phone" not in data and "need" not in data
    assert data["url"].endswith(f"/app/leads/{lead['id']}")
    [row] = integrations.deliveries(db, shop, endpoint_id)
    assert row["status"] == "delivered" and row["last_status"] == 200 and row["last_response"] == "ok"
    sent = db.query_one("SELECT fields FROM audit_log WHERE action = 'webhook.sent'")
    assert json.loads(sent["fields"]) == ["first_name"]


def test_nothing_is_recorded_for_a_business_without_webhooks(db, cfg, shop):
    _lead(db, shop)
    assert db.query("SELECT count(*) AS n FROM webhook_events") == [{"n": 0}]


def test_status_assignment_correction_appointment_and_anonymization_are_events(db, cfg, shop, receiver):
    from app import businesses
    from app.appointments import book, cancel, move
    from app.privacy import retention

    _endpoint(db, cfg, shop, receiver.url, events=integrations.EVENT_TYPES, fields=["first_name", "phone"])
    lead = _lead(db, shop)
    owner = None
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=shop, email="o@hooks.ca", password="x" * 12)
    leads.set_status(db, shop, lead["id"], "contacted", user_id=owner)
    leads.rectify(db, shop, lead["id"], {"first_name": "Helene"}, user_id=owner)
    business = businesses.get(db, shop)
    start = clock.now().replace(microsecond=0) + timedelta(days=2)
    appointment_id, _ = book(db, business, lead["id"], Slot(start, start + timedelta(hours=1)), user_id=owner)
    move(db, business, appointment_id, Slot(start + timedelta(hours=2), start + timedelta(hours=3)), user_id=owner)
    cancel(db, business, appointment_id, user_id=owner)
    _deliver_all(db, cfg)
    types = [json.loads(r["body"])["type"] for r in receiver.requests]
    assert types[0] == "lead.created" and "lead.updated" in types
    # Booking and cancelling also change the lead's status: lead.updated events come between.
    assert [t for t in types if t.startswith("appointment.")] == [
        "appointment.booked", "appointment.moved", "appointment.canceled"]
    corrections = [json.loads(r["body"])["data"] for r in receiver.requests
                   if json.loads(r["body"])["type"] == "lead.updated"]
    assert {c["change"] for c in corrections} >= {"status", "correction"}

    with db.write() as conn:
        row = next(iter(conn.execute("SELECT * FROM leads WHERE id = ?", (lead["id"],))))
        retention.anonymize(conn, cfg, dict(row), actor="test", reason="erasure")
    # What was sent about the person is erased here too; the event says only the reference.
    assert db.query("SELECT count(*) AS n FROM webhook_deliveries WHERE lead_id = ? AND body IS NOT NULL",
                    (lead["id"],)) == [{"n": 0}]
    _deliver_all(db, cfg)
    last = json.loads(receiver.requests[-1]["body"])
    assert last["type"] == "lead.anonymized" and last["data"]["reference"] == lead["reference"]
    assert "first_name" not in last["data"] and "phone" not in last["data"]


def test_retries_on_500_timeout_and_429_then_gives_up_on_400(db, cfg, shop, receiver, monkeypatch):
    endpoint_id, _ = _endpoint(db, cfg, shop, receiver.url)
    _lead(db, shop)
    [delivery_id] = integrations.dispatch(db, cfg)
    now = clock.now()
    receiver.script = [(500, {}), (429, {"Retry-After": "120"}), (200, {})]
    assert integrations.send(db, cfg, delivery_id, now=now) == "pending"
    row = db.one("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    assert row["attempts"] == 1 and row["last_status"] == 500
    assert integrations.send(db, cfg, delivery_id, now=now) == "pending"  # not due yet: nothing sent
    assert len(receiver.requests) == 1
    now += timedelta(minutes=2)
    assert integrations.send(db, cfg, delivery_id, now=now) == "pending"
    row = db.one("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    assert row["last_status"] == 429 and row["next_attempt_at"] == (now + timedelta(seconds=120)).isoformat(
        timespec="seconds")  # Retry-After honoured
    now += timedelta(seconds=121)
    assert integrations.send(db, cfg, delivery_id, now=now) == "delivered"
    # 400: the receiver refuses this message; trying again would not help.
    _lead(db, shop)
    [second] = integrations.dispatch(db, cfg)
    receiver.script = [(400, {})]
    assert integrations.send(db, cfg, second, now=now) == "failed"
    assert integrations.endpoint(db, shop, endpoint_id)["enabled"] == 1


def test_an_endpoint_that_never_answers_times_out_and_is_retried(db, config, shop):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(5)  # accepts connections, never answers
    port = silent.getsockname()[1]
    cfg = config_mod.load(config.path, env={"CAPTEO_INTEGRATIONS_ALLOW_PRIVATE_TARGETS": "true",
                                            "CAPTEO_INTEGRATIONS_ALLOWED_PORTS": f"443,{port}",
                                            "CAPTEO_INTEGRATIONS_TIMEOUT_SECONDS": "1"})
    try:
        _endpoint(db, cfg, shop, f"http://127.0.0.1:{port}/")
        _lead(db, shop)
        [delivery_id] = integrations.dispatch(db, cfg)
        assert integrations.send(db, cfg, delivery_id) == "pending"
        row = db.one("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,))
        assert row["last_status"] is None and row["last_error"] and row["attempts"] == 1
    finally:
        silent.close()


def test_rotation_signs_with_both_secrets_for_a_day(db, cfg, shop, receiver):
    endpoint_id, old = _endpoint(db, cfg, shop, receiver.url)
    new = integrations.rotate_secret(db, shop, endpoint_id, actor="test")
    assert new and new != old
    _lead(db, shop)
    _deliver_all(db, cfg)
    request = receiver.requests[-1]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request["body"], request["headers"])  # a receiver still on the old secret
    Webhook(new).verify(request["body"], request["headers"])
    later = clock.now() + integrations.ROTATION_OVERLAP + timedelta(minutes=1)
    _lead(db, shop)
    _deliver_all(db, cfg, now=later)
    request = receiver.requests[-1]
    h = request["headers"]
    # Signed at `later` (a day ahead, so a receiver would refuse its time): check the signature itself.
    signed_at = datetime.fromtimestamp(int(h["webhook-timestamp"]), tz=UTC)
    assert h["webhook-signature"] == Webhook(new).sign(h["webhook-id"], signed_at, request["body"])


def test_an_endpoint_failing_for_a_day_is_disabled_and_the_owner_told(db, cfg, shop, receiver):
    endpoint_id, _ = _endpoint(db, cfg, shop, receiver.url)
    now = clock.now()
    receiver.script = [(503, {})] * 1000
    for hour in range(0, 26, 2):
        at = now + timedelta(hours=hour)
        _lead(db, shop)
        for delivery_id in integrations.dispatch(db, cfg) + integrations.due(db, at):
            integrations.send(db, cfg, delivery_id, now=at)
    found = integrations.endpoint(db, shop, endpoint_id)
    assert found["enabled"] == 0 and found["disabled_reason"] == "failing"
    sms = db.query("SELECT body FROM outbox WHERE kind = 'webhook_disabled'")
    assert sms and "webhook" in sms[0]["body"]
    assert db.query_one("SELECT 1 AS x FROM audit_log WHERE action = 'webhook.disable'")
    # Disabled: new events are no longer recorded for it (the business has no other endpoint).
    _lead(db, shop)
    assert integrations.dispatch(db, cfg) == []


def test_send_test_and_send_again_keep_the_message_id(db, cfg, shop, receiver):
    endpoint_id, secret = _endpoint(db, cfg, shop, receiver.url)
    test_id = integrations.send_test(db, shop, endpoint_id, actor="test")
    assert integrations.send(db, cfg, test_id) == "delivered"
    assert Webhook(secret).verify(receiver.requests[-1]["body"], receiver.requests[-1]["headers"])["type"] == \
        "webhook.test"
    assert integrations.send_again(db, shop, test_id, actor="test")
    assert integrations.send(db, cfg, test_id) == "delivered"
    first, again = receiver.requests[-2:]
    assert first["headers"]["webhook-id"] == again["headers"]["webhook-id"]


def test_a_business_cannot_see_or_trigger_another_business_endpoints(db, cfg, shop, receiver):
    other, _ = make_business(db, "other", "Autre", custom=False)
    endpoint_id, _ = _endpoint(db, cfg, shop, receiver.url)
    assert integrations.endpoint(db, other, endpoint_id) is None
    assert integrations.endpoints(db, other) == []
    assert integrations.send_test(db, other, endpoint_id, actor="x") is None
    assert not integrations.rotate_secret(db, other, endpoint_id, actor="x")
    assert not integrations.delete_endpoint(db, other, endpoint_id, actor="x")
    assert integrations.deliveries(db, other, endpoint_id) == []
    # Another business's leads never reach this endpoint.
    _lead(db, other)
    assert integrations.dispatch(db, cfg) == []


def test_a_url_the_guard_refuses_is_never_saved_nor_called(db, config, shop):
    for url in ("http://hooks.example.com/", "https://127.0.0.1/", "https://169.254.169.254/latest/"):
        with pytest.raises(integrations.EndpointError):
            integrations.create_endpoint(db, config, shop, url=url, events=["lead.created"], fields=[],
                                         actor="test")
    assert integrations.endpoints(db, shop) == []


@pytest.mark.slow
def test_one_delivery_per_event_across_a_crash(tmp_path, receiver):
    """The server commits a lead (and its event), is killed before any worker sent it, and
    starts again: the event is delivered, once."""
    import signal
    import time

    from app import businesses
    from app.db import Database
    from tests.support.app import ServerProcess
    from tests.test_form_server import _submit

    env = {"CAPTEO_INTEGRATIONS_ALLOW_PRIVATE_TARGETS": "true",
           "CAPTEO_INTEGRATIONS_ALLOWED_PORTS": f"443,{receiver.port}"}
    srv = ServerProcess(tmp_path, extra_env=env, args=("--no-worker",))
    srv.start()
    cfg = config_mod.load(srv.config_path, env=env)
    db = Database(cfg.db_path)
    demo = businesses.by_slug(db, "demo")
    _, secret = integrations.create_endpoint(db, cfg, demo["id"], url=receiver.url, events=["lead.created"],
                                             fields=[], actor="test")
    reference = _submit(srv.url)
    assert db.query("SELECT type FROM webhook_events") == [{"type": "lead.created"}]  # committed with the lead
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait()
    assert receiver.requests == []

    again = ServerProcess(tmp_path, extra_env=env)
    again.start()
    try:
        deadline = time.monotonic() + 20
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # room for a second delivery, were there one
    finally:
        assert again.stop() == 0
    [request] = receiver.requests
    payload = Webhook(secret).verify(request["body"], request["headers"])
    assert payload["type"] == "lead.created" and payload["data"]["reference"] == reference
    assert db.query("SELECT status FROM webhook_deliveries") == [{"status": "delivered"}]


def test_the_commit_wakes_the_delivery_at_once(db, cfg, shop, receiver):
    """The trigger asks for a wake-up after the commit: delivered in seconds, not at the
    next minute's sweep."""
    import time

    import jobs

    jobs.configure(cfg, db)
    _endpoint(db, cfg, shop, receiver.url)
    worker = jobs.InProcessWorker(cfg)
    worker.start()
    try:
        time.sleep(1.5)  # past the sweeps a starting worker runs
        _lead(db, shop)
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert len(receiver.requests) == 1


def test_no_other_place_fetches_a_url_a_subscriber_could_give(config, client):
    """The policy's Markdown makes no image or raw HTML (nothing the browser would fetch),
    and only the guarded module opens connections to addresses that come from a business:
    every module that opens network connections is listed here, with what it calls."""
    import ast
    from pathlib import Path

    from app.privacy import policy_html

    override = config.data_dir / "privacy"
    override.mkdir(parents=True, exist_ok=True)
    (override / "policy.fr.md").write_text("# P\n\n![pixel](https://tracker.example/p.png)\n\n"
                                           "<img src='https://tracker.example/q.png'>\n")
    html = policy_html(config, "fr")
    assert "<img" not in html and "<a href=\"https://tracker.example/p.png\">pixel</a>" in html  # a link at most
    assert "&lt;img src=" in html  # raw HTML is shown as text
    page = client.get("/fr/privacy")
    assert "img-src 'self' data:" in page.headers["content-security-policy"]

    network = {"httpx", "httpcore", "urllib.request", "http.client", "requests", "socket", "huggingface_hub",
               "smtplib", "jwt"}
    reaching = {}
    for path in sorted(Path("app").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if names & network:
            reaching[str(path)] = sorted(names & network)
    assert reaching == {
        "app/integrations/guard.py": ["httpcore", "socket"],  # subscribers' URLs: the guard
        "app/messaging/email.py": ["smtplib"],  # the operator's SMTP server
        "app/messaging/geocoding.py": ["httpx"],  # geocoder.ca (operator-configured base URL)
        "app/messaging/twilio.py": ["httpx"],  # Twilio (operator-configured)
        "app/voicemail/models.py": ["huggingface_hub"],  # the operator's `run.py models pull`
        "app/voicemail/voipms.py": ["httpx"],  # VoIP.ms (operator-configured)
        "app/businesses/cloudflare_access.py": ["jwt"],
        "app/billing/paddle.py": ["httpx"],  # Paddle's API (the operator's account)
        "app/messaging/client.py": ["httpx"],  # the one client of Twilio and geocoder.ca (above)
        "app/voicemail/service.py": ["httpx", "socket"],  # the operator's own models service ([models] service_url)
    }, reaching


def test_the_delivery_log_is_kept_thirty_days(db, cfg, shop, receiver):
    _endpoint(db, cfg, shop, receiver.url, fields=["phone"])
    _lead(db, shop)
    _deliver_all(db, cfg)
    assert integrations.prune(db, clock.now() + timedelta(days=29)) == 0
    assert integrations.prune(db, clock.now() + timedelta(days=31)) == 1
    assert db.query("SELECT count(*) AS n FROM webhook_deliveries") == [{"n": 0}]


# --- found in review: each attack kept as a test ----------------------------------------------

def test_a_retry_after_beyond_reason_is_an_hour_and_zero_is_the_backoff(db, cfg, shop, receiver):
    _endpoint(db, cfg, shop, receiver.url)
    _lead(db, shop)
    [delivery_id] = integrations.dispatch(db, cfg)
    now = clock.now()
    receiver.script = [(429, {"Retry-After": "99999999999999999999"}), (503, {"Retry-After": "0"})]
    assert integrations.send(db, cfg, delivery_id, now=now) == "pending"
    row = db.one("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    assert row["attempts"] == 1 and row["next_attempt_at"] == (now + timedelta(hours=1)).isoformat(timespec="seconds")
    later = now + timedelta(hours=1, seconds=1)
    assert integrations.send(db, cfg, delivery_id, now=later) == "pending"
    row = db.one("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    assert row["next_attempt_at"] > (later + timedelta(seconds=30)).isoformat(timespec="seconds")  # not at once


def test_a_delivery_never_stays_sending_whatever_goes_wrong(db, cfg, shop, receiver, monkeypatch):
    _endpoint(db, cfg, shop, receiver.url)
    _lead(db, shop)
    [delivery_id] = integrations.dispatch(db, cfg)

    def broken(*args, **kwargs):
        raise OverflowError("something unforeseen")

    monkeypatch.setattr(integrations.guard, "post", broken)
    assert integrations.send(db, cfg, delivery_id) == "pending"
    row = db.one("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,))
    assert row["attempts"] == 1 and "OverflowError" in row["last_error"]


def test_other_tools_can_still_write_the_tables_with_triggers(db, cfg, shop, receiver):
    """The triggers need nothing of the connection: the sqlite3 shell, a repair script."""
    import apsw

    _endpoint(db, cfg, shop, receiver.url)
    lead = _lead(db, shop)
    raw = apsw.Connection(str(cfg.db_path))
    try:
        raw.execute("UPDATE leads SET status = 'contacted' WHERE id = ?", (lead["id"],))
    finally:
        raw.close()


def test_turning_an_endpoint_off_or_unticking_a_field_stops_what_waits(db, cfg, shop, receiver):
    endpoint_id, _ = _endpoint(db, cfg, shop, receiver.url, fields=["phone"])
    _lead(db, shop)
    [waiting] = integrations.dispatch(db, cfg)
    receiver.script = [(503, {})]
    assert integrations.send(db, cfg, waiting) == "pending"
    integrations.update_endpoint(db, cfg, shop, endpoint_id, url=receiver.url, events=["lead.created"], fields=[],
                                 enabled=True, actor="test")
    row = db.one("SELECT status, body FROM webhook_deliveries WHERE id = ?", (waiting,))
    assert row == {"status": "canceled", "body": None}  # built with the phone, which is no longer to be sent
    _lead(db, shop)
    [second] = integrations.dispatch(db, cfg)
    integrations.update_endpoint(db, cfg, shop, endpoint_id, url=receiver.url, events=["lead.created"], fields=[],
                                 enabled=False, actor="test")
    assert integrations.send(db, cfg, second, now=clock.now() + timedelta(hours=1)) == "canceled"
    assert len(receiver.requests) == 1


def test_one_failure_after_a_quiet_day_does_not_turn_the_endpoint_off(db, cfg, shop, receiver, monkeypatch):
    endpoint_id, _ = _endpoint(db, cfg, shop, receiver.url)
    now = clock.now()
    _lead(db, shop)
    receiver.script = [(400, {}), (503, {})]
    [first] = integrations.dispatch(db, cfg)
    assert integrations.send(db, cfg, first, now=now) == "failed"
    later = now + timedelta(hours=30)
    monkeypatch.setattr(clock, "now", lambda: later)  # the next request comes a day and more later
    _lead(db, shop)
    [second] = integrations.dispatch(db, cfg)
    assert integrations.send(db, cfg, second, now=later) == "pending"
    assert integrations.endpoint(db, shop, endpoint_id)["enabled"] == 1
    assert db.query("SELECT count(*) AS n FROM outbox WHERE kind = 'webhook_disabled'") == [{"n": 0}]
