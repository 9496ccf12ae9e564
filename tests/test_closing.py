"""Leaving with everything: the whole-business archive (all of A, nothing of B, a documented
schema, CSV and JSON agreeing), closing (the doors answer that the business takes no requests,
the team is signed out, Paddle's subscription is canceled against a local fake, a refusal does
not block), reopening within 7 days under a settable clock, and after 7 days the final erasure:
no byte of A's personal data left in the database, its WAL or the audio directory; B untouched."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import TestClient

from app import businesses, clock, integrations, leads, privacy
from app import config as config_mod
from app.businesses import auth, closing
from app.db import Database
from app.web import create_app
from tests.fakes import FakeService
from tests.support.app import csrf_token, write_config
from tests.support.people import make_business, signed_in

T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
A = {"first_name": "Alphamarkfirst", "last_name": "Alphamarklast", "phone": "+15145559876",
     "email": "alpha.marker@example.com", "street_address": "77 rue Alphamarkville"}
B = {"first_name": "Betamarkfirst", "last_name": "Betamarklast", "phone": "+14385554321",
     "email": "beta.marker@example.com", "street_address": "12 rue Betamarkville"}
A_TRACES = ("Alphamarkfirst", "Alphamarklast", "5559876", "alpha.marker", "Alphamarkville", "Alphamarknote",
            "Alphamarkcustom", "Alphamarksms", "Alphamarktranscript", "Alphamarkperson", "Alphamarkhook",
            "alphamark-owner", "alphamark-member", "Alphamarkaudio")
B_TRACES = ("Betamarkfirst", "Betamarklast", "4385554321", "beta.marker", "Betamarkville", "Betamarknote",
            "Betamarkcustom", "Betamarktranscript", "Betamarkperson", "betamark-owner")


class FakePaddle(FakeService):
    """POST /subscriptions/{id}/cancel, as Paddle answers it."""

    def answer(self, request):
        parts = request["path"].strip("/").split("/")
        if request["headers"].get("Authorization") != "Bearer pdl_test_apikey":
            return 403, {"error": {"type": "request_error", "code": "forbidden", "detail": "bad key"}}
        if request["method"] == "POST" and len(parts) == 3 and parts[0] == "subscriptions" and parts[2] == "cancel":
            return 200, {"data": {"id": parts[1], "status": "canceled"}, "meta": {"request_id": "r"}}
        return 404, {"error": {"type": "request_error", "code": "not_found", "detail": "no"}}


def _fill(db, config, bid, m, tag):
    """A lead with a note, an SMS, a voicemail (audio file), an appointment, a privacy request."""
    with db.write() as conn:
        lead = leads.create(conn, business_id=bid, channel="web", actor="t", need=f"Fuite {tag}need",
                            consent_text="J'accepte", consent_version="web-1", consent_at=clock.now_iso(),
                            custom_fields={"1": {"kind": "short_text", "label_fr": "Q", "label_en": "Q",
                                                 "value": f"{tag}custom"}}, **m)
        conn.execute("INSERT INTO lead_events (business_id, lead_id, at, kind, body) VALUES (?, ?, ?, 'note', ?)",
                     (bid, lead["id"], clock.now_iso(), f"{tag}note"))
        conn.execute("INSERT INTO outbox (business_id, lead_id, kind, to_phone, body, next_attempt_at, created_at)"
                     " VALUES (?, ?, 'client_appointment', ?, ?, ?, ?)",
                     (bid, lead["id"], m["phone"], f"{tag}sms", clock.now_iso(), clock.now_iso()))
        conn.execute("INSERT INTO appointments (business_id, lead_id, starts_at, ends_at, created_at, updated_at)"
                     " VALUES (?, ?, '2026-12-01T15:00:00+00:00', '2026-12-01T16:00:00+00:00', ?, ?)",
                     (bid, lead["id"], clock.now_iso(), clock.now_iso()))
        name = f"{tag.lower()}.wav"
        (config.audio_dir / name).write_bytes(f"RIFF-{tag}audio".encode())
        conn.execute("INSERT INTO voicemails (business_id, lead_id, caller_id, audio_path, transcript, created_at)"
                     " VALUES (?, ?, ?, ?, ?, ?)", (bid, lead["id"], m["phone"], name, f"{tag}transcript",
                                                    clock.now_iso()))
    privacy.register_request(db, business_id=bid, kind="access", person=f"{tag}person",
                             contact=m["email"], details="", source="public", actor="t")
    return lead["id"]


@pytest.fixture
def world(tmp_path, migrated_db, monkeypatch):
    monkeypatch.setenv("CAPTEO_SECRET_PADDLE_API_KEY", "pdl_test_apikey")
    monkeypatch.setenv("CAPTEO_SECRET_PADDLE_WEBHOOK_SECRET", "pdl_ntfset_test_secret")
    now = {"t": T0}
    monkeypatch.setattr(clock, "now", lambda: now["t"])
    with FakePaddle() as fake:
        cfg = config_mod.load(write_config(tmp_path, billing={
            "price_id": "pri_01test", "client_token": "test_clienttoken", "paddle_api_base": fake.url}), env={})
        cfg.ensure_dirs()
        shutil.copyfile(migrated_db, cfg.db_path)
        db = Database(cfg.db_path)
        a, _ = make_business(db, "alpha", "Alpha Plomberie", custom=False)
        b, _ = make_business(db, "beta", "Beta Chauffage", custom=False)
        with db.write() as conn:
            ids = {"a": a, "b": b,
                   "owner": businesses.add_user(conn, business_id=a, email="alphamark-owner@example.test",
                                                password="x" * 12),
                   "member": businesses.add_user(conn, business_id=a, email="alphamark-member@example.test",
                                                 password="x" * 12, role="member"),
                   "owner_b": businesses.add_user(conn, business_id=b, email="betamark-owner@example.test",
                                                  password="x" * 12)}
            businesses.set_billing(conn, a, billing_state="active", paddle_subscription_id="sub_alpha",
                                   paddle_customer_id="ctm_alpha")
        ids["lead_a"] = _fill(db, cfg, a, A, "Alphamark")
        ids["lead_b"] = _fill(db, cfg, b, B, "Betamark")
        endpoint, _ = integrations.create_endpoint(db, cfg, a, url="https://93.184.215.14/hook",
                                                   events=["lead.created"], fields=[], actor="t")
        integrations.send_test(db, a, endpoint, actor="t")
        with db.write() as conn:
            conn.execute("UPDATE webhook_deliveries SET body = ? WHERE business_id = ?",
                         ('{"first_name": "Alphamarkhook"}', a))
        ids["pbx"] = businesses.new_pbx_token(db, a, actor="t")
        with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as client:
            yield {"client": client, "db": db, "cfg": cfg, "ids": ids, "now": now, "paddle": fake}
        db.close()


def _archive(client) -> zipfile.ZipFile:
    r = client.post("/fr/app/settings/export", data={"_csrf_token": csrf_token(client)})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/zip"), r.text[:300]
    assert r.headers["content-disposition"].startswith("attachment;")
    return zipfile.ZipFile(io.BytesIO(r.content))


def test_the_archive_holds_all_of_a_and_nothing_of_b(world):
    w = world
    client, ids = w["client"], w["ids"]
    signed_in(client, w["db"], ids["owner"], ids["a"])
    page = client.get("/fr/app/settings/export")
    assert page.status_code == 200 and "README.txt" in page.text
    archive = _archive(client)
    names = set(archive.namelist())
    assert {"README.txt", "business.json"} <= names
    for table in closing.TABLES:
        assert {f"{table.name}.json", f"{table.name}.csv"} <= names
    readme = archive.read("README.txt").decode()
    assert closing.SCHEMA in readme and "capteo-business-export/1" in readme
    for table in closing.TABLES:
        assert all(c in readme for c in table.columns) and f"{table.name}.csv" in readme
    everything = b"".join(archive.read(n) for n in names).decode("utf-8")
    for marker in A_TRACES:
        if marker not in ("Alphamarkaudio", "Alphamarkhook"):  # no audio, no webhook bodies
            assert marker in everything, marker
    for marker in B_TRACES:
        assert marker not in everything, marker
    assert "Alphamarkaudio" not in everything  # the audio itself is not exported
    business = json.loads(archive.read("business.json"))
    assert business["schema"] == closing.SCHEMA and business["slug"] == "alpha"
    lead = json.loads(archive.read("leads.json"))[0]
    assert lead["first_name"] == A["first_name"] and lead["consent_text"] == "J'accepte"
    assert "secret" not in archive.read("webhook_endpoints.json").decode()
    # CSV and JSON agree, row for row and cell for cell.
    for table in closing.TABLES:
        rows = json.loads(archive.read(f"{table.name}.json"))
        grid = list(csv.reader(io.StringIO(archive.read(f"{table.name}.csv").decode("utf-8-sig"))))
        assert grid[0] == list(table.columns)
        assert grid[1:] == [[closing._cell(row[c]) for c in table.columns] for row in rows], table.name
    assert w["db"].query_one("SELECT 1 AS x FROM audit_log WHERE action = 'business.export' AND business_id = ?",
                             (ids["a"],))


def test_many_leads_export(world):
    w = world
    with w["db"].write() as conn:
        for i in range(2000):
            leads.create(conn, business_id=w["ids"]["a"], channel="web", actor="t", need=f"n{i}",
                         first_name=f"P{i}", phone="+15145550000")
    signed_in(w["client"], w["db"], w["ids"]["owner"], w["ids"]["a"])
    archive = _archive(w["client"])
    assert len(json.loads(archive.read("leads.json"))) == 2001


def _close(w, slug="alpha"):
    return w["client"].post("/fr/app/settings/close",
                            data={"_csrf_token": csrf_token(w["client"]), "confirm_slug": slug})


def test_close_then_reopen_within_7_days(world):
    w = world
    client, ids, db = w["client"], w["ids"], w["db"]
    member_token = auth.start_session(db, user_id=ids["member"], business_id=ids["a"])
    signed_in(client, db, ids["owner"], ids["a"])
    page = client.get("/fr/app/settings/close")
    assert page.status_code == 200 and "alpha" in page.text and "1 demande" in page.text
    assert _close(w, "beta").status_code == 422 and not businesses.get(db, ids["a"])["closed_at"]
    r = _close(w)
    assert r.status_code == 200 and "Rouvrir" in r.text and "abonnement est annulé" in r.text
    assert businesses.get(db, ids["a"])["closed_at"]
    assert [q["path"] for q in w["paddle"].requests] == ["/subscriptions/sub_alpha/cancel"]
    assert db.query_one("SELECT 1 AS x FROM audit_log WHERE action = 'business.close'")
    # The owner's dashboard is the reopen page; the member was signed out.
    r = client.get("/fr/app/leads", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/settings/close"
    assert auth.session_for(db, member_token) is None
    # The doors answer that the business takes no requests; B's stay open.
    public = TestClient(client.app, base_url="http://127.0.0.1")
    with public:
        gone = public.get("/fr/f/alpha")
        assert gone.status_code == 410 and "ne reçoit plus de demandes" in gone.text
        assert public.post("/fr/f/alpha", data={"first_name": "x"}).status_code == 410
        api = public.post("/api/voicemail", headers={"authorization": f"Bearer {ids['pbx']}"},
                          files={"audio": ("vm.wav", b"RIFF", "audio/wav")})
        assert api.status_code == 410
        assert public.get("/fr/f/beta").status_code == 200
    # The export still works while closed.
    assert "leads.json" in _archive(client).namelist()
    w["now"]["t"] = T0 + timedelta(days=6, hours=23)
    r = client.post("/fr/app/settings/reopen", data={"_csrf_token": csrf_token(client)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/leads"
    assert businesses.get(db, ids["a"])["closed_at"] is None
    assert leads.get(db, ids["a"], ids["lead_a"])["first_name"] == A["first_name"]
    assert client.get("/fr/app/leads").status_code == 200
    assert client.get("/fr/f/alpha").status_code == 200
    assert db.query_one("SELECT 1 AS x FROM audit_log WHERE action = 'business.reopen'")


def test_a_refused_cancel_does_not_block_closing(world):
    w = world
    w["paddle"].script.append((500, {"error": {"type": "api_error", "code": "internal_error", "detail": "x"}}))
    signed_in(w["client"], w["db"], w["ids"]["owner"], w["ids"]["a"])
    r = _close(w)
    assert r.status_code == 200 and "pas pu annuler votre abonnement" in r.text
    assert businesses.get(w["db"], w["ids"]["a"])["closed_at"]
    assert w["db"].query_one("SELECT 1 AS x FROM audit_log WHERE action = 'billing.cancel_failed'")


def test_a_member_cannot_export_or_close(world):
    w = world
    signed_in(w["client"], w["db"], w["ids"]["member"], w["ids"]["a"])
    for path in ("/fr/app/settings/export", "/fr/app/settings/close"):
        assert w["client"].get(path).status_code == 403
    assert _close(w).status_code == 403 and not businesses.get(w["db"], w["ids"]["a"])["closed_at"]


def _raw(cfg) -> dict[str, bytes]:
    out = {}
    for name in ("capteo.db", "capteo.db-wal", "queue.db", "queue.db-wal"):
        path = cfg.data_dir / name
        out[name] = path.read_bytes() if path.exists() else b""
    for path in cfg.audio_dir.iterdir():
        out[f"audio/{path.name}"] = path.read_bytes()
    return out


def test_after_7_days_the_sweep_erases_a_and_leaves_b(world):
    w = world
    client, ids, db, cfg = w["client"], w["ids"], w["db"], w["cfg"]
    signed_in(client, db, ids["owner"], ids["a"])
    assert _close(w).status_code == 200
    assert closing.finalize_due(db, cfg, as_of=T0 + timedelta(days=6)) == []
    w["now"]["t"] = T0 + timedelta(days=7, minutes=1)
    r = client.post("/fr/app/settings/reopen", data={"_csrf_token": csrf_token(client)}, follow_redirects=False)
    assert r.status_code == 409 and businesses.get(db, ids["a"])["closed_at"]
    assert closing.finalize_due(db, cfg) == [ids["a"]]
    assert closing.finalize_due(db, cfg) == []
    files = _raw(cfg)
    for name, data in files.items():
        for marker in A_TRACES:
            assert marker.encode() not in data, f"{marker!r} still in {name}"
    assert not (cfg.audio_dir / "alphamark.wav").exists() and (cfg.audio_dir / "betamark.wav").exists()
    # B untouched.
    assert leads.get(db, ids["b"], ids["lead_b"])["first_name"] == B["first_name"]
    assert db.one("SELECT transcript FROM voicemails WHERE business_id = ?", (ids["b"],))["transcript"] == \
        "Betamarktranscript"
    # The address stays retired; the closing is recorded; the owner's account is gone.
    with db.write() as conn:
        assert businesses.slug_taken(conn, "alpha")
    assert db.query_one("SELECT 1 AS x FROM audit_log WHERE action = 'business.close.final' AND business_id = ?",
                        (ids["a"],))
    assert db.query_one("SELECT 1 AS x FROM users WHERE id = ?", (ids["owner"],)) is None
    assert client.get("/fr/f/alpha").status_code == 410
