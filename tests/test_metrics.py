"""GET /metrics: the Prometheus text, what it holds, that no label names a business or a
person, and who may read it (the token, or 127.0.0.1 with no proxy in between)."""

from __future__ import annotations

import re
import shutil

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

import jobs
import jobs.system
from app import businesses, clock, leads
from app import config as config_mod
from app.ops import metrics
from app.web import create_app
from tests.support.app import write_config
from tests.support.people import make_business, signed_in

SLUG = "plomberie-tremblay-laval"
NAME = "Plomberie Tremblay Laval"
PHONE = "+15145550142"
EMAIL = "josee.gagnon@example.com"
OWNER = "owner@tremblay.test"


def token_of(config) -> str:
    return (config.data_dir / "secrets" / "metrics").read_text().strip()


def scrape(client, config) -> dict[str, list]:
    """/metrics with the token: {family name: its samples}; checks the type and that it parses."""
    r = client.get("/metrics", headers={"Authorization": f"Bearer {token_of(config)}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == metrics.CONTENT_TYPE_LATEST
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


def value(families, name, **labels) -> float:
    family = name.removesuffix("_count").removesuffix("_sum")
    return sum(s.value for s in families[family] if s.name == name and labels.items() <= s.labels.items())


def test_latency_by_route_template_and_nothing_personal_in_labels(client, db, config):
    bid, _ = make_business(db, SLUG, NAME, notify=[PHONE])
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email=OWNER, password="x" * 12)
        lead = leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Josée", last_name="Gagnon",
                            phone=PHONE, email=EMAIL, need="fuite sous l'évier")["id"]
        now = clock.now_iso()
        conn.execute("INSERT INTO outbox (business_id, lead_id, kind, to_phone, body, status, next_attempt_at,"
                     " created_at) VALUES (?, ?, 'new_lead', ?, 'Nouveau', 'failed', ?, ?)",
                     (bid, lead, PHONE, now, now))
        conn.execute("INSERT INTO outbox (business_id, lead_id, kind, to_phone, body, next_attempt_at, created_at)"
                     " VALUES (?, ?, 'new_lead', ?, 'Nouveau', ?, '2020-01-01T00:00:00+00:00')",
                     (bid, lead, PHONE, now))
        conn.execute("INSERT INTO voicemails (business_id, lead_id, caller_id, created_at, updated_at, state)"
                     " VALUES (?, ?, ?, '2026-01-01T10:00:00+00:00', '2026-01-01T10:00:42+00:00', 'lead_created')",
                     (bid, lead, PHONE))
        conn.execute("INSERT INTO voicemails (business_id, caller_id, created_at, updated_at, state)"
                     " VALUES (?, ?, ?, ?, 'received')", (bid, PHONE, now, now))
        conn.execute("INSERT INTO webhook_endpoints (business_id, url, secret, created_at, updated_at)"
                     " VALUES (?, 'https://crm.tremblay.test/hook', 's', ?, ?)", (bid, now, now))
        endpoint = conn.last_insert_rowid()
        conn.execute("INSERT INTO webhook_deliveries (business_id, endpoint_id, message_id, event_type, lead_id,"
                     " status, next_attempt_at, created_at) VALUES (?, ?, 'msg_1', 'lead.created', ?, 'delivered',"
                     " ?, ?)", (bid, endpoint, lead, now, now))
    signed_in(client, db, owner, bid)
    for path in (f"/fr/app/leads/{lead}", f"/en/app/leads/{lead}", "/fr/app/leads", f"/fr/f/{SLUG}", "/healthz",
                 f"/fr/app/leads/{lead}?q={PHONE}", f"/no/such/{SLUG}/{lead}"):
        assert client.get(path).status_code < 500, path

    families = scrape(client, config)
    latency = "capteo_http_request_duration_seconds"
    routes = {s.labels["route"] for s in families[latency]}
    assert {"/{lang}/app/leads/{lead_id}", "/{lang}/f/{slug}", "/healthz", "(no route)"} <= routes, routes
    assert value(families, latency + "_count", route="/{lang}/app/leads/{lead_id}", method="GET", status="2xx") >= 3
    assert {s.labels["status"] for s in families[latency]} <= {"1xx", "2xx", "3xx", "4xx", "5xx"}

    assert value(families, "capteo_sms", status="failed") == 1
    assert value(families, "capteo_sms", status="pending") == 1
    assert value(families, "capteo_sms_oldest_waiting_seconds") > 3600 * 24 * 365
    assert value(families, "capteo_voicemails", state="lead_created") == 1
    assert value(families, "capteo_voicemails", state="received") == 1
    assert value(families, "capteo_voicemail_to_lead_seconds", quantile="0.5") == 42
    assert value(families, "capteo_voicemail_to_lead_sample") == 1
    assert value(families, "capteo_webhook_deliveries", status="delivered") == 1
    assert value(families, "capteo_chat_conversations", state="open") == 0
    assert {s.labels["model"] for s in families["capteo_model_usable"]} == {"whisper", "llm"}
    assert all(s.value in (-1, 0, 1) for s in families["capteo_model_usable"])
    assert all(s.value == 1 for s in families["capteo_metrics_source_up"])

    personal = [PHONE, PHONE[2:], "5550142", EMAIL, OWNER, SLUG, NAME, "Tremblay", "tremblay", "Gagnon", "Josée",
                "crm.", "https://"]
    labels = [v for samples in families.values() for s in samples for k, v in s.labels.items()]
    for label in labels:
        assert not any(p in label for p in personal), label
    for route in routes:
        # Nothing concrete in a route: no id, no slug, no query string, only the template.
        assert not re.search(r"\d", re.sub(r"\{[^}]*\}", "", route)), route
        assert "?" not in route


