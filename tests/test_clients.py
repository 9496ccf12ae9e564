"""Issue 12, clients: the same person (same phone or email) across requests and channels is
one client with a history, reachable from each lead; merged and split by hand; found whole
by the privacy tools. Another business's same phone is another client."""

from __future__ import annotations

import html
import json

import pytest

from app import businesses, clients, leads, migrations, privacy
from app.privacy import retention
from tests.support.app import csrf_token
from tests.support.people import make_business, signed_in
from tests.test_form import good, submit

PASSWORD = "correct horse battery"


@pytest.fixture
def shop(db):
    bid, ids = make_business(db, "gagnon", "Plomberie Gagnon")
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password=PASSWORD)
        outsider = businesses.add_user(conn, business_id=other, email="owner@autre.ca", password=PASSWORD)
    return {"bid": bid, "ids": ids, "other": other, "owner": owner, "outsider": outsider}


def lead(db, bid, *, channel="web", **fields):
    with db.write() as conn:
        made = leads.create(conn, business_id=bid, channel=channel, actor="t", need=fields.pop("need", "Fuite"),
                            **fields)
    return leads.get(db, bid, made["id"])


def test_repeat_requests_by_phone_and_by_email_are_one_client(db, shop):
    bid = shop["bid"]
    first = lead(db, bid, first_name="Hélène", phone="+15145550101")
    by_phone = lead(db, bid, channel="phone", phone="+15145550101")  # a voicemail, later
    by_email = lead(db, bid, first_name="Hélène", phone="+15145550101", email="helene@example.com")
    email_only = lead(db, bid, email="HELENE@example.com ")
    stranger = lead(db, bid, first_name="Zoé", phone="+14385550199", email="zoe@example.com")
    nothing = lead(db, bid)  # no phone, no email: a client of its own
    assert first["client_id"] is not None
    assert {by_phone["client_id"], by_email["client_id"], email_only["client_id"]} == {first["client_id"]}
    assert stranger["client_id"] != first["client_id"] and nothing["client_id"] not in (
        first["client_id"], stranger["client_id"])
    newest_first = [r["id"] for r in clients.leads_of(db, bid, first["client_id"])]
    assert newest_first == [email_only["id"], by_email["id"], by_phone["id"], first["id"]]
    assert clients.other_requests(db, bid, first["client_id"], first["id"]) == 3


def test_the_public_form_twice_is_one_client(client, db, shop):
    for need in ("Dégât d'eau", "Chauffe-eau"):
        assert submit(client, good((shop["bid"], shop["ids"]), need=need)).status_code in (200, 303)
    rows = db.query("SELECT client_id FROM leads WHERE business_id = ?", (shop["bid"],))
    assert len(rows) == 2 and rows[0]["client_id"] == rows[1]["client_id"] is not None


def test_another_business_same_phone_is_another_client_and_404(client, db, shop):
    mine = lead(db, shop["bid"], first_name="Hélène", phone="+15145550101")
    theirs = lead(db, shop["other"], first_name="Ailleurs", phone="+15145550101")
    assert mine["client_id"] != theirs["client_id"]
    token = signed_in(client, db, shop["outsider"], shop["other"])
    assert client.get(f"/fr/app/clients/{mine['client_id']}").status_code == 404
    assert client.get(f"/fr/app/clients/{mine['client_id']}/leads/{mine['id']}/others").status_code == 404
    # Merging another business's client into one's own is refused like a client that does not exist.
    r = client.post(f"/fr/app/clients/{theirs['client_id']}/merge",
                    data={"_csrf_token": token, "other": str(mine["client_id"])})
    assert r.status_code == 422 and "Aucun client ne porte ce numéro." in html.unescape(r.text)
    assert leads.get(db, shop["bid"], mine["id"])["client_id"] == mine["client_id"]
    r = client.post(f"/fr/app/clients/{mine['client_id']}/leads/{mine['id']}/split", data={"_csrf_token": token})
    assert r.status_code == 404


