"""Litestar guards in front of every dashboard route: signed in, password current, owner."""

from __future__ import annotations

import re

import pytest

from app import businesses
from app.businesses import auth

PASSWORD = "correct horse battery"


@pytest.fixture
def member(db):
    """A member who signed in with the one-time password the owner was shown."""
    with db.write() as conn:
        bid = businesses.create_business(conn, slug="gagnon", name="Plomberie Gagnon", timezone="America/Toronto")
        uid = businesses.add_user(conn, business_id=bid, email="aide@gagnon.test", password=PASSWORD, role="member")
        conn.execute("UPDATE users SET must_change_password = 1 WHERE id = ?", (uid,))
    return bid, uid


def _sign_in(client, db, bid, uid) -> str:
    page = client.get("/fr/login").text
    client.cookies.set("capteo_session", auth.start_session(db, user_id=uid, business_id=bid))
    return re.search(r'name="_csrf_token" value="([^"]+)"', page).group(1)


@pytest.mark.parametrize("path", ["/fr/app/leads", "/en/app/calendar", "/fr/app/privacy", "/fr/app/voicemail"])
def test_a_one_time_password_leads_to_the_password_page_first(client, db, member, path):
    _sign_in(client, db, *member)
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/{path[1:3]}/app/password"
    htmx = client.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
    assert htmx.status_code == 204 and htmx.headers["hx-redirect"] == f"/{path[1:3]}/app/password"


def test_once_changed_the_dashboard_opens(client, db, member):
    token = _sign_in(client, db, *member)
    assert client.get("/fr/app/password").status_code == 200
    r = client.post("/fr/app/password", data={"_csrf_token": token, "current": PASSWORD,
                                              "password": "un nouveau secret", "password_again": "un nouveau secret"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/fr/app/leads", follow_redirects=False).status_code == 200


def test_pages_that_answer_a_fragment_or_a_page_vary_on_htmx(client, db, member):
    with db.write() as conn:
        conn.execute("UPDATE users SET must_change_password = 0")
    _sign_in(client, db, *member)
    page = client.get("/fr/app/leads")
    fragment = client.get("/fr/app/leads", headers={"HX-Request": "true", "HX-Target": "inbox"})
    assert "<html" in page.text and "<html" not in fragment.text
    for r in (page, fragment):
        assert "HX-Request" in r.headers["vary"]


def test_options_lists_the_methods_without_signing_in(client):
    """OPTIONS only says which methods a dashboard address takes: no sign-in redirect."""
    r = client.options("/fr/app/leads", follow_redirects=False)
    assert r.status_code == 204 and "GET" in r.headers["allow"]
