"""Issue 12, a shared inbox: a lead given to a team member, the "mine" and "unassigned"
views, and what each person has not read yet -- over HTTP on a real data directory."""

from __future__ import annotations

import re
import time

import pytest

from app import businesses, leads
from tests.support.people import make_business, signed_in

PASSWORD = "correct horse battery"


@pytest.fixture
def team(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="marie@gagnon.test", password=PASSWORD,
                                    name="Marie")
        member = businesses.add_user(conn, business_id=bid, email="luc@gagnon.test", password=PASSWORD,
                                     name="Luc", role="member")
        outsider = businesses.add_user(conn, business_id=other, email="paul@autre.test", password=PASSWORD,
                                       name="Paul")
        made = [leads.create(conn, business_id=bid, channel="web", actor="test", first_name=name, need="x")["id"]
                for name in ("Alice", "Bruno", "Chloé")]
        theirs = leads.create(conn, business_id=other, channel="web", actor="test", first_name="Zoé", need="y")["id"]
    return {"bid": bid, "other": other, "owner": owner, "member": member, "outsider": outsider,
            "alice": made[0], "bruno": made[1], "chloe": made[2], "theirs": theirs}


def listed(client, **params) -> list[int]:
    html = client.get("/fr/app/leads", params=params).text
    return sorted({int(i) for i in re.findall(r'href="/fr/app/leads/(\d+)"', html)})


def unread(client, **params) -> list[int]:
    html = client.get("/fr/app/leads", params=params).text
    return sorted(int(i) for i in re.findall(r'<tr class="unread">.*?href="/fr/app/leads/(\d+)"', html, re.S))


