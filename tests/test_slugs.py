"""Issue 10, hole 11: a form address a business gave up stays its own.

Before, after a business changed its address (slug), another business could take the old one
and receive the requests people kept sending through links and embeds still out there. Now an
old address is reserved for its business: it redirects to the new one, and a request posted to
it still reaches the business that had it."""

from __future__ import annotations

import html
import re

import pytest

from app import businesses
from tests.support.people import make_business, signed_in
from tests.test_form import good

PASSWORD = "correct horse battery"


@pytest.fixture
def moved(client, db):
    """Gagnon moved its form from /f/gagnon to /f/gagnon-fils; Pro-Volt is another business."""
    a, ids = make_business(db, "gagnon", "Plomberie Gagnon", embed=["plomberie-gagnon.ca"])
    b, _ = make_business(db, "provolt", "Pro-Volt")
    with db.write() as conn:
        owner_a = businesses.add_user(conn, business_id=a, email="owner@gagnon.ca", password=PASSWORD)
        owner_b = businesses.add_user(conn, business_id=b, email="owner@provolt.ca", password=PASSWORD)
    _save_slug(client, db, owner_a, a, "gagnon-fils")
    assert businesses.get(db, a)["slug"] == "gagnon-fils"
    return {"a": a, "b": b, "owner_a": owner_a, "owner_b": owner_b, "ids": ids}


def _save_slug(client, db, user_id, business_id, slug):
    csrf = signed_in(client, db, user_id, business_id)
    page = html.unescape(client.get("/fr/app/settings").text)
    values = dict(re.findall(r'name="([a-z_]+)"[^>]*value="([^"]*)"', page))
    values.update(re.findall(r'<textarea[^>]*name="([a-z_]+)"[^>]*>([^<]*)</textarea>', page))
    values.update({"_csrf_token": csrf, "slug": slug, "timezone": "America/Toronto", "language": "fr"})
    return client.post("/fr/app/settings", data=values, follow_redirects=False)


def test_another_business_cannot_claim_an_old_address(client, db, moved):
    r = _save_slug(client, db, moved["owner_b"], moved["b"], "gagnon")
    assert r.status_code == 422 and "Cette adresse est déjà prise." in r.text
    assert businesses.get(db, moved["b"])["slug"] == "provolt"
    with pytest.raises(businesses.BusinessError), db.write() as conn:
        businesses.create_business(conn, slug="gagnon", name="Imposteur", timezone="America/Toronto")


def test_the_old_address_redirects_to_the_new_one(client, moved):
    r = client.get("/fr/f/gagnon", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/fr/f/gagnon-fils"
    r = client.get("/en/f/gagnon?embed=1", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/en/f/gagnon-fils?embed=1"
    assert "frame-ancestors https://plomberie-gagnon.ca" in r.headers["content-security-policy"]
    page = client.get("/fr/f/gagnon")
    assert page.status_code == 200 and "Plomberie Gagnon" in page.text
    assert client.get("/fr/f/nobody").status_code == 404


def test_a_request_posted_to_the_old_address_reaches_its_business(client, db, moved):
    page = client.get("/fr/f/gagnon-fils").text
    token = re.search(r'name="form_token" value="([^"]+)"', page).group(1)
    r = client.post("/fr/f/gagnon", data={"form_token": token, **good(("", moved["ids"]))})
    assert r.status_code == 200 and "Merci, votre demande a bien été reçue." in r.text
    assert [lead["business_id"] for lead in db.query("SELECT business_id FROM leads")] == [moved["a"]]


def test_the_privacy_request_page_follows_the_address(client, db, moved):
    r = client.get("/fr/privacy/request?b=gagnon", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/fr/privacy/request?b=gagnon-fils"
    page = client.get("/fr/privacy/request?b=gagnon-fils").text
    fields = dict(re.findall(r'name="([a-z_]+)"[^>]*value="([^"]*)"', page))
    fields.update({"business": "gagnon", "kind": "access", "person": "Hélène Côté",
                   "contact": "helene@example.com", "details": ""})
    r = client.post("/fr/privacy/request", data=fields)
    assert r.status_code == 200, r.text[:500]
    assert db.one("SELECT business_id FROM privacy_requests")["business_id"] == moved["a"]


def test_a_business_may_take_its_old_address_back(client, db, moved):
    r = _save_slug(client, db, moved["owner_a"], moved["a"], "gagnon")
    assert r.status_code == 303 and businesses.get(db, moved["a"])["slug"] == "gagnon"
    r = client.get("/fr/f/gagnon-fils", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/fr/f/gagnon"
    assert client.get("/fr/f/gagnon", follow_redirects=False).status_code == 200
    # Both addresses stay Gagnon's.
    assert _save_slug(client, db, moved["owner_b"], moved["b"], "gagnon-fils").status_code == 422
