"""Issue 10, hole 7: a password change ends the person's other sessions.

Before, changing a password left every other session of the user alive for its 14 days: a
session opened by whoever knew the old password (a shared computer, a leaked one-time
password) kept working after the owner of the account changed it."""

from __future__ import annotations

from app import businesses
from app.businesses import auth
from tests.support.people import signed_in

PASSWORD = "correct horse battery"


def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(client, db):
    with db.write() as conn:
        a = businesses.create_business(conn, slug="gagnon", name="Plomberie Gagnon", timezone="America/Toronto")
        b = businesses.create_business(conn, slug="provolt", name="Pro-Volt", timezone="America/Toronto")
        user = businesses.add_user(conn, business_id=a, email="owner@gagnon.ca", password=PASSWORD)
        businesses.add_user(conn, business_id=b, email="owner@gagnon.ca", password=PASSWORD)
        other = businesses.add_user(conn, business_id=a, email="aide@gagnon.ca", password=PASSWORD, role="member")
    elsewhere = auth.start_session(db, user_id=user, business_id=a)  # the stolen or forgotten one
    in_b = auth.start_session(db, user_id=user, business_id=b)
    colleague = auth.start_session(db, user_id=other, business_id=a)
    csrf = signed_in(client, db, user, a)
    r = client.post("/fr/app/password", data={"_csrf_token": csrf, "current": PASSWORD,
                                              "password": "un nouveau secret", "password_again": "un nouveau secret"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert auth.session_for(db, elsewhere) is None and auth.session_for(db, in_b) is None
    assert client.get("/fr/app/leads", follow_redirects=False).status_code == 200  # this one stays
    assert auth.session_for(db, colleague) is not None  # someone else's are not touched
    assert businesses.authenticate(db, "owner@gagnon.ca", "un nouveau secret")


def test_a_wrong_current_password_changes_nothing(client, db):
    with db.write() as conn:
        a = businesses.create_business(conn, slug="gagnon", name="Plomberie Gagnon", timezone="America/Toronto")
        user = businesses.add_user(conn, business_id=a, email="owner@gagnon.ca", password=PASSWORD)
    elsewhere = auth.start_session(db, user_id=user, business_id=a)
    csrf = signed_in(client, db, user, a)
    r = client.post("/fr/app/password", data={"_csrf_token": csrf, "current": "not it at all",
                                              "password": "un nouveau secret", "password_again": "un nouveau secret"})
    assert r.status_code == 422
    assert auth.session_for(db, elsewhere) is not None
