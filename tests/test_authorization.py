"""Who may do what on the dashboard, generated from the app's own route table.

Every dashboard route x {anonymous, member of another business, member, owner}.
A route the matrix does not know (a new path parameter, a new public route)
fails `test_every_route_is_covered` until it is added here.
"""

from __future__ import annotations

import re
import shutil
from datetime import date

import pytest
from litestar.testing import TestClient

from app import appointments, businesses, chat, integrations, leads, privacy
from app import config as config_mod
from app.businesses import auth
from app.db import Database
from app.leads import custom_fields
from app.privacy import versions
from app.web import create_app
from tests.support.app import csrf_token, write_config

# Routes under /{lang}/app reachable without signing in, and why.
PUBLIC_APP_ROUTES = {"/{lang:str}/app": "a redirect to the inbox, which itself asks for sign-in"}
OWNER_ONLY = re.compile(r"^/\{lang:str\}/app/(settings|audit|billing"  # settings/pbx-token, billing/portal included
                        r"|privacy/(export|erase|withdraw)$)")  # a person's whole file, out or destroyed
# Every path parameter a dashboard route may have, and which of business A's objects fills it.
PARAMS = {"lead_id": "lead", "appointment_id": "appointment", "field_id": "field", "user_id": "member2",
          "request_id": "privacy_request", "voicemail_id": "voicemail", "invitation_id": "invitation",
          "client_id": "client", "endpoint_id": "endpoint", "delivery_id": "delivery",
          "version": "policy_version",  # a policy version: each person dismisses its notice for themselves
          "conversation_id": "conversation"}  # a chat conversation: members read, take over, answer it
# An invitation a person received is theirs, not their business's: each opens one addressed to
# them (business B invites them); anyone else, the outsider included, gets 404 on it.
RECEIVED = re.compile(r"^/\{lang:str\}/app/invitations/")


def dashboard_routes(app) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if not route.path.startswith("/{lang:str}/app"):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method in ("GET", "POST") and route.path not in PUBLIC_APP_ROUTES:
                    found.append((method, route.path))
    return sorted(set(found))


