"""Issue 12, the parts that need a person's own mobile number: set on their account page,
told by SMS of a lead assigned to them (queued with the assignment), and sent their
password-reset link by SMS (to a local Twilio-format server), over HTTP."""

from __future__ import annotations

import html
import re
import shutil
import time

import pytest
from litestar.testing import TestClient

from app import businesses, leads
from app import config as config_mod
from tests.fakes import FakeTwilio
from tests.support.app import csrf_token, write_config
from tests.support.people import make_business, signed_in
from tests.support.smtp import SmtpServer

PASSWORD = "correct horse battery"


@pytest.fixture
def team(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False, notify=[])
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="marie@gagnon.test", password=PASSWORD,
                                    name="Marie")
        member = businesses.add_user(conn, business_id=bid, email="luc@gagnon.test", password=PASSWORD,
                                     name="Luc", role="member", language="en")
        bare = businesses.add_user(conn, business_id=bid, email="ana@gagnon.test", password=PASSWORD,
                                   name="Ana", role="member")
        lead = leads.create(conn, business_id=bid, channel="web", actor="test", first_name="Alice",
                            last_name="Tremblay", phone="+15145550111", need="fuite")["id"]
        conn.execute("UPDATE users SET phone = '+15145550177' WHERE id = ?", (owner,))
    return {"bid": bid, "owner": owner, "member": member, "bare": bare, "lead": lead}


def sms(db, lead_id):
    return db.query("SELECT * FROM outbox WHERE lead_id = ? AND kind = 'assigned' ORDER BY id", (lead_id,))


def test_the_account_page_saves_a_number_and_refuses_a_bad_one(client, db, team):
    token = signed_in(client, db, team["member"], team["bid"])
    page = client.get("/fr/app/password")
    assert page.status_code == 200 and "Votre compte" in page.text and 'action="/fr/app/account/phone"' in page.text
    r = client.post("/fr/app/account/phone", data={"_csrf_token": token, "phone": "514 555-0123"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/password"
    assert db.one("SELECT phone FROM users WHERE id = ?", (team["member"],))["phone"] == "+15145550123"
    assert "555-0123" in client.get("/fr/app/password").text
    entry = db.one("SELECT * FROM audit_log WHERE action = 'user.phone'")
    shown = {k: v for k, v in entry.items() if k not in ("hash", "prev_hash", "at", "id")}
    assert entry["fields"] == '["phone"]' and "555" not in str(shown)  # field name only

    bad = client.post("/fr/app/account/phone", data={"_csrf_token": token, "phone": "123"})
    assert bad.status_code == 422 and "numéro de cellulaire n'est pas valide" in html.unescape(bad.text)
    assert db.one("SELECT phone FROM users WHERE id = ?", (team["member"],))["phone"] == "+15145550123"
    bad_en = client.post("/en/app/account/phone", data={"_csrf_token": token, "phone": "not a number"})
    assert bad_en.status_code == 422 and "This mobile number is not valid." in bad_en.text

    client.post("/fr/app/account/phone", data={"_csrf_token": token, "phone": ""})
    assert db.one("SELECT phone FROM users WHERE id = ?", (team["member"],))["phone"] is None
    assert db.one("SELECT count(*) AS n FROM audit_log WHERE action = 'user.phone'")["n"] == 2


def test_assigning_queues_one_sms_to_the_assignee_in_their_language(client, db, team):
    with db.write() as conn:
        conn.execute("UPDATE users SET phone = '+15145550188' WHERE id = ?", (team["member"],))
    token = signed_in(client, db, team["owner"], team["bid"])
    r = client.post(f"/fr/app/leads/{team['lead']}/assign",
                    data={"_csrf_token": token, "assigned_to": str(team["member"])})
    assert r.status_code == 200
    [message] = sms(db, team["lead"])
    assert message["to_phone"] == "+15145550188" and message["status"] == "pending"
    assert message["body"].startswith("Plomberie Gagnon: a request was assigned to you - ")  # English, GSM dash
    assert f"/en/app/leads/{team['lead']}" in message["body"]
    for personal in ("Alice", "Tremblay", "5550111", "fuite"):  # nothing about the client but the link
        assert personal not in message["body"]


def test_assigning_through_the_function_gives_an_absolute_link_in_one_transaction(db, team):
    with db.write() as conn:
        conn.execute("UPDATE users SET phone = '+15145550188' WHERE id = ?", (team["member"],))
    assert leads.assign(db, team["bid"], team["lead"], team["member"], user_id=team["owner"],
                        public_url="https://capteo.example")
    [message] = sms(db, team["lead"])
    assert message["body"].endswith(f"https://capteo.example/en/app/leads/{team['lead']}")
    # The same assignment again changes nothing and queues nothing.
    assert not leads.assign(db, team["bid"], team["lead"], team["member"], user_id=team["owner"])
    assert len(sms(db, team["lead"])) == 1


def test_no_sms_when_assigning_to_oneself_or_to_someone_without_a_number(client, db, team):
    token = signed_in(client, db, team["owner"], team["bid"])
    for person in ("owner", "bare"):  # the owner has a number, but assigned it to herself
        client.post(f"/fr/app/leads/{team['lead']}/assign",
                    data={"_csrf_token": token, "assigned_to": str(team[person])})
        assert leads.get(db, team["bid"], team["lead"])["assigned_to"] == team[person]
    client.post(f"/fr/app/leads/{team['lead']}/assign", data={"_csrf_token": token, "assigned_to": ""})
    assert sms(db, team["lead"]) == []
    assert db.one("SELECT count(*) AS n FROM outbox")["n"] == 0


def test_the_owner_is_told_in_french_when_a_member_gives_her_a_lead(db, team):
    assert leads.assign(db, team["bid"], team["lead"], team["owner"], user_id=team["member"],
                        public_url="https://capteo.example")
    [message] = sms(db, team["lead"])
    assert message["to_phone"] == "+15145550177"
    assert message["body"].startswith("Plomberie Gagnon : une demande vous a été assignée - https://capteo.example/fr/")


# ---- the reset link by SMS --------------------------------------------------------------------------

@pytest.fixture
def recovering(tmp_path, migrated_db, monkeypatch):
    with SmtpServer() as smtp, FakeTwilio() as twilio:
        monkeypatch.setenv("CAPTEO_SECRET_TWILIO_AUTH_TOKEN", twilio.auth_token)  # read from the environment
        cfg = config_mod.load(write_config(
            tmp_path, smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                            "from_address": "Capteo <noreply@capteo.test>"},
            twilio={"account_sid": twilio.account_sid, "from_number": "+15145550199", "api_base": twilio.url}),
            env={})
        cfg.ensure_dirs()
        shutil.copyfile(migrated_db, cfg.db_path)
        from app.db import Database
        from app.web import create_app

        db = Database(cfg.db_path)
        bid, _ = make_business(db, "gagnon", "Plomberie Gagnon")
        with db.write() as conn:
            with_phone = businesses.add_user(conn, business_id=bid, email="aide@gagnon.test", password=PASSWORD,
                                             role="member")
            businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password=PASSWORD)
        businesses.set_phone(db, with_phone, "+15145550123")
        with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as client:
            yield client, db, smtp, twilio
        db.close()