def test_assign_to_a_member_and_the_mine_and_unassigned_views(client, db, team):
    token = signed_in(client, db, team["owner"], team["bid"])
    page = client.get(f"/fr/app/leads/{team['alice']}").text
    assert f'<option value="{team["member"]}">Luc</option>' in page and "Personne" in page
    r = client.post(f"/fr/app/leads/{team['alice']}/assign", data={"_csrf_token": token,
                                                                     "assigned_to": str(team["member"])},
                    headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert f'<option value="{team["member"]}" selected>Luc</option>' in r.text
    client.post(f"/fr/app/leads/{team['bruno']}/assign", data={"_csrf_token": token,
                                                                "assigned_to": str(team["owner"])})
    assert leads.get(db, team["bid"], team["alice"])["assigned_to"] == team["member"]
    event = db.one("SELECT * FROM lead_events WHERE lead_id = ? AND kind = 'assign'", (team["alice"],))
    assert event["user_id"] == team["owner"]
    assert db.one("SELECT count(*) AS n FROM audit_log WHERE action = 'lead.assign'")["n"] == 2

    assert listed(client) == [team["alice"], team["bruno"], team["chloe"]]
    assert listed(client, assigned="me") == [team["bruno"]]
    assert listed(client, assigned="none") == [team["chloe"]]
    # The tabs keep the view, and count only its leads.
    html = client.get("/fr/app/leads", params={"assigned": "none"}).text
    assert 'href="/fr/app/leads?status=new&amp;assigned=none"' in html
    assert re.search(r'Nouvelles\s*<span class="count">1</span>', html)
    assert '<option value="none" selected>Demandes non attribuées</option>' in html
    assert re.search(r'Nouvelles\s*<span class="count">3</span>', client.get("/fr/app/leads").text)

    # The member's "mine" is theirs; back to nobody empties it.
    signed_in(client, db, team["member"], team["bid"])
    assert listed(client, assigned="me") == [team["alice"]]
    token = signed_in(client, db, team["member"], team["bid"])
    client.post(f"/fr/app/leads/{team['alice']}/assign", data={"_csrf_token": token, "assigned_to": ""})
    assert listed(client, assigned="me") == []
    assert listed(client, assigned="none") == [team["alice"], team["chloe"]]
    assert client.get("/en/app/leads", params={"assigned": "me"}).text.count("My leads") >= 1


def test_another_business_member_or_lead_cannot_be_used(client, db, team):
    token = signed_in(client, db, team["owner"], team["bid"])
    for who in (str(team["outsider"]), "abc", "-1"):
        r = client.post(f"/fr/app/leads/{team['alice']}/assign", data={"_csrf_token": token, "assigned_to": who},
                        headers={"HX-Request": "true"})
        assert r.status_code == 422 and "Cette personne ne fait pas partie de votre équipe." in r.text
    assert leads.get(db, team["bid"], team["alice"])["assigned_to"] is None
    assert not db.query("SELECT * FROM lead_events WHERE kind = 'assign'")
    # Another business's lead is not found, whoever is named.
    r = client.post(f"/fr/app/leads/{team['theirs']}/assign", data={"_csrf_token": token,
                                                                      "assigned_to": str(team["owner"])})
    assert r.status_code == 404
    assert leads.get(db, team["other"], team["theirs"])["assigned_to"] is None
    # The outsider's inbox knows nothing of business A's leads, in any view.
    signed_in(client, db, team["outsider"], team["other"])
    assert listed(client, assigned="none") == [team["theirs"]]
    assert listed(client, assigned="me") == []


def test_unread_until_opened_and_again_after_someone_else_changes_it(client, db, team):
    signed_in(client, db, team["owner"], team["bid"])
    assert unread(client) == [team["alice"], team["bruno"], team["chloe"]]
    html = client.get("/fr/app/leads").text
    assert html.count("(non lue)") == 3 and 'class="visually-hidden">(non lue)' in html
    assert client.get(f"/fr/app/leads/{team['alice']}").status_code == 200
    assert unread(client) == [team["bruno"], team["chloe"]]
    # Unread is per person: Luc has opened nothing.
    time.sleep(1.1)  # timestamps are to the second: the change comes after the read
    token = signed_in(client, db, team["member"], team["bid"])
    assert unread(client) == [team["alice"], team["bruno"], team["chloe"]]
    # Luc's own change does not make the lead bold for him, but it does for Marie.
    r = client.post(f"/fr/app/leads/{team['alice']}/notes", data={"_csrf_token": token, "note": "Rappeler"},
                    headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert unread(client) == [team["bruno"], team["chloe"]]
    signed_in(client, db, team["owner"], team["bid"])
    assert unread(client) == [team["alice"], team["bruno"], team["chloe"]]
    client.get(f"/fr/app/leads/{team['alice']}")
    assert unread(client) == [team["bruno"], team["chloe"]]
    # Being given a lead makes it bold for the one who gets it.
    time.sleep(1.1)
    token = signed_in(client, db, team["member"], team["bid"])
    client.post(f"/fr/app/leads/{team['alice']}/assign", data={"_csrf_token": token,
                                                                "assigned_to": str(team["owner"])})
    signed_in(client, db, team["owner"], team["bid"])
    assert unread(client, assigned="me") == [team["alice"]]


def test_the_timeline_names_the_assignee_and_a_removed_member_leaves_no_assignment(client, db):
    from app import businesses, leads
    from tests.support.people import make_business, signed_in

    bid, _ = make_business(db, "tremblay", "Tremblay", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="o@tremblay.test", password="x" * 12)
        member = businesses.add_user(conn, business_id=bid, email="m@tremblay.test", password="x" * 12,
                                     name="Martine", role="member")
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="t", phone="+15145550101",
                               need="fuite")["id"]
    token = signed_in(client, db, owner, bid)
    client.post(f"/fr/app/leads/{lead_id}/assign", data={"_csrf_token": token, "assigned_to": str(member)})
    assert "Attribuée à Martine" in client.get(f"/fr/app/leads/{lead_id}").text
    client.post(f"/fr/app/settings/team/{member}/remove", data={"_csrf_token": token, "confirm": "yes"})
    assert leads.get(db, bid, lead_id)["assigned_to"] is None
    assert "Attribuée à un ancien membre" in client.get(f"/fr/app/leads/{lead_id}").text
