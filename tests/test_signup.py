"""Sign-up (/{lang}/signup): one form makes the account, the business, the owner's membership
and the trial; the same protections as the public form; closed by the operator; Cloudflare
Access mode takes the verified email instead of a password; the first-run checklist."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from litestar.testing import TestClient

from app import businesses, clock, leads
from app import config as config_mod
from app.businesses import signup
from app.web import create_app
from tests.support.app import write_config
from tests.support.cloudflare import AUD, TEAM, JwksServer, jwk, token

GOOD = {"email": "marie@plomberie-roy.ca", "password": "correct horse battery",
        "password_again": "correct horse battery", "name": "Plomberie Roy", "trade": "plombier",
        "slug": "plomberie-roy", "phone": "514 555-0142", "timezone": "America/Toronto", "language": "fr"}


def _csrf(client, lang="fr") -> str:
    page = client.get(f"/{lang}/signup")
    assert page.status_code == 200, page.text[:300]
    return re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)


def _post(client, lang="fr", **changes):
    data = {**GOOD, "_csrf_token": _csrf(client, lang), **changes}
    return client.post(f"/{lang}/signup", data={k: v for k, v in data.items() if v is not None},
                       follow_redirects=False)


def _counts(db) -> tuple[int, int, int]:
    return (db.one("SELECT count(*) AS n FROM users")["n"], businesses.count(db),
            db.one("SELECT count(*) AS n FROM memberships")["n"])


def _app(tmp_path, **sections):
    return TestClient(create_app(config_mod.load(write_config(tmp_path, **sections), env={}), run_worker=False),
                      base_url="http://127.0.0.1")


def test_sign_up_creates_one_account_business_and_trial_and_signs_in(client, db):
    assert _counts(db) == (0, 0, 0)
    r = _post(client)
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/leads"
    assert _counts(db) == (1, 1, 1)
    business = businesses.by_slug(db, "plomberie-roy")
    assert business["name"] == "Plomberie Roy" and business["trade"] == "plombier"
    assert business["phone"] == "+15145550142" and business["billing_state"] == "none"
    ends = datetime.fromisoformat(business["trial_ends_at"])
    assert abs(ends - (clock.now() + timedelta(days=14))) < timedelta(minutes=5)
    membership = db.one("SELECT m.role, u.email FROM memberships m JOIN users u ON u.id = m.user_id")
    assert membership == {"role": "owner", "email": "marie@plomberie-roy.ca"}
    assert businesses.authenticate(db, "marie@plomberie-roy.ca", "correct horse battery")
    actions = [r["action"] for r in db.query("SELECT action FROM audit_log ORDER BY id")]
    assert {"business.create", "membership.create", "session.start"} <= set(actions)
    # Signed in: the dashboard shows the first-run checklist.
    inbox = client.get("/fr/app/leads")
    assert inbox.status_code == 200 and "Premiers pas" in inbox.text and "/fr/f/plomberie-roy" in inbox.text
    assert "Vous êtes bien chez Plomberie Roy" in inbox.text  # the greeting, with the consent notice
    assert "intelligence artificielle" in inbox.text


def test_slug_is_made_from_the_name_when_empty(client, db):
    r = _post(client, slug="", name="Électricité Côté & fils")
    assert r.status_code == 303
    assert businesses.by_slug(db, "electricite-cote-fils") is not None


@pytest.mark.parametrize("case, changes, status, message", [
    ("taken slug", {"slug": "pris"}, 409, "Cette adresse est déjà prise."),
    ("reserved slug", {"slug": "admin"}, 422, "Cette adresse est réservée."),
    ("bad slug", {"slug": "Pas Bon!"}, 422, "Utilisez de 1 à 40"),
    ("weak password", {"password": "court", "password_again": "court"}, 422, "au moins 10 caractères"),
    ("passwords differ", {"password_again": "another horse battery"}, 422, "Les deux mots de passe"),
    ("bad email", {"email": "pas-un-courriel"}, 422, "adresse courriel valide"),
    ("email taken", {"email": "owner@pris-roy.ca"}, 409, "Un compte utilise déjà ce courriel"),
    ("no name", {"name": "", "slug": "vide"}, 422, "Ce champ est obligatoire."),
    ("bad phone", {"phone": "123"}, 422, "numéro de téléphone valide"),
    ("bad time zone", {"timezone": "Mars/Olympus"}, 422, "fuseau horaire"),
    ("honeypot", {"website": "http://spam.example"}, 400, "n’a pas pu être acceptée"),
])
def test_refusals_store_nothing_and_say_why(client, db, case, changes, status, message):
    with db.write() as conn:
        bid = businesses.create_business(conn, slug="pris", name="Pris", timezone="America/Toronto")
        businesses.add_user(conn, business_id=bid, email="owner@pris-roy.ca", password="x" * 12)
    before = _counts(db)
    r = _post(client, **changes)
    assert r.status_code == status, r.text[:500]
    assert message in r.text
    assert _counts(db) == before
    assert 'value="Plomberie Roy"' in r.text or case == "no name"  # what was typed comes back…
    assert "correct horse battery" not in r.text  # …never the password


def test_english_errors_are_in_english(client, db):
    r = _post(client, lang="en", slug="admin")
    assert r.status_code == 422 and "This address is reserved." in r.text and _counts(db) == (0, 0, 0)


def test_missing_csrf_is_refused(client, db):
    client.get("/fr/signup")
    r = client.post("/fr/signup", data=GOOD, follow_redirects=False)
    assert r.status_code == 403 and "Requête refusée" in r.text
    r = client.post("/fr/signup", data={**GOOD, "_csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and _counts(db) == (0, 0, 0)


def test_rate_limit(tmp_path):
    with _app(tmp_path, forms={"rate_limit": 2}) as client:
        from app.db import Database
        db = Database(client.app.state.config.db_path)
        for i in range(2):
            client.cookies.clear()
            assert _post(client, email=f"o{i}@example.com", slug=f"b{i}").status_code == 303
        client.cookies.clear()
        r = _post(client, email="o3@example.com", slug="b3")
        assert r.status_code == 429 and "Trop d’inscriptions" in r.text
        assert _counts(db) == (2, 2, 2)
        db.close()


def test_a_typo_does_not_use_up_the_limit(tmp_path):
    with _app(tmp_path, forms={"rate_limit": 1}) as client:
        assert _post(client, slug="admin").status_code == 422
        assert _post(client).status_code == 303


def test_signup_closed(tmp_path):
    with _app(tmp_path, signup={"open": False}) as client:
        page = client.get("/fr/signup")
        assert page.status_code == 404 and "Les inscriptions sont fermées" in page.text
        assert "/fr/signup" not in client.get("/fr/login").text
        token = re.search(r'name="_csrf_token" value="([^"]+)"', client.get("/fr/login").text).group(1)
        r = client.post("/fr/signup", data={**GOOD, "_csrf_token": token}, follow_redirects=False)
        assert r.status_code == 404
        assert client.get("/en/signup").status_code == 404


def test_login_links_to_signup_when_open(client):
    assert 'href="/fr/signup"' in client.get("/fr/login").text
    assert 'href="/en/signup"' in client.get("/en/login").text


def test_slug_check(client, db):
    with db.write() as conn:
        businesses.create_business(conn, slug="pris", name="Pris", timezone="America/Toronto")
    assert "est libre" in client.get("/fr/signup/slug?slug=libre").text
    assert "ne peut pas être utilisée" in client.get("/fr/signup/slug?slug=pris").text
    assert "ne peut pas être utilisée" in client.get("/fr/signup/slug?slug=login").text


def test_trial_is_shown_when_billing_is_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTEO_SECRET_PADDLE_API_KEY", "k")
    monkeypatch.setenv("CAPTEO_SECRET_PADDLE_WEBHOOK_SECRET", "s")
    with _app(tmp_path, billing={"price_id": "pri_test"}, signup={"trial_days": 30}) as client:
        assert _post(client).status_code == 303
        from app.db import Database
        db = Database(client.app.state.config.db_path)
        business = businesses.by_slug(db, "plomberie-roy")
        assert business["billing_state"] == "trialing"
        inbox = client.get("/fr/app/leads").text
        ends = datetime.fromisoformat(business["trial_ends_at"]).astimezone()
        assert "Votre essai gratuit se termine le" in inbox and str(ends.year) in inbox
        db.close()


def test_checklist_items_are_marked_and_the_first_lead_completes_it(client, db):
    assert _post(client).status_code == 303
    bid = businesses.by_slug(db, "plomberie-roy")["id"]
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', client.get("/fr/app/leads").text).group(1)
    for item in ("form", "greeting", "notify"):
        r = client.post("/fr/app/settings/checklist", data={"_csrf_token": csrf, "item": item},
                        follow_redirects=False)
        assert r.status_code == 303
    assert client.post("/fr/app/settings/checklist", data={"_csrf_token": csrf, "item": "nope"},
                       follow_redirects=False).status_code == 422
    page = client.get("/fr/app/leads").text
    assert "3 sur 4 faits" in page and "Ouvrir mon formulaire" in page
    with db.write() as conn:
        leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Test", need="essai")
    assert "Premiers pas" not in client.get("/fr/app/leads").text


def test_checklist_can_be_dismissed(client, db):
    assert _post(client).status_code == 303
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', client.get("/en/app/leads").text).group(1)
    assert "Get started" in client.get("/en/app/leads").text
    client.post("/en/app/settings/checklist", data={"_csrf_token": csrf, "item": "dismissed"})
    assert "Get started" not in client.get("/en/app/leads").text
    assert signup.first_run(db, businesses.by_slug(db, "plomberie-roy")["id"], has_lead=False) is None


@pytest.fixture
def cf_client(tmp_path, keys):
    jwks = JwksServer()
    jwks.jwks = {"keys": [jwk(keys[0], "k0")]}
    path = write_config(tmp_path, auth={"mode": "cloudflare", "cloudflare_team_domain": TEAM,
                                        "cloudflare_audience": AUD, "cloudflare_certs_url": jwks.url})
    with TestClient(create_app(config_mod.load(path, env={}), run_worker=False), base_url="http://127.0.0.1") as c:
        yield c
    jwks.close()


def test_cloudflare_mode_uses_the_verified_email(cf_client, keys):
    from app.db import Database
    headers = {"Cf-Access-Jwt-Assertion": token(keys[0], email="Nouvelle@Example.com")}
    assert cf_client.get("/fr/signup").status_code == 401  # no Access token: refused
    page = cf_client.get("/fr/signup", headers=headers)
    assert page.status_code == 200 and "nouvelle@example.com" in page.text
    assert 'name="password"' not in page.text and 'name="email"' not in page.text
    csrf = re.search(r'name="_csrf_token" value="([^"]+)"', page.text).group(1)
    data = {k: v for k, v in GOOD.items() if k not in ("email", "password", "password_again")}
    r = cf_client.post("/fr/signup", data={**data, "email": "attacker@evil.test", "_csrf_token": csrf},
                       headers=headers, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/leads"
    db = Database(cf_client.app.state.config.db_path)
    user = db.one("SELECT email, password_hash FROM users")
    assert user == {"email": "nouvelle@example.com", "password_hash": None}
    assert _counts(db) == (1, 1, 1)
    inbox = cf_client.get("/fr/app/leads", headers=headers)
    assert inbox.status_code == 200 and "Premiers pas" in inbox.text
    # Signed up already: the sign-up page sends them to their dashboard.
    assert cf_client.get("/fr/signup", headers=headers, follow_redirects=False).status_code == 303
    db.close()
