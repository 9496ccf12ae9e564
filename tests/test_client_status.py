"""A client's status page: the reference and the phone number show where a request
stands, and nothing else; the client may cancel it or ask for erasure; wrong pairs are
limited per address and say no more than "not found"."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest

from app import appointments, businesses, clock, leads
from tests.support.app import csrf_token
from tests.support.people import make_business


@pytest.fixture
def request_made(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon")
    other, _ = make_business(db, "autre", "Autre Inc.")
    with db.write() as conn:
        conn.execute("UPDATE businesses SET phone = '+15145550100' WHERE id = ?", (bid,))
        lead = leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Hélène", last_name="Côté",
                            phone="+15145550101", need="Fuite sous l'évier", street_address="4521 rue Saint-Hubert")
        elsewhere = leads.create(conn, business_id=other, channel="web", actor="t", phone="+15145550101",
                                 need="Autre chose")
    return {"business": bid, "lead": lead, "elsewhere": elsewhere}


class _Page:
    def __init__(self, response):
        self.status_code, self.text = response.status_code, html.unescape(response.text)


def _ask(client, reference, phone, path="/fr/status", **extra):
    return _Page(client.post(path, data={"_csrf_token": csrf_token(client), "reference": reference, "phone": phone,
                                         **extra}))


def test_the_reference_and_phone_show_where_it_stands_and_nothing_else(client, db, request_made):
    ref = request_made["lead"]["reference"]
    r = _ask(client, f" {ref.lower()[:3]}-{ref.lower()[3:]} ", "(514) 555-0101")
    assert r.status_code == 200
    assert "Plomberie Gagnon" in r.text and "Reçue : l'entreprise communiquera avec vous." in r.text
    assert "Fuite" not in r.text and "Hélène" not in r.text and "Saint-Hubert" not in r.text
    assert "514 555-0100" in r.text  # the business's phone, to change something
    assert db.query("SELECT * FROM audit_log WHERE action = 'lead.status_page.view'")


def test_a_booked_appointment_shows_its_date(client, db, request_made):
    slot = appointments.Slot.local((clock.now() + timedelta(days=3)).date().isoformat(), "10:00", 60,
                                   "America/Toronto")
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=request_made["business"], email="o@gagnon.test",
                                    password="x" * 12)
    appointments.book(db, businesses.get(db, request_made["business"]), request_made["lead"]["id"], slot,
                      user_id=owner)
    r = _ask(client, request_made["lead"]["reference"], "514 555-0101", path="/en/status")
    assert "An appointment is booked for" in r.text and "10:00" in r.text


@pytest.mark.parametrize("phone", ["514 555-0199", "", "not a phone"])
def test_a_wrong_pair_says_only_not_found(client, request_made, phone):
    r = _ask(client, request_made["lead"]["reference"], phone)
    assert r.status_code == 404 and "Nous n'avons trouvé aucune demande" in r.text
    assert "Plomberie Gagnon" not in r.text


def test_wrong_pairs_are_limited_per_address(client, request_made):
    for _ in range(5):
        assert _ask(client, "ZZZZZZZ", "514 555-0101").status_code == 404
    r = _ask(client, request_made["lead"]["reference"], "514 555-0101")
    assert r.status_code == 429 and "Trop d'essais" in r.text


def test_the_client_cancels_after_confirming(client, db, request_made):
    ref, bid, lead_id = request_made["lead"]["reference"], request_made["business"], request_made["lead"]["id"]
    first = _ask(client, ref, "514 555-0101", path="/fr/status/cancel")
    assert "Annuler cette demande?" in first.text and leads.get(db, bid, lead_id)["status"] == "new"
    done = _ask(client, ref, "514 555-0101", path="/fr/status/cancel", confirm="yes")
    assert "Votre demande est annulée" in done.text and "Cette demande est fermée." in done.text
    assert leads.get(db, bid, lead_id)["status"] == "closed"
    assert leads.timeline(db, bid, lead_id)[-1]["data"] == '{"from": "new", "to": "closed", "by": "client"}'


def test_the_client_asks_for_erasure_into_the_right_register(client, db, request_made):
    ref = request_made["lead"]["reference"]
    _ask(client, ref, "514 555-0101", path="/fr/status/erase", confirm="yes")
    rows = db.query("SELECT business_id, kind, contact, source FROM privacy_requests")
    assert rows == [{"business_id": request_made["business"], "kind": "erasure", "contact": "+15145550101",
                     "source": "public"}]


def test_an_anonymized_request_is_not_found(client, db, config, request_made):
    from app.privacy import retention

    retention.erase_person(db, config, request_made["business"], [request_made["lead"]["id"]], actor="t",
                           reason="erasure")
    assert _ask(client, request_made["lead"]["reference"], "514 555-0101").status_code == 404


def test_asking_again_files_no_second_request(client, db, request_made):
    ref = request_made["lead"]["reference"]
    for _ in range(3):
        _ask(client, ref, "514 555-0101", path="/fr/status/erase", confirm="yes")
    assert db.one("SELECT count(*) AS n FROM privacy_requests")["n"] == 1
