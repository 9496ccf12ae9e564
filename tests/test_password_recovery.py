"""A way back in without the operator: a one-time link by email through the operator's
SMTP server (a local one here), or an owner giving a member a new one-time password."""

from __future__ import annotations

import html
import re
import shutil
import time

import pytest
from litestar.testing import TestClient

from app import businesses
from app import config as config_mod
from app.businesses import auth
from tests.support.app import csrf_token, write_config
from tests.support.people import make_business, signed_in
from tests.support.smtp import SmtpServer

PASSWORD = "correct horse battery"


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def mailing(tmp_path, migrated_db, smtp):
    """The app with an SMTP server configured, and a business with an owner and a member."""
    cfg = config_mod.load(write_config(tmp_path, smtp={"host": "127.0.0.1", "port": smtp.port, "starttls": False,
                                                        "from_address": "Capteo <noreply@capteo.test>"}), env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    from app.db import Database
    from app.web import create_app

    db = Database(cfg.db_path)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon")
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password=PASSWORD)
        member = businesses.add_user(conn, business_id=bid, email="aide@gagnon.test", password=PASSWORD,
                                     role="member")
    with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as client:
        yield client, db, {"business": bid, "owner": owner, "member": member}
    db.close()


def _wait_for(smtp, n=1, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(smtp.messages) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return smtp.messages


def _link(message) -> str:
    return re.search(r"http://\S+/password/reset/\S+", message.get_payload(decode=True).decode()).group(0)


def test_a_link_by_email_sets_a_new_password_once(mailing, smtp):
    client, db, people = mailing
    other = auth.start_session(db, user_id=people["member"], business_id=people["business"])
    r = client.post("/fr/password/forgot", data={"_csrf_token": csrf_token(client), "email": "aide@gagnon.test"})
    assert r.status_code == 200 and "un lien pour choisir un nouveau mot de passe" in html.unescape(r.text)
    [message] = _wait_for(smtp)
    assert message["To"] == "aide@gagnon.test" and "mot de passe" in message["Subject"]
    link = _link(message)
    path = link.split("127.0.0.1", 1)[1].split(":", 1)[-1]
    path = path[path.index("/fr/"):]
    assert client.get(path).status_code == 200
    r = client.post(path, data={"_csrf_token": csrf_token(client), "password": "un tout nouveau secret",
                                "password_again": "un tout nouveau secret"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fr/login"
    assert businesses.authenticate(db, "aide@gagnon.test", "un tout nouveau secret")
    assert auth.session_for(db, other) is None  # whoever held the old password is out
    again = client.post(path, data={"_csrf_token": csrf_token(client), "password": "encore un autre secret",
                                    "password_again": "encore un autre secret"})
    assert again.status_code == 410 and not businesses.authenticate(db, "aide@gagnon.test", "encore un autre secret")


def test_asking_says_the_same_for_an_unknown_email_and_sends_nothing(mailing, smtp):
    client, _db, _people = mailing
    known = client.post("/en/password/forgot", data={"_csrf_token": csrf_token(client), "email": "aide@gagnon.test"})
    unknown = client.post("/en/password/forgot", data={"_csrf_token": csrf_token(client), "email": "nobody@x.test"})
    strip = lambda t: re.sub(r'value="[^"]*"', "", t)  # noqa: E731 (CSRF tokens differ)
    assert strip(known.text) == strip(unknown.text)
    assert len(_wait_for(smtp)) == 1 and smtp.messages[0]["To"] == "aide@gagnon.test"


def test_a_wrong_or_old_link_changes_nothing(mailing):
    client, db, _people = mailing
    r = client.post("/fr/password/reset/not-a-real-token", data={
        "_csrf_token": csrf_token(client), "password": "un tout nouveau secret", "password_again": "un tout nouveau secret"})
    assert r.status_code == 410
    assert businesses.authenticate(db, "aide@gagnon.test", PASSWORD)


def test_an_owner_gives_a_member_a_new_one_time_password(mailing):
    client, db, people = mailing
    member_session = auth.start_session(db, user_id=people["member"], business_id=people["business"])
    token = signed_in(client, db, people["owner"], people["business"])
    r = client.post(f"/fr/app/settings/team/{people['member']}/reset", data={"_csrf_token": token})
    assert r.status_code == 200
    password = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)
    assert businesses.authenticate(db, "aide@gagnon.test", password)
    assert auth.session_for(db, member_session) is None
    assert db.query_one("SELECT must_change_password FROM users WHERE id = ?", (people["member"],))["must_change_password"]
    # Never an owner's password, never another business's member.
    assert client.post(f"/fr/app/settings/team/{people['owner']}/reset", data={"_csrf_token": token}).status_code == 404


def test_without_smtp_the_page_says_whom_to_ask(client):
    page = html.unescape(client.get("/fr/password/forgot").text)
    assert "Demandez au propriétaire de votre entreprise" in page


def test_the_operator_gives_a_locked_out_owner_a_new_one_time_password(config, db):
    import subprocess
    import sys

    from tests.support.app import ROOT

    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon")
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password=PASSWORD)
    session = auth.start_session(db, user_id=owner, business_id=bid)
    run = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "user", "password",
                          "owner@gagnon.test"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    password = re.search(r"one-time password for owner@gagnon.test: (\S+)", run.stdout).group(1)
    assert businesses.authenticate(db, "owner@gagnon.test", password)
    assert auth.session_for(db, session) is None
    missing = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "user", "password",
                              "nobody@x.test"], capture_output=True, text=True, cwd=ROOT)
    assert missing.returncode == 1 and "no account" in missing.stderr


def test_an_owner_cannot_reset_someone_who_also_works_elsewhere(mailing):
    """Review finding: a password is account-wide; resetting a member who owns another
    business would hand this owner that business too."""
    client, db, people = mailing
    other, _ = make_business(db, "ailleurs", "Ailleurs Inc.")
    with db.write() as conn:
        businesses.add_user(conn, business_id=other, email="aide@gagnon.test", password=PASSWORD)  # owns it
    token = signed_in(client, db, people["owner"], people["business"])
    r = client.post(f"/fr/app/settings/team/{people['member']}/reset", data={"_csrf_token": token})
    assert r.status_code == 404
    assert businesses.authenticate(db, "aide@gagnon.test", PASSWORD)


def test_a_password_change_spends_the_links_still_out(mailing, smtp):
    client, db, people = mailing
    client.post("/fr/password/forgot", data={"_csrf_token": csrf_token(client), "email": "aide@gagnon.test"})
    [message] = _wait_for(smtp)
    path = _link(message)
    path = path[path.index("/fr/"):]
    businesses.set_password(db, people["member"], "changé ailleurs, exprès")
    r = client.post(path, data={"_csrf_token": csrf_token(client), "password": "un tout nouveau secret",
                                "password_again": "un tout nouveau secret"})
    assert r.status_code == 410
    assert businesses.authenticate(db, "aide@gagnon.test", "changé ailleurs, exprès")