@pytest.fixture(scope="module")
def template_dir(tmp_path_factory, migrated_db):
    """One populated data directory, copied for each test (cheap, and each test may
    change or remove what it likes)."""
    d = tmp_path_factory.mktemp("authz")
    cfg = config_mod.load(write_config(d), env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    db = Database(cfg.db_path)
    ids = {}
    with db.write() as conn:
        a = businesses.create_business(conn, slug="a", name="A", timezone="America/Toronto")
        b = businesses.create_business(conn, slug="b", name="B", timezone="America/Toronto")
        ids["owner"] = businesses.add_user(conn, business_id=a, email="owner@a.test", password="x" * 12)
        ids["member"] = businesses.add_user(conn, business_id=a, email="member@a.test", password="x" * 12,
                                            role="member")
        ids["member2"] = businesses.add_user(conn, business_id=a, email="member2@a.test", password="x" * 12,
                                             role="member")
        ids["outsider"] = businesses.add_user(conn, business_id=b, email="owner@b.test", password="x" * 12)
        ids["lead"] = leads.create(conn, business_id=a, channel="web", actor="t", first_name="Alice",
                                   phone="+15145550101", need="fuite")["id"]
        ids["client"] = next(conn.execute("SELECT client_id FROM leads WHERE id = ?", (ids["lead"],)))["client_id"]
        ids["field"] = custom_fields.add(conn, business_id=a, kind="short_text", label_fr="Q", label_en="Q")
        ids["a"], ids["b"] = a, b
    business_a = businesses.get(db, a)
    slot = appointments.Slot.local("2030-01-10", "10:00", 60, "America/Toronto")
    ids["appointment"], _ = appointments.book(db, business_a, ids["lead"], slot, user_id=ids["owner"])
    with db.write() as conn:
        conn.execute("INSERT INTO voicemails (business_id, lead_id, audio_path, created_at, state) "
                     "VALUES (?, ?, 'vm-test.wav', '2026-11-22T00:00:00+00:00', 'failed')", (a, ids["lead"]))
        ids["voicemail"] = conn.last_insert_rowid()
    (d / "data" / "audio" / "vm-test.wav").write_bytes(b"RIFF")
    ids["privacy_request"] = privacy.register_request(db, business_id=a, kind="access", person="Alice",
                                                      contact="alice@example.com", details="", source="public",
                                                      actor="t")
    businesses.invite(db, a, "newcomer@example.test", inviter_id=ids["owner"])
    for who in ("owner", "member"):
        businesses.invite(db, b, f"{who}@a.test", inviter_id=ids["outsider"])
        ids[f"received_{who}"] = db.one("SELECT id FROM invitations WHERE email = ?", (f"{who}@a.test",))["id"]
    ids["invitation"] = db.one("SELECT id FROM invitations WHERE email = 'newcomer@example.test'")["id"]
    # A webhook of business A (an address literal: no DNS) and its test delivery.
    ids["endpoint"], _ = integrations.create_endpoint(db, cfg, a, url="https://93.184.215.14/hook",
                                                      events=["lead.created"], fields=[], actor="t")
    ids["delivery"] = integrations.send_test(db, a, ids["endpoint"], actor="t")
    # A chat conversation of business A, open, with a visitor's message in it.
    _, ids["conversation"] = chat.start(db, business_a, "fr", consent_version="t")
    chat.post(db, cfg, chat.get(db, a, ids["conversation"]), "Fuite sous l'évier de Alice")
    (d / "policy.fr.md").write_text("# Politique\n")
    (d / "policy.en.md").write_text("# Policy\n")
    ids["policy_version"] = versions.publish(db, cfg, d / "policy.fr.md", d / "policy.en.md",
                                             date(2031, 1, 1))
    db.close()
    return d, ids


@pytest.fixture
def world(template_dir, tmp_path):
    src, ids = template_dir
    shutil.copytree(src / "data", tmp_path / "data")
    cfg = config_mod.load(write_config(tmp_path), env={})
    app = create_app(cfg, run_worker=False)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield app, client, ids, Database(cfg.db_path)


def _as(client, db, ids, who: str | None) -> dict:
    headers = {}
    token = csrf_token(client)
    if who:
        business = ids["b"] if who == "outsider" else ids["a"]
        session = auth.start_session(db, user_id=ids[who], business_id=business)
        headers["cookie"] = f"capteo_session={session}; capteo_csrf={client.cookies.get('capteo_csrf')}"
    return {"headers": headers, "token": token}


def _url(path: str, ids: dict, who: str | None = None) -> str:
    url = path.replace("{lang:str}", "fr")
    params = dict(PARAMS)
    if RECEIVED.match(path):
        params["invitation_id"] = f"received_{who if who in ('owner', 'member') else 'member'}"
    for name, key in params.items():
        url = url.replace("{" + name + ":int}", str(ids[key]))
        url = url.replace("{" + name + ":str}", str(ids[key]))
    return url


def _call(client, method, url, who):
    if method == "GET":
        return client.get(url, headers=who["headers"], follow_redirects=False)
    return client.post(url, data={"_csrf_token": who["token"]}, headers=who["headers"], follow_redirects=False)


def test_every_route_is_covered(world):
    app, *_ = world
    routes = dashboard_routes(app)
    assert len(routes) >= 25
    for method, path in routes:
        unknown = set(re.findall(r"\{(\w+):", path)) - set(PARAMS) - {"lang"}
        assert not unknown, f"{method} {path}: add {unknown} to PARAMS in this test"


def _routes():
    app = create_app(config_mod.load(config_mod.DEFAULT_CONFIG, env={}), run_worker=False)
    return dashboard_routes(app)


ROUTES = _routes()
@pytest.mark.parametrize("method, path", ROUTES)
def test_anonymous_is_sent_to_sign_in(world, method, path):
    _app, client, ids, db = world
    r = _call(client, method, _url(path, ids), _as(client, db, ids, None))
    assert r.status_code == 303 and r.headers["location"].startswith("/fr/login?next=")


@pytest.mark.parametrize("method, path", [r for r in ROUTES if re.search(r"\{\w+:int\}", r[1])])
def test_another_business_gets_404_on_this_business_objects(world, method, path):
    _app, client, ids, db = world
    r = _call(client, method, _url(path, ids), _as(client, db, ids, "outsider"))
    assert r.status_code == 404, r.text[:300]


@pytest.mark.parametrize("method, path", ROUTES)
def test_member_is_allowed_except_owner_pages(world, method, path):
    _app, client, ids, db = world
    r = _call(client, method, _url(path, ids, "member"), _as(client, db, ids, "member"))
    if OWNER_ONLY.match(path):
        assert r.status_code == 403 and "Réservé au propriétaire" in r.text
    else:
        assert r.status_code in (200, 204, 303, 409, 422), (r.status_code, r.text[:300])


@pytest.mark.parametrize("method, path", ROUTES)
def test_owner_is_allowed_everywhere(world, method, path):
    _app, client, ids, db = world
    r = _call(client, method, _url(path, ids, "owner"), _as(client, db, ids, "owner"))
    assert r.status_code in (200, 204, 303, 409, 422), (r.status_code, r.text[:300])


@pytest.mark.parametrize("method, path", [r for r in ROUTES if r[0] == "POST"])
def test_csrf_is_refused_on_every_state_changing_route(world, method, path):
    _app, client, ids, db = world
    who = _as(client, db, ids, "owner")
    r = client.post(_url(path, ids), data={}, headers=who["headers"], follow_redirects=False)
    assert r.status_code == 403 and "Requête refusée" in r.text
    r = client.post(_url(path, ids), data={"_csrf_token": "forged"}, headers=who["headers"], follow_redirects=False)
    assert r.status_code == 403


def test_outsider_sees_only_own_business_in_lists(world):
    _app, client, ids, db = world
    who = _as(client, db, ids, "outsider")
    assert "Alice" not in client.get("/fr/app/leads", headers=who["headers"]).text
    points = client.get("/fr/app/map/points", headers=who["headers"]).json()
    assert points == {"points": []}


def test_outsider_sees_only_own_business_chats(world):
    _app, client, ids, db = world
    who = _as(client, db, ids, "outsider")
    chats = client.get("/fr/app/chats", headers=who["headers"])
    assert chats.status_code == 200 and f"/app/chats/{ids['conversation']}" not in chats.text
    assert "Alice" not in chats.text


def test_ics_feed_needs_the_secret(world):
    _app, client, ids, db = world
    token = businesses.feed_token(db, ids["a"])
    feed = client.get(f"/ics/{token}.ics")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VEVENT" in feed.text and "Alice" in feed.text
    assert client.get("/ics/not-the-secret-token-at-all.ics").status_code == 404
    assert client.get("/ics/x.ics").status_code == 404
    other = businesses.feed_token(db, ids["b"])
    assert "Alice" not in client.get(f"/ics/{other}.ics").text