def _wait(items, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(items) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return items


def test_a_reset_link_goes_by_sms_too_and_is_never_stored(recovering):
    client, db, smtp, twilio = recovering
    r = client.post("/fr/password/forgot", data={"_csrf_token": csrf_token(client), "email": "aide@gagnon.test"})
    assert r.status_code == 200
    [text] = _wait(twilio.sent, 1)
    [mail] = _wait(smtp.messages, 1)
    assert text["To"] == "+15145550123" and text["From"] == "+15145550199"
    link = re.search(r"http://\S+/fr/password/reset/[\w-]+", text["Body"]).group(0)
    assert link in mail.get_payload(decode=True).decode()  # the same one-time link
    token = link.rsplit("/", 1)[1]
    assert db.one("SELECT count(*) AS n FROM outbox")["n"] == 0
    dump = "\n".join(str(dict(r)) for t in ("password_resets", "audit_log")
                     for r in db.query(f"SELECT * FROM {t}"))
    assert token not in dump and "5550123" not in dump
    path = link[link.index("/fr/"):]
    r = client.post(path, data={"_csrf_token": csrf_token(client), "password": "un tout nouveau secret",
                                "password_again": "un tout nouveau secret"}, follow_redirects=False)
    assert r.status_code == 303 and businesses.authenticate(db, "aide@gagnon.test", "un tout nouveau secret")


def test_no_sms_for_an_account_without_a_number_and_the_same_answer(recovering):
    client, db, smtp, twilio = recovering
    answers = [client.post("/fr/password/forgot", data={"_csrf_token": csrf_token(client), "email": email}).text
               for email in ("owner@gagnon.test", "nobody@gagnon.test")]
    assert answers[0] == answers[1]
    _wait(smtp.messages, 1)
    time.sleep(0.2)
    assert twilio.sent == [] and len(smtp.messages) == 1
