"""Issue 10, hole 2: adding an email to a team never moves, demotes or reveals an account.

Before, "add a team member" ran INSERT OR REPLACE on the membership: an owner who typed
another business's owner's email pulled them in as a member (their next sign-in landed
there), typing one's own email demoted oneself and left the business with no owner, and the
message told whether the email had an account. Now an email with an account gets an
invitation its person accepts or declines, and the owner sees the same page either way."""

from __future__ import annotations

import html
import re

import pytest
from litestar.testing import TestClient

from app import businesses, leads
from app import config as config_mod
from app.web import create_app
from tests.support.app import csrf_token, write_config
from tests.support.cloudflare import AUD, TEAM, JwksServer, jwk, token
from tests.support.people import signed_in

PASSWORD = "correct horse battery"


@pytest.fixture
def world(db):
    """Two businesses, each with its owner; A has a member."""
    with db.write() as conn:
        a = businesses.create_business(conn, slug="gagnon", name="Plomberie Gagnon", timezone="America/Toronto")
        b = businesses.create_business(conn, slug="provolt", name="Pro-Volt", timezone="America/Toronto")
        owner_a = businesses.add_user(conn, business_id=a, email="owner@gagnon.ca", password=PASSWORD)
        member_a = businesses.add_user(conn, business_id=a, email="aide@gagnon.ca", password=PASSWORD,
                                       role="member")
        owner_b = businesses.add_user(conn, business_id=b, email="owner@provolt.ca", password=PASSWORD)
        leads.create(conn, business_id=b, channel="web", actor="t", first_name="Zacharie", need="Borne")
    return {"a": a, "b": b, "owner_a": owner_a, "member_a": member_a, "owner_b": owner_b}


def _roles(db, user_id) -> dict[int, str]:
    return {r["business_id"]: r["role"] for r in db.query(
        "SELECT business_id, role FROM memberships WHERE user_id = ?", (user_id,))}


def _add(client, csrf, email, lang="fr"):
    return client.post(f"/{lang}/app/settings/team", data={"_csrf_token": csrf, "email": email})


def _sign_in(client, email, password=PASSWORD):
    return client.post("/fr/login", data={"email": email, "password": password, "_csrf_token": csrf_token(client),
                                          "next": "/fr/app/leads"}, follow_redirects=False)


def _alert(html: str) -> str:
    return re.search(r'<div class="alert ok stack" role="status">(.*?)</div>', html, re.S).group(1)