def test_the_client_page_shows_the_history_and_is_audited(client, db, shop):
    bid = shop["bid"]
    first = lead(db, bid, first_name="Hélène", phone="+15145550101", need="Fuite sous l'évier")
    second = lead(db, bid, channel="phone", phone="+15145550101", need="Chauffe-eau")
    with db.write() as conn:
        conn.execute("INSERT INTO appointments (business_id, lead_id, starts_at, ends_at, created_at, updated_at)"
                     " VALUES (?, ?, '2030-12-01T15:00:00+00:00', '2030-12-01T16:00:00+00:00', 'x', 'x')",
                     (bid, first["id"]))
        conn.execute("INSERT INTO outbox (business_id, lead_id, kind, to_phone, body, next_attempt_at, created_at)"
                     " VALUES (?, ?, 'client_appointment', '+15145550101', 'RDV', 'x', '2026-11-01T00:00:00+00:00')",
                     (bid, second["id"]))
    signed_in(client, db, shop["owner"], bid)
    page = client.get(f"/fr/app/clients/{first['client_id']}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert f"Client nº {first['client_id']}" in text
    # Newest first, each a link to its lead.
    assert text.index(f"/fr/app/leads/{second['id']}\"") < text.index(f"/fr/app/leads/{first['id']}\"")
    # The appointment of one request and the SMS of the other, both on the client's page.
    assert "Confirmation de rendez-vous au client" in text and "Aucun texto pour ce client." not in text
    assert "Aucun rendez-vous pour ce client." not in text and "1 décembre à 10 h 00" in text
    assert first["reference"] in text and second["reference"] in text
    assert "Cette demande vient d'une autre personne" in text
    entry = db.query_one("SELECT * FROM audit_log WHERE action = 'client.view'")
    assert entry["entity_id"] == str(first["client_id"]) and "phone" in json.loads(entry["fields"])
    en = client.get(f"/en/app/clients/{first['client_id']}").text
    assert "Requests from this client" in en and "This request is another person" in en

    # The lead page links to its client, and the line says how many other requests it made.
    lead_page = client.get(f"/fr/app/leads/{first['id']}").text
    others = f"/fr/app/clients/{first['client_id']}/leads/{first['id']}/others"
    assert others in lead_page and f'href="/fr/app/clients/{first["client_id"]}"' in lead_page
    assert "1 autre demande de ce client" in client.get(others).text
    assert "1 other request from this client" in client.get(others.replace("/fr/", "/en/", 1)).text
    lead(db, bid, email="x@example.com", phone="+15145550101")
    assert "2 autres demandes de ce client" in client.get(others).text
    alone = lead(db, bid, phone="+18195550123")
    assert "Aucune autre demande de ce client" in client.get(
        f"/fr/app/clients/{alone['client_id']}/leads/{alone['id']}/others").text
    # A lead of another client is not this client's.
    assert client.get(f"/fr/app/clients/{first['client_id']}/leads/{alone['id']}/others").status_code == 404


def test_merge_and_split_by_hand(client, db, shop):
    bid = shop["bid"]
    phone = lead(db, bid, first_name="Hélène", phone="+15145550101")
    email = lead(db, bid, first_name="Hélène", email="helene@example.com")
    assert phone["client_id"] != email["client_id"]
    token = signed_in(client, db, shop["owner"], bid)
    url = f"/fr/app/clients/{phone['client_id']}/merge"

    for typed, error in (("", "Entrez le numéro de l'autre client."), ("abc", "Entrez le numéro de l'autre client."),
                         (str(10**30), "Entrez le numéro de l'autre client."),
                         (str(phone["client_id"]), "C'est déjà le même client."),
                         ("999999", "Aucun client ne porte ce numéro.")):
        r = client.post(url, data={"_csrf_token": token, "other": typed})
        assert r.status_code == 422 and error in html.unescape(r.text), typed

    r = client.post(url, data={"_csrf_token": token, "other": f"#{email['client_id']}"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/fr/app/clients/{phone['client_id']}"
    assert leads.get(db, bid, email["id"])["client_id"] == phone["client_id"]
    assert clients.get(db, bid, email["client_id"]) is None
    assert client.get(f"/fr/app/clients/{email['client_id']}").status_code == 404
    merged = db.query_one("SELECT * FROM audit_log WHERE action = 'client.merge'")
    assert merged["entity_id"] == f"{phone['client_id']},{email['client_id']}"
    # The next request by email joins the merged client.
    assert lead(db, bid, email="helene@example.com")["client_id"] == phone["client_id"]

    # "This request is another person": it moves to a new client, whose page opens.
    r = client.post(f"/fr/app/clients/{phone['client_id']}/leads/{email['id']}/split", data={"_csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303
    moved = leads.get(db, bid, email["id"])["client_id"]
    assert moved not in (None, phone["client_id"]) and r.headers["location"] == f"/fr/app/clients/{moved}"
    assert db.query_one("SELECT * FROM audit_log WHERE action = 'client.split'")["entity_id"] == str(email["id"])
    # A lead that is not this client's: 404; a client's only request: already on its own.
    r = client.post(f"/fr/app/clients/{phone['client_id']}/leads/{email['id']}/split", data={"_csrf_token": token})
    assert r.status_code == 404
    r = client.post(f"/fr/app/clients/{moved}/leads/{email['id']}/split", data={"_csrf_token": token})
    assert r.status_code == 422 and "C'est la seule demande de ce client" in html.unescape(r.text)


def test_privacy_shows_the_clients_other_requests_without_acting_on_them(client, db, shop):
    """Found through the client, shown to the owner, but not exported or erased: a stranger can
    type someone else's email next to their own phone in the public form (review finding)."""
    bid = shop["bid"]
    by_phone = lead(db, bid, first_name="Hélène", phone="+15145550101", need="Fuite")
    both = lead(db, bid, first_name="Hélène", phone="+15145550101", email="helene@example.com", need="Robinet")
    by_email = lead(db, bid, first_name="Hélène", email="helene@example.com", need="Chauffe-eau")
    stranger = lead(db, bid, first_name="Zoé", phone="+14385550199", need="Autre")
    elsewhere = lead(db, shop["other"], first_name="Ailleurs", phone="+15145550101", need="Ailleurs")
    assert len({by_phone["client_id"], both["client_id"], by_email["client_id"]}) == 1
    found = privacy.find_person(db, bid, phone="514 555-0101", email=None)
    assert {r["id"] for r in found} == {by_phone["id"], both["id"]}
    assert [r["id"] for r in privacy.related_requests(db, bid, found)] == [by_email["id"]]
    assert stranger["id"] not in {r["id"] for r in found} and elsewhere["id"] not in {r["id"] for r in found}

    signed_in(client, db, shop["owner"], bid)
    page = html.unescape(client.post("/fr/app/privacy/find", data={"_csrf_token": csrf_token(client),
                                                                   "phone": "(514) 555-0101"}).text)
    assert "Le même client a aussi ces demandes" in page and f"/fr/app/leads/{by_email['id']}" in page
    r = client.post("/fr/app/privacy/export", data={"_csrf_token": csrf_token(client), "phone": "(514) 555-0101",
                                                   "format": "json"})
    assert sorted(x["need"] for x in json.loads(r.text)["leads"]) == ["Fuite", "Robinet"]
    assert "Zoé" not in html.unescape(r.text) and "Ailleurs" not in html.unescape(r.text)


def test_an_anonymized_lead_leaves_its_client(db, config, shop):
    bid = shop["bid"]
    kept = lead(db, bid, first_name="Hélène", phone="+15145550101")
    erased = lead(db, bid, first_name="Hélène", phone="+15145550101", email="helene@example.com")
    alone = lead(db, bid, first_name="Zoé", phone="+14385550199")
    with db.write() as conn:
        for row in (erased, alone):
            retention.anonymize(conn, config, row, actor="t", reason="erasure")
    # No tie is left from an anonymized lead to the person's other requests.
    assert leads.get(db, bid, erased["id"])["client_id"] is None
    assert [r["id"] for r in clients.leads_of(db, bid, kept["client_id"])] == [kept["id"]]
    # A client left with no request goes; the row held nothing but ids and a date anyway.
    assert clients.get(db, bid, alone["client_id"]) is None
    assert set(db.one("SELECT * FROM clients LIMIT 1")) == {"id", "business_id", "created_at"}
    # A new request with the erased email makes a new client: nothing remembers it.
    assert lead(db, bid, email="helene@example.com")["client_id"] != kept["client_id"]


def test_the_migration_groups_existing_leads_by_phone_or_email():
    rows = [
        {"id": 1, "phone": "+15145550101", "email": None},
        {"id": 2, "phone": None, "email": "Helene@Example.com"},
        {"id": 3, "phone": "+14385550199", "email": None},
        {"id": 4, "phone": "+15145550101", "email": "helene@example.com"},  # joins 1 and 2
        {"id": 5, "phone": None, "email": None},
        {"id": 6, "phone": "+14385550199", "email": "zoe@example.com"},
    ]
    assert migrations.group_by_contact(rows) == [[1, 2, 4], [3, 6], [5]]
    assert migrations.group_by_contact([]) == []


def test_the_migration_fills_clients_for_leads_made_before_it(tmp_path):
    """m012 on a database whose leads were stored before clients existed."""
    from app.db import Database

    path = tmp_path / "old.db"
    db = Database(path)
    try:
        with db.write() as conn:
            conn.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
            for fn in migrations.MIGRATIONS[:migrations.MIGRATIONS.index(migrations.m012_clients)]:
                fn(conn)
                conn.execute("INSERT INTO schema_migrations VALUES (?, 'x')", (fn.__name__,))
            conn.execute("INSERT INTO businesses (id, slug, name, timezone, created_at) VALUES"
                         " (1, 'a', 'A', 'America/Toronto', 'x'), (2, 'b', 'B', 'America/Toronto', 'x')")
            for i, (bid, phone, email, status) in enumerate([
                    (1, "+15145550101", None, "new"), (1, None, "h@example.com", "new"),
                    (1, "+15145550101", "h@example.com", "closed"), (2, "+15145550101", None, "new"),
                    (1, None, None, "anonymized")], start=1):
                conn.execute("INSERT INTO leads (id, business_id, reference, channel, phone, email, status,"
                             " created_at, updated_at) VALUES (?, ?, ?, 'web', ?, ?, ?, ?, ?)",
                             (i, bid, f"REF{i}", phone, email, status, f"2026-01-0{i}", f"2026-01-0{i}"))
    finally:
        db.close()
    assert migrations.apply(path) == [fn.__name__ for fn in migrations.MIGRATIONS
                                      if migrations.MIGRATIONS.index(fn) >= migrations.MIGRATIONS.index(
                                          migrations.m012_clients)]
    db = Database(path)
    try:
        by_id = {r["id"]: r for r in db.query("SELECT id, business_id, client_id FROM leads")}
        assert by_id[1]["client_id"] == by_id[2]["client_id"] == by_id[3]["client_id"] is not None
        assert by_id[4]["client_id"] not in (None, by_id[1]["client_id"])
        assert by_id[5]["client_id"] is None
        client = db.one("SELECT * FROM clients WHERE id = ?", (by_id[1]["client_id"],))
        assert client["business_id"] == 1 and client["created_at"] == "2026-01-01"
    finally:
        db.close()
