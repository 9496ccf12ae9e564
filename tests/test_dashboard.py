"""The owner's and team's day on the dashboard, over HTTP on a real data directory."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from app import businesses, leads
from tests.support.app import csrf_token
from tests.support.people import make_business, signed_in

PASSWORD = "correct horse battery"


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password=PASSWORD, name="Marie")
    return bid, owner


def add_lead(db, bid, **fields):
    with db.write() as conn:
        return leads.create(conn, business_id=bid, channel=fields.pop("channel", "web"), actor="test",
                            language=fields.pop("language", "fr"), **fields)["id"]


def test_search_finds_by_name_phone_email_need_and_note(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    target = add_lead(db, bid, first_name="Hélène", last_name="Côté", phone="+15145550101",
                      email="helene@example.com", need="Chauffe-eau qui fuit")
    add_lead(db, bid, first_name="Marc", phone="+14385550102", need="Borne de recharge")
    other, _ = make_business(db, "autre", "Autre", custom=False)
    add_lead(db, other, first_name="Hélène", phone="+15145550101", need="Chauffe-eau")
    client.post(f"/fr/app/leads/{target}/notes", data={"_csrf_token": token, "note": "Rappeler après le souper"})

    def found(q):
        html = client.get("/fr/app/leads", params={"q": q}).text
        return sorted(set(re.findall(r'href="/fr/app/leads/(\d+)"', html)))

    for q in ("helene", "Hélène", "côté", "514 555-0101", "5550101", "(514)555", "helene@example",
              "chauffe", "souper"):
        assert found(q) == [str(target)], q
    assert found("zzz") == []
    assert found('"') == sorted(set(re.findall(r'href="/fr/app/leads/(\d+)"', client.get("/fr/app/leads").text)))
    assert "Aucune demande ne correspond à « zzz »." in client.get("/fr/app/leads?q=zzz").text


def test_tabs_channel_filter_and_paging_in_sql(client, db, shop):
    bid, owner = shop
    signed_in(client, db, owner, bid)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(30):
        add_lead(db, bid, first_name=f"Client{i:02d}", need="x", channel="phone" if i % 3 == 0 else "web",
                 created_at=(base + timedelta(hours=i)).isoformat(timespec="seconds"))
    page1 = client.get("/fr/app/leads").text
    names = re.findall(r"Client(\d\d)", page1)
    assert names[:2] == ["29", "28"] and len(names) == 25 and 'rel="next"' in page1
    page2 = client.get("/fr/app/leads?page=2").text
    assert re.findall(r"Client(\d\d)", page2) == ["04", "03", "02", "01", "00"] and 'rel="next"' not in page2
    phone = re.findall(r"Client(\d\d)", client.get("/fr/app/leads?channel=phone").text)
    assert len(phone) == 10 and all(int(n) % 3 == 0 for n in phone)
    assert '<span class="count">30</span>' in page1  # new


def test_htmx_swaps_return_the_fragment(client, db, shop):
    bid, owner = shop
    signed_in(client, db, owner, bid)
    add_lead(db, bid, first_name="Zoé", need="x")
    r = client.get("/fr/app/leads?q=zoe", headers={"HX-Request": "true", "HX-Target": "inbox"})
    assert "<html" not in r.text and "Zoé" in r.text


def test_new_leads_trigger_a_refresh(client, db, shop):
    bid, owner = shop
    signed_in(client, db, owner, bid)
    first = add_lead(db, bid, first_name="A", need="x")
    assert "HX-Trigger" not in client.get(f"/fr/app/leads/latest?since={first}").headers
    add_lead(db, bid, first_name="B", need="y")
    assert client.get(f"/fr/app/leads/latest?since={first}").headers["HX-Trigger"] == "new-leads"


def test_status_note_edit_archive_and_timeline(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Luc", phone="+15145550101", need="x")
    page = client.get(f"/fr/app/leads/{lead_id}")
    assert page.status_code == 200 and "Luc" in page.text
    assert db.query_one("SELECT * FROM audit_log WHERE action = 'lead.view' AND entity_id = ?", (str(lead_id),))

    r = client.post(f"/fr/app/leads/{lead_id}/status", data={"_csrf_token": token, "status": "contacted"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/fr/app/leads/{lead_id}"
    lead = leads.get(db, bid, lead_id)
    assert lead["status"] == "contacted" and lead["first_contact_at"]

    r = client.post(f"/fr/app/leads/{lead_id}/notes", data={"_csrf_token": token, "note": "Client rappelé"},
                    headers={"HX-Request": "true"})
    assert "<html" not in r.text and "Client rappelé" in r.text and "Statut : Nouvelle → Contactée" in r.text
    assert "Marie" in r.text  # who did it

    bad = client.post(f"/fr/app/leads/{lead_id}/edit", data={"_csrf_token": token, "phone": "123",
                                                              "first_name": "Luc"})
    assert bad.status_code == 422 and "Entrez un numéro de téléphone valide" in bad.text
    ok = client.post(f"/fr/app/leads/{lead_id}/edit", data={"_csrf_token": token, "first_name": "Lucien",
                                                            "phone": "514 555 0199", "postal_code": "h2x1y4"})
    assert ok.status_code == 200
    lead = leads.get(db, bid, lead_id)
    assert (lead["first_name"], lead["phone"], lead["postal_code"]) == ("Lucien", "+15145550199", "H2X 1Y4")
    assert lead["geocode_status"] == "pending"
    entry = db.query_one("SELECT fields FROM audit_log WHERE action = 'lead.rectify'")
    assert json.loads(entry["fields"]) == ["first_name", "phone", "postal_code"]
    assert "Lucien" not in str(db.query("SELECT * FROM audit_log"))

    client.post(f"/fr/app/leads/{lead_id}/status", data={"_csrf_token": token, "status": "archived"})
    assert leads.get(db, bid, lead_id)["archived_at"]
    with db.write() as conn:
        conn.execute("UPDATE leads SET status = 'anonymized' WHERE id = ?", (lead_id,))
    r = client.post(f"/fr/app/leads/{lead_id}/status", data={"_csrf_token": token, "status": "new"})
    assert r.status_code == 422 and "anonymisée (Loi 25)" in r.text


def test_appointment_book_overlap_move_cancel_with_client_sms(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x", language="en")
    other = add_lead(db, bid, first_name="Bob", phone="+15145550124", need="y")
    data = {"_csrf_token": token, "day": "2037-11-26", "time": "14:00", "duration": "60"}
    assert client.post(f"/en/app/leads/{lead_id}/appointments", data=data).status_code == 200
    appt = db.query_one("SELECT * FROM appointments WHERE lead_id = ?", (lead_id,))
    assert appt["starts_at"] == "2037-11-26T19:00:00+00:00" and appt["ends_at"] == "2037-11-26T20:00:00+00:00"
    assert leads.get(db, bid, lead_id)["status"] == "scheduled"
    sms = db.query_one("SELECT * FROM outbox WHERE kind = 'client_appointment'")
    assert sms["to_phone"] == "+15145550123"
    assert sms["body"] == ("Plomberie Gagnon: your appointment is confirmed for Thursday, November 26 at "
                           "2:00 p.m. - reply or call us to change it.")

    clash = client.post(f"/fr/app/leads/{other}/appointments", data={**data, "time": "14:30"})
    assert clash.status_code == 409 and "Cette heure chevauche un autre rendez-vous" in clash.text
    assert db.query_one("SELECT count(*) AS n FROM appointments")["n"] == 1
    forced = client.post(f"/fr/app/leads/{other}/appointments", data={**data, "time": "14:30",
                                                                      "confirm_overlap": "yes"})
    assert forced.status_code == 200 and db.query_one("SELECT count(*) AS n FROM appointments")["n"] == 2
    bob_sms = db.query("SELECT body FROM outbox WHERE to_phone = '+15145550124'")[0]["body"]
    assert "jeudi 26 novembre à 14 h 30" in bob_sms

    moved = client.post(f"/en/app/appointments/{appt['id']}/move",
                        data={"_csrf_token": token, "day": "2037-11-27", "time": "09:00", "duration": "30"})
    assert moved.status_code == 200
    assert db.query_one("SELECT starts_at FROM appointments WHERE id = ?", (appt["id"],))["starts_at"] == \
        "2037-11-27T14:00:00+00:00"
    client.post(f"/en/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token, "confirm": "yes"})
    assert db.query_one("SELECT status FROM appointments WHERE id = ?", (appt["id"],))["status"] == "cancelled"
    bodies = [r["body"] for r in db.query("SELECT body FROM outbox WHERE to_phone = '+15145550123' ORDER BY id")]
    assert len(bodies) == 3 and "new time: Friday, November 27 at 9:00 a.m." in bodies[1] and "is cancelled" in bodies[2]

    week = client.get("/fr/app/calendar?week=2037-11-26").text
    assert "Bob" in week and "14:30" in week and "Ann" not in week  # Ann's was cancelled


def test_ics_feed_lists_booked_appointments_in_utc(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann; the, \"best\"", phone="+15145550123", need="x")
    client.post(f"/fr/app/leads/{lead_id}/appointments",
                data={"_csrf_token": token, "day": "2037-11-26", "time": "14:00", "duration": "45"})
    page = client.get("/fr/app/calendar?week=2037-11-23").text
    url = re.search(r'value="(http[^"]+\.ics)"', page).group(1)
    feed = client.get(url.replace("http://127.0.0.1:8000", ""))
    assert "DTSTART:20371126T190000Z" in feed.text and "DTEND:20371126T194500Z" in feed.text
    assert "SUMMARY:Ann\\; the\\, \"best\"" in feed.text
    assert feed.text.endswith("END:VCALENDAR\r\n")
    assert all(len(line.encode()) <= 75 for line in feed.text.split("\r\n"))


def test_settings_saved_and_validated(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    bad = client.post("/en/app/settings", data={
        "_csrf_token": token, "name": "", "slug": "Bad Slug", "timezone": "Mars/Base", "notify_phones": "123",
        "embed_domains": "javascript:alert(1)", "mon_open": "17:00", "mon_close": "08:00"})
    assert bad.status_code == 422
    for text in ("This field is required.", "Use 1 to 40 lowercase letters", "Choose a time zone",
                 "Enter one valid phone number per line.", "Enter one domain name per line",
                 "Give an opening time before the closing time"):
        assert text in bad.text
    ok = client.post("/fr/app/settings", data={
        "_csrf_token": token, "name": "Plomberie Gagnon & Fils", "slug": "gagnon", "timezone": "America/Montreal",
        "language": "en", "phone": "514 555 0100", "notify_phones": "514 555-0111\n(438) 555-0112",
        "embed_domains": "https://plomberie-gagnon.ca/\nwww.gagnon.ca", "mon_open": "08:00", "mon_close": "17:00",
        "greeting_fr": "Bonjour", "greeting_en": "Hello"}, follow_redirects=False)
    assert ok.status_code == 303
    b = businesses.get(db, bid)
    assert b["name"] == "Plomberie Gagnon & Fils" and b["language"] == "en" and b["phone"] == "+15145550100"
    assert json.loads(b["notify_phones"]) == ["+15145550111", "+14385550112"]
    assert json.loads(b["embed_domains"]) == ["plomberie-gagnon.ca", "www.gagnon.ca"]
    assert json.loads(b["hours"]) == {"mon": [["08:00", "17:00"]]}
    assert "Paramètres enregistrés." in client.get("/fr/app/settings?saved=1").text


def test_greeting_is_prefilled_with_the_consent_notice(client, db, shop):
    bid, owner = shop
    signed_in(client, db, owner, bid)
    page = client.get("/fr/app/settings").text
    assert "Votre message est enregistré et traité par une intelligence artificielle automatisée" in page
    assert "Your message is recorded and processed by automated artificial intelligence" in page


def test_custom_fields_added_reordered_removed_and_shown_on_the_form(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    client.post("/fr/app/settings/fields", data={"_csrf_token": token, "kind": "single_choice",
                                                 "label_fr": "Type de bâtiment", "label_en": "Building type",
                                                 "options": "Maison | House\nCommerce | Shop", "required": "yes"})
    client.post("/fr/app/settings/fields", data={"_csrf_token": token, "kind": "date", "label_fr": "Date souhaitée",
                                                 "label_en": "Preferred date"})
    bad = client.post("/fr/app/settings/fields", data={"_csrf_token": token, "kind": "single_choice",
                                                       "label_fr": "X", "options": "Seule"})
    assert bad.status_code == 422 and "au moins deux options" in bad.text
    form = client.get("/fr/f/gagnon").text
    assert form.index("Type de bâtiment") < form.index("Date souhaitée") and "Commerce" in form
    fields = db.query("SELECT id FROM custom_fields WHERE business_id = ? ORDER BY position", (bid,))
    client.post(f"/fr/app/settings/fields/{fields[1]['id']}/move", data={"_csrf_token": token, "direction": "up"})
    form = client.get("/en/f/gagnon").text
    assert form.index("Preferred date") < form.index("Building type")
    client.post(f"/fr/app/settings/fields/{fields[0]['id']}/remove", data={"_csrf_token": token, "confirm": "yes"})
    assert "Type de bâtiment" not in client.get("/fr/f/gagnon").text


def test_team_member_added_with_one_time_password_then_removed(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    page = client.post("/fr/app/settings/team", data={"_csrf_token": token, "email": "aide@gagnon.ca"}).text
    password = re.search(r'<code class="secret">([^<]+)</code>', page).group(1)
    member = db.query_one("SELECT id, must_change_password FROM users WHERE email = 'aide@gagnon.ca'")
    assert member["must_change_password"] == 1
    client.cookies.clear()
    token = csrf_token(client)
    r = client.post("/fr/login", data={"_csrf_token": token, "email": "aide@gagnon.ca", "password": password},
                    follow_redirects=False)
    assert r.headers["location"] == "/fr/app/password"
    member_cookie = client.cookies.get("capteo_session")
    r = client.post("/fr/app/password", data={"_csrf_token": token, "current": password,
                                              "password": "un nouveau secret", "password_again": "un nouveau secret"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert businesses.authenticate(db, "aide@gagnon.ca", "un nouveau secret")
    assert client.get("/fr/app/settings").status_code == 403  # a member
    # The owner removes them: their session ends at once.
    signed_in(client, db, owner, bid)
    client.post(f"/fr/app/settings/team/{member['id']}/remove",
                data={"_csrf_token": csrf_token(client), "confirm": "yes"})
    client.cookies.set("capteo_session", member_cookie)
    assert client.get("/fr/app/leads", follow_redirects=False).status_code == 303


def test_login_is_throttled_per_email_and_ip(client, db, shop):
    token = csrf_token(client)
    for _ in range(5):
        r = client.post("/fr/login", data={"_csrf_token": token, "email": "owner@gagnon.test", "password": "nope"})
        assert r.status_code == 400
    r = client.post("/fr/login", data={"_csrf_token": token, "email": "owner@gagnon.test", "password": PASSWORD})
    assert r.status_code == 429 and "Trop de tentatives échouées" in r.text
    r = client.post("/fr/login", data={"_csrf_token": token, "email": "other@gagnon.test", "password": "nope"})
    assert r.status_code == 400


def test_overview_chart_and_median(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="A", need="x", channel="phone")
    client.post(f"/fr/app/leads/{lead_id}/status", data={"_csrf_token": token, "status": "contacted"})
    page = client.get("/fr/app/overview").text
    assert '<svg' in page and 'role="img"' in page and "Délai médian avant le premier contact" in page
    assert re.search(r'<p class="big">1</p>', page)


def test_map_page_allows_only_the_tile_server(client, db, shop):
    bid, owner = shop
    signed_in(client, db, owner, bid)
    with db.write() as conn:
        leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Pin", need="x",
                     latitude=45.5, longitude=-73.6)
    r = client.get("/fr/app/map")
    assert "img-src 'self' data: https://tile.openstreetmap.org" in r.headers["content-security-policy"]
    assert "script-src 'self';" in r.headers["content-security-policy"]
    points = client.get("/fr/app/map/points").json()["points"]
    assert points[0]["label"] == "Pin" and points[0]["status"] == "new" and points[0]["lat"] == 45.5