def test_queue_depth_reflects_enqueued_tasks(client, config):
    before = scrape(client, config)
    for _ in range(3):
        jobs.system.heartbeat()
    after = scrape(client, config)
    assert value(after, "capteo_queue_depth", queue="huey") == value(before, "capteo_queue_depth", queue="huey") + 3
    assert value(after, "capteo_queue_depth", queue="models_huey") == jobs.models_huey.pending_count()
    jobs.huey.flush()


def test_a_remote_client_needs_the_token(client, config):
    # TestClient's peer is "testclient": not loopback.
    r = client.get("/metrics")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "capteo_" not in r.text
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": token_of(config)}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {token_of(config)}"}).status_code == 200


class _FromLoopback:
    """The app as if every request came from 127.0.0.1 (TestClient's peer is "testclient")."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope = {**scope, "client": ("127.0.0.1", 40000)}
        await self.app(scope, receive, send)


def _client(tmp_path, migrated_db, **metrics_section):
    tmp_path.mkdir()
    cfg = config_mod.load(write_config(tmp_path, metrics=metrics_section), env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    return cfg, TestClient(_FromLoopback(create_app(cfg, run_worker=False)), base_url="http://127.0.0.1")


def test_localhost_reads_without_token_unless_proxied_or_not_allowed(tmp_path, migrated_db):
    cfg, c = _client(tmp_path / "a", migrated_db)
    with c:
        assert c.get("/metrics").status_code == 200
        for header in ("X-Forwarded-For", "CF-Connecting-IP", "Forwarded", "X-Real-IP"):
            assert c.get("/metrics", headers={header: "203.0.113.9"}).status_code == 401, header
        assert c.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9",
                                          "Authorization": f"Bearer {token_of(cfg)}"}).status_code == 200
    cfg, c = _client(tmp_path / "b", migrated_db, allow_localhost=False)
    with c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": f"Bearer {token_of(cfg)}"}).status_code == 200
    cfg, c = _client(tmp_path / "c", migrated_db, enabled=False)
    with c:
        assert c.get("/metrics").status_code == 404
        assert c.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    assert not (cfg.data_dir / "secrets" / "metrics").exists()  # off: no token made


@pytest.mark.parametrize(("peer", "headers", "allow_localhost", "proxy_header", "expected"), [
    ("127.0.0.1", {}, True, "", True),
    ("::1", {}, True, "", True),
    ("127.0.0.1", {}, False, "", False),
    ("10.0.0.5", {}, True, "", False),
    (None, {}, True, "", False),
    ("127.0.0.1", {"x-forwarded-for": "203.0.113.9"}, True, "", False),
    ("127.0.0.1", {"x-client-ip": "203.0.113.9"}, True, "X-Client-IP", False),
    ("10.0.0.5", {"authorization": "Bearer secret-token"}, False, "", True),
    ("10.0.0.5", {"authorization": "bearer secret-token"}, False, "", True),
    ("10.0.0.5", {"authorization": "Bearer secret-tokenX"}, False, "", False),
    ("10.0.0.5", {"authorization": "Basic secret-token"}, False, "", False),
])
def test_who_may_read(tmp_path, peer, headers, allow_localhost, proxy_header, expected):
    cfg = config_mod.load(write_config(tmp_path, metrics={"allow_localhost": allow_localhost},
                                       server={"trust_proxy_header": proxy_header}), env={})
    assert metrics.may_read(cfg, "secret-token", headers, peer) is expected


@pytest.mark.slow
def test_a_real_server_answers_its_own_box(server):
    assert httpx.get(server.url + "/fr/f/demo").status_code == 200
    r = httpx.get(server.url + "/metrics")  # from 127.0.0.1, no proxy: no token needed by default
    assert r.status_code == 200
    assert r.headers["content-type"] == metrics.CONTENT_TYPE_LATEST
    families = {f.name: f.samples for f in text_string_to_metric_families(r.text)}
    routes = {s.labels["route"] for s in families["capteo_http_request_duration_seconds"]}
    assert "/{lang}/f/{slug}" in routes
    assert "demo" not in " ".join(v for samples in families.values() for s in samples for v in s.labels.values())
    assert {s.labels["queue"] for s in families["capteo_queue_depth"]} == {"huey", "models_huey"}
    # Through a proxy on the same box: the token is required.
    assert httpx.get(server.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401
    token = (server.directory / "data" / "secrets" / "metrics").read_text().strip()
    assert httpx.get(server.url + "/metrics", headers={"X-Forwarded-For": "203.0.113.9",
                                                       "Authorization": f"Bearer {token}"}).status_code == 200
