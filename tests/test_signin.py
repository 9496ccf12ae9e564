"""Built-in sign-in, sessions kept in the database, and the inbox scoped to one business."""

import pytest

from app import businesses, leads
from tests.support.app import csrf_token

PASSWORD = "correct horse battery"


@pytest.fixture
def two_businesses(db):
    with db.write() as conn:
        a = businesses.create_business(conn, slug="gagnon", name="Plomberie Gagnon", timezone="America/Toronto")
        businesses.add_user(conn, business_id=a, email="owner@gagnon.test", password=PASSWORD)
        b = businesses.create_business(conn, slug="provolt", name="Pro-Volt", timezone="America/Toronto")
        businesses.add_user(conn, business_id=b, email="owner@provolt.test", password=PASSWORD)
        leads.create(conn, business_id=a, channel="web", actor="test", first_name="Hélène",
                     phone="+15145550101", need="Dégât d'eau")
        leads.create(conn, business_id=b, channel="phone", actor="test", first_name="Zacharie",
                     phone="+14385550199", need="Borne de recharge")
    return a, b


def sign_in(client, email, password=PASSWORD, lang="fr"):
    token = csrf_token(client)
    return client.post(f"/{lang}/login", data={"email": email, "password": password, "_csrf_token": token,
                                               "next": f"/{lang}/app/leads"}, follow_redirects=False)


def test_inbox_requires_sign_in(client, two_businesses):
    r = client.get("/fr/app/leads", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fr/login?next=/fr/app/leads"


def test_wrong_password_is_a_translated_error(client, two_businesses):
    r = sign_in(client, "owner@gagnon.test", "wrong password!", lang="en")
    assert r.status_code == 400
    assert "This email and password do not match an account." in r.text
    assert 'value="owner@gagnon.test"' in r.text  # the email typed is kept
    r = sign_in(client, "nobody@gagnon.test", lang="fr")
    assert "Ce courriel et ce mot de passe ne correspondent à aucun compte." in r.text


def test_sign_in_shows_only_own_business_leads(client, two_businesses):
    r = sign_in(client, "OWNER@gagnon.test")
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/leads"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("capteo_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = client.get("/fr/app/leads")
    assert "Hélène" in page.text and "514 555-0101" in page.text
    assert "Zacharie" not in page.text


def _session_cookie(response) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith("capteo_session="):
            return header.split(";")[0].split("=", 1)[1]
    raise AssertionError("no session cookie set")


def test_session_survives_a_restart_and_dies_at_sign_out(config, two_businesses):
    from litestar.testing import TestClient

    from app.web import create_app

    with TestClient(create_app(config, run_worker=False), base_url="http://127.0.0.1") as c1:
        session = _session_cookie(sign_in(c1, "owner@provolt.test"))
    with TestClient(create_app(config, run_worker=False), base_url="http://127.0.0.1") as c2:
        token = csrf_token(c2)
        headers = {"cookie": f"capteo_session={session}; capteo_csrf={c2.cookies.get('capteo_csrf')}"}
        assert "Zacharie" in c2.get("/en/app/leads", headers=headers).text
        r = c2.post("/en/logout", data={"_csrf_token": token}, headers=headers, follow_redirects=False)
        assert r.status_code == 303
        assert "Max-Age=0" in [h for h in r.headers.get_list("set-cookie") if h.startswith("capteo_session")][0]
        # A copy of the cookie kept by someone is dead.
        r = c2.get("/en/app/leads", headers=headers, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/en/login")


def test_a_session_id_planted_before_sign_in_is_not_used(client, two_businesses):
    token = csrf_token(client)
    r = client.post("/fr/login", data={"email": "owner@gagnon.test", "password": PASSWORD, "_csrf_token": token},
                    headers={"cookie": f"capteo_session=planted-by-attacker; capteo_csrf={client.cookies.get('capteo_csrf')}"},
                    follow_redirects=False)
    issued = _session_cookie(r)
    assert issued != "planted-by-attacker" and len(issued) >= 40


def test_next_cannot_leave_the_dashboard(client, two_businesses):
    token = csrf_token(client)
    r = client.post("/fr/login", data={"email": "owner@gagnon.test", "password": PASSWORD,
                                       "_csrf_token": token, "next": "https://evil.example/"},
                    follow_redirects=False)
    assert r.headers["location"] == "/fr/app/leads"


def test_viewing_the_inbox_is_audited_without_values(client, db, two_businesses):
    sign_in(client, "owner@gagnon.test")
    client.get("/fr/app/leads")
    entry = db.query_one("SELECT * FROM audit_log WHERE action = 'lead.list.view'")
    assert entry["business_id"] == two_businesses[0]
    assert "Hélène" not in str(db.query("SELECT * FROM audit_log"))


def test_htmx_tab_returns_the_fragment_only(client, two_businesses):
    sign_in(client, "owner@gagnon.test")
    r = client.get("/fr/app/leads?status=new", headers={"HX-Request": "true", "HX-Target": "inbox"})
    assert "<html" not in r.text and "Hélène" in r.text
    r = client.get("/fr/app/leads?status=closed", headers={"HX-Request": "true", "HX-Target": "inbox"})
    assert "Aucune demande ici pour l'instant." in r.text