def test_adding_another_business_owner_does_not_take_them_over(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    assert _add(client, csrf, "Owner@Provolt.ca").status_code == 200
    # Their place is unchanged: owner of B, nothing in A until they accept.
    assert _roles(db, world["owner_b"]) == {world["b"]: "owner"}
    client.cookies.clear()
    r = _sign_in(client, "owner@provolt.ca")
    assert r.status_code == 303
    session = db.query_one("SELECT business_id FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT 1")
    assert session["business_id"] == world["b"]
    assert client.get("/fr/app/settings", follow_redirects=False).status_code == 200
    assert "Zacharie" in client.get("/fr/app/leads").text


def test_the_owner_cannot_tell_whether_the_email_had_an_account(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    existing = _add(client, csrf, "owner@provolt.ca")
    new = _add(client, csrf, "nouvelle@example.com")
    assert existing.status_code == new.status_code == 200
    shown = []
    for response, email in ((existing, "owner@provolt.ca"), (new, "nouvelle@example.com")):
        alert = _alert(response.text)
        password = re.search(r'<code class="secret">([^<]+)</code>', alert).group(1)
        shown.append(alert.replace(email, "EMAIL").replace(password, "PASSWORD"))
    assert shown[0] == shown[1]
    assert "déjà un compte" not in existing.text
    # Both wait in the team list the same way; neither is a member yet.
    rows = dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", client.get("/fr/app/settings/team").text))
    assert rows["owner@provolt.ca"] == rows["nouvelle@example.com"]
    assert rows["owner@provolt.ca"].startswith("Invitation envoyée")
    assert {m["email"] for m in businesses.team(db, world["a"])} == {"owner@gagnon.ca", "aide@gagnon.ca"}


def test_adding_oneself_is_refused_and_the_owner_stays_owner(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    r = _add(client, csrf, "OWNER@gagnon.ca")
    assert r.status_code == 422 and "C'est votre propre courriel" in html.unescape(r.text)
    assert _roles(db, world["owner_a"]) == {world["a"]: "owner"}
    r = _add(client, csrf, "owner@gagnon.ca", lang="en")
    assert r.status_code == 422 and "This is your own email" in r.text
    assert client.get("/fr/app/settings", follow_redirects=False).status_code == 200


def test_adding_a_member_again_never_changes_their_role(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    r = _add(client, csrf, "aide@gagnon.ca")
    assert r.status_code == 422 and "fait déjà partie de l'équipe" in html.unescape(r.text)
    assert _roles(db, world["member_a"]) == {world["a"]: "member"}
    # The operator's own path (add_user) refuses to change a role as well.
    with pytest.raises(businesses.BusinessError), db.write() as conn:
        businesses.add_user(conn, business_id=world["a"], email="owner@gagnon.ca", password="x" * 12,
                            role="member")
    assert _roles(db, world["owner_a"]) == {world["a"]: "owner"}


def test_the_last_owner_cannot_be_removed(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    client.post(f"/fr/app/settings/team/{world['owner_a']}/remove", data={"_csrf_token": csrf})
    assert _roles(db, world["owner_a"]) == {world["a"]: "owner"}


def test_the_invited_person_accepts_then_switches_between_businesses(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    _add(client, csrf, "owner@provolt.ca")
    client.cookies.clear()
    csrf = signed_in(client, db, world["owner_b"], world["b"])
    inbox = client.get("/fr/app/leads").text
    assert "Vous avez 1 invitation" in inbox and 'href="/fr/app/invitations"' in inbox
    page = client.get("/en/app/invitations").text
    assert "Plomberie Gagnon" in page and "Accept the invitation" in page
    invitation = re.search(r"/en/app/invitations/(\d+)/accept", page).group(1)
    r = client.post(f"/fr/app/invitations/{invitation}/accept", data={"_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/leads"
    assert _roles(db, world["owner_b"]) == {world["a"]: "member", world["b"]: "owner"}
    # Now working in A, as a member: its settings are not theirs; the header offers both businesses.
    inbox = client.get("/fr/app/leads").text
    assert "Vous avez 1 invitation" not in inbox and "Zacharie" not in inbox
    assert 'action="/fr/app/switch"' in inbox and "Pro-Volt" in inbox
    assert client.get("/fr/app/settings", follow_redirects=False).status_code == 403
    r = client.post("/fr/app/switch", data={"_csrf_token": csrf, "business_id": str(world["b"])},
                    follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/fr/app/settings", follow_redirects=False).status_code == 200
    assert "Zacharie" in client.get("/fr/app/leads").text
    assert db.query_one("SELECT 1 FROM audit_log WHERE action = 'session.switch' AND business_id = ?",
                        (world["b"],))
    # The invitation is spent.
    again = client.post(f"/fr/app/invitations/{invitation}/accept", data={"_csrf_token": csrf})
    assert again.status_code == 404


def test_switching_only_to_ones_own_businesses(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    r = client.post("/fr/app/switch", data={"_csrf_token": csrf, "business_id": str(world["b"])},
                    follow_redirects=False)
    assert r.status_code == 404
    assert "Zacharie" not in client.get("/fr/app/leads").text
    for bad in ("", "abc", "-1", "9" * 40):
        r = client.post("/fr/app/switch", data={"_csrf_token": csrf, "business_id": bad}, follow_redirects=False)
        assert r.status_code in (404, 422), bad
    assert db.query_one("SELECT business_id FROM sessions")["business_id"] == world["a"]


def test_declining_leaves_everything_as_it_was(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    _add(client, csrf, "owner@provolt.ca")
    client.cookies.clear()
    csrf = signed_in(client, db, world["owner_b"], world["b"])
    invitation = db.one("SELECT id FROM invitations")["id"]
    r = client.post(f"/fr/app/invitations/{invitation}/decline", data={"_csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert _roles(db, world["owner_b"]) == {world["b"]: "owner"}
    assert "Aucune invitation ne vous attend." in client.get("/fr/app/invitations").text
    assert "invitation" not in client.get("/fr/app/leads").text.split("<main", 1)[1].split("page-head")[0]


def test_no_one_else_can_answer_an_invitation(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    _add(client, csrf, "owner@provolt.ca")
    invitation = db.one("SELECT id FROM invitations")["id"]
    # The member of A (or its owner) answering the invitation meant for B's owner: 404, nothing changes.
    client.cookies.clear()
    csrf = signed_in(client, db, world["member_a"], world["a"])
    for action in ("accept", "decline"):
        r = client.post(f"/fr/app/invitations/{invitation}/{action}", data={"_csrf_token": csrf})
        assert r.status_code == 404
    assert db.one("SELECT accepted_at, declined_at FROM invitations") == {"accepted_at": None, "declined_at": None}
    assert "Plomberie" not in client.get("/fr/app/invitations").text.split("<main", 1)[1]


def test_a_new_account_joins_at_its_first_sign_in_and_must_change_its_password(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    r = _add(client, csrf, "nouvelle@example.com")
    password = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)
    client.cookies.clear()
    r = _sign_in(client, "nouvelle@example.com", password)
    assert r.status_code == 303 and r.headers["location"] == "/fr/app/password"
    user = db.one("SELECT id FROM users WHERE email = 'nouvelle@example.com'")["id"]
    assert _roles(db, user) == {world["a"]: "member"}
    # Hole 7: the one-time password must be changed before any page opens.
    assert client.get("/fr/app/leads", follow_redirects=False).headers["location"] == "/fr/app/password"
    csrf = csrf_token(client)
    r = client.post("/fr/app/password", data={"_csrf_token": csrf, "current": password,
                                              "password": "un nouveau secret", "password_again": "un nouveau secret"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/fr/app/leads", follow_redirects=False).status_code == 200


def test_cancelling_an_invitation_removes_the_account_made_for_it(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    r = _add(client, csrf, "nouvelle@example.com")
    password = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)
    invitation = db.one("SELECT id FROM invitations")["id"]
    r = client.post(f"/fr/app/settings/team/invitations/{invitation}/cancel", data={"_csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    assert db.query_one("SELECT 1 FROM users WHERE email = 'nouvelle@example.com'") is None
    assert "nouvelle@example.com" not in client.get("/fr/app/settings/team").text
    client.cookies.clear()
    assert _sign_in(client, "nouvelle@example.com", password).status_code == 400


def test_adding_again_before_first_sign_in_gives_a_password_that_works(client, db, world):
    csrf = signed_in(client, db, world["owner_a"], world["a"])
    _add(client, csrf, "nouvelle@example.com")
    r = _add(client, csrf, "nouvelle@example.com")
    password = re.search(r'<code class="secret">([^<]+)</code>', r.text).group(1)
    assert db.one("SELECT count(*) AS n FROM invitations WHERE cancelled_at IS NULL")["n"] == 1
    client.cookies.clear()
    assert _sign_in(client, "nouvelle@example.com", password).headers["location"] == "/fr/app/password"


# ---- Cloudflare Access mode: no session rows; the chosen business is kept per user ----------------

@pytest.fixture
def cf(tmp_path, keys, db, world):
    jwks = JwksServer()
    jwks.jwks = {"keys": [jwk(keys[0], "k0")]}
    with db.write() as conn:
        businesses.add_user(conn, business_id=world["a"], email="owner@provolt.ca", password="x" * 12,
                            role="member")
    path = write_config(tmp_path, auth={"mode": "cloudflare", "cloudflare_team_domain": TEAM,
                                        "cloudflare_audience": AUD, "cloudflare_certs_url": jwks.url})
    with TestClient(create_app(config_mod.load(path, env={}), run_worker=False), base_url="http://127.0.0.1") as c:
        yield c, {"Cf-Access-Jwt-Assertion": token(keys[0], email="owner@provolt.ca")}
    jwks.close()


def test_switching_works_in_cloudflare_mode(cf, world):
    client, headers = cf
    # First business by name: Plomberie Gagnon (A), as a member.
    assert client.get("/fr/app/settings", headers=headers, follow_redirects=False).status_code == 403
    r = client.post("/fr/app/switch", headers=headers, follow_redirects=False,
                    data={"_csrf_token": csrf_token(client), "business_id": str(world["b"])})
    assert r.status_code == 303
    assert client.get("/fr/app/settings", headers=headers, follow_redirects=False).status_code == 200
    assert "Zacharie" in client.get("/fr/app/leads", headers=headers).text
