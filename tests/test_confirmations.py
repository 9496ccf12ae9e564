"""Irreversible settings actions ask first, naming what will be lost: removing a team
member (they lose access at once) and removing a form question (answers received stay)."""

from __future__ import annotations

import pytest

from app import businesses
from app.businesses import auth
from app.leads import custom_fields
from tests.support.people import make_business, signed_in


@pytest.fixture
def shop(db):
    bid, fields = make_business(db, "gagnon", "Plomberie Gagnon")
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test",
                                    password="correct horse battery", name="Marie")
        helper = businesses.add_user(conn, business_id=bid, email="aide@gagnon.test",
                                     password="correct horse battery", name="Luc Aide", role="member")
    return {"bid": bid, "owner": owner, "helper": helper, "fields": fields}


def _members(db, bid):
    return {r["user_id"] for r in db.query("SELECT user_id FROM memberships WHERE business_id = ?", (bid,))}


def test_removing_a_member_asks_first_naming_them(client, db, shop):
    helper_session = auth.start_session(db, user_id=shop["helper"], business_id=shop["bid"])
    token = signed_in(client, db, shop["owner"], shop["bid"])
    r = client.post(f"/fr/app/settings/team/{shop['helper']}/remove", data={"_csrf_token": token})
    assert r.status_code == 200
    assert "Retirer Luc Aide de l'équipe?" in r.text
    assert "aide@gagnon.test perd immédiatement l'accès aux demandes de cette entreprise" in r.text
    assert 'name="confirm" value="yes"' in r.text and "Oui, la retirer" in r.text
    assert shop["helper"] in _members(db, shop["bid"])
    assert db.query_one("SELECT count(*) AS n FROM sessions WHERE user_id = ?", (shop["helper"],))["n"] == 1
    assert helper_session  # still valid: nothing happened

    en = client.post(f"/en/app/settings/team/{shop['helper']}/remove", data={"_csrf_token": token})
    assert "Remove Luc Aide from the team?" in en.text and "loses access to this business's leads at once" in en.text

    done = client.post(f"/fr/app/settings/team/{shop['helper']}/remove",
                       data={"_csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert done.status_code == 303 and shop["helper"] not in _members(db, shop["bid"])
    assert db.query_one("SELECT count(*) AS n FROM sessions WHERE user_id = ?", (shop["helper"],))["n"] == 0


def test_removal_confirmation_for_the_owner_or_a_stranger(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    r = client.post(f"/fr/app/settings/team/{shop['owner']}/remove", data={"_csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303  # an owner is never removed: nothing to confirm
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        stranger = businesses.add_user(conn, business_id=other, email="x@autre.test", password="x" * 16)
    r = client.post(f"/fr/app/settings/team/{stranger}/remove", data={"_csrf_token": token})
    assert r.status_code == 404
    assert client.post("/fr/app/settings/team/999999999/remove", data={"_csrf_token": token}).status_code == 404


def test_removing_a_question_asks_first_naming_it(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    field_id = shop["fields"]["property"]
    r = client.post(f"/fr/app/settings/fields/{field_id}/remove", data={"_csrf_token": token})
    assert r.status_code == 200
    assert "Retirer la question « Type de propriété » de votre formulaire?" in r.text
    assert "Les réponses déjà reçues restent dans leurs demandes." in r.text
    assert 'name="confirm" value="yes"' in r.text
    assert field_id in {f.id for f in custom_fields.active_fields(db, shop["bid"])}
    assert "Type de propriété" in client.get("/fr/f/gagnon").text

    en = client.post(f"/en/app/settings/fields/{field_id}/remove", data={"_csrf_token": token})
    assert "Remove the question “Type of property” from your form?" in en.text

    done = client.post(f"/fr/app/settings/fields/{field_id}/remove", data={"_csrf_token": token, "confirm": "yes"},
                       follow_redirects=False)
    assert done.status_code == 303
    assert field_id not in {f.id for f in custom_fields.active_fields(db, shop["bid"])}
    assert "Type de propriété" not in client.get("/fr/f/gagnon").text


def test_a_member_cannot_reach_either_confirmation(client, db, shop):
    token = signed_in(client, db, shop["helper"], shop["bid"])
    field_id = shop["fields"]["rooms"]
    assert client.post(f"/fr/app/settings/fields/{field_id}/remove", data={"_csrf_token": token}).status_code == 403
    assert client.post(f"/fr/app/settings/team/{shop['owner']}/remove",
                       data={"_csrf_token": token}).status_code == 403


def test_an_anonymized_lead_is_titled_so_not_as_nameless(client, db, shop):
    from app import leads

    signed_in(client, db, shop["owner"], shop["bid"])
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=shop["bid"], channel="web", actor="test", language="fr",
                               need="x")["id"]
    with db.write() as conn:
        conn.execute("UPDATE leads SET status = 'anonymized', first_name = NULL WHERE id = ?", (lead_id,))
    assert "<h1>Demande anonymisée</h1>" in client.get(f"/fr/app/leads/{lead_id}").text
    assert "<h1>Anonymized lead</h1>" in client.get(f"/en/app/leads/{lead_id}").text
