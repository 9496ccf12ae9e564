"""Appointments that cannot surprise the client: no slot in the past, a cancellation that
asks first and names what the client will be told, and a lead status put back after it."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from app import businesses, clock, leads
from tests.support.people import make_business, signed_in

TZ = ZoneInfo("America/Toronto")
HTMX = {"HX-Request": "true", "HX-Target": "lead"}


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test",
                                    password="correct horse battery", name="Marie")
    return bid, owner


def add_lead(db, bid, **fields):
    with db.write() as conn:
        return leads.create(conn, business_id=bid, channel="web", actor="test",
                            language=fields.pop("language", "fr"), **fields)["id"]


def day(offset: int) -> str:
    return (clock.now().astimezone(TZ) + timedelta(days=offset)).date().isoformat()


def count(db, sql, *args):
    return db.query_one(f"SELECT count(*) AS n FROM {sql}", args)["n"]


def book(client, token, lead_id, offset=3, time="10:00", **extra):
    return client.post(f"/fr/app/leads/{lead_id}/appointments",
                       data={"_csrf_token": token, "day": day(offset), "time": time, "duration": "60", **extra})


def test_a_slot_in_the_past_is_refused_with_nothing_stored_and_no_sms(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x")
    r = book(client, token, lead_id, offset=-1)
    assert r.status_code == 422 and "Cette heure est déjà passée : choisissez une heure à venir." in r.text
    assert count(db, "appointments") == 0 and count(db, "outbox WHERE kind = 'client_appointment'") == 0
    assert leads.get(db, bid, lead_id)["status"] == "new"
    # With htmx: the fragment, the message by the booking form, the person's values kept.
    r = client.post(f"/en/app/leads/{lead_id}/appointments", headers=HTMX,
                    data={"_csrf_token": token, "day": day(-1), "time": "10:00", "duration": "45"})
    assert r.status_code == 422 and "<html" not in r.text
    assert r.text.index("This time has already passed") > r.text.index('id="appointments-title"')
    assert f'value="{day(-1)}"' in r.text and 'value="45"' in r.text
    assert count(db, "appointments") == 0 and count(db, "outbox") == 0


def test_a_past_slot_is_refused_before_the_overlap_warning(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x")
    r = book(client, token, lead_id, offset=-2, confirm_overlap="yes")
    assert r.status_code == 422 and count(db, "appointments") == 0


def test_moving_an_appointment_into_the_past_is_refused(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x")
    assert book(client, token, lead_id).status_code == 200
    appt = db.query_one("SELECT * FROM appointments")
    r = client.post(f"/en/app/appointments/{appt['id']}/move", headers=HTMX,
                    data={"_csrf_token": token, "day": day(-1), "time": "09:00", "duration": "30"})
    assert r.status_code == 422 and "This time has already passed" in r.text
    assert "<details open>" in r.text  # the move form it concerns stays open
    assert db.query_one("SELECT starts_at FROM appointments")["starts_at"] == appt["starts_at"]
    assert count(db, "outbox WHERE kind = 'client_appointment'") == 1  # the booking's only


def test_cancel_without_confirmation_changes_nothing_and_names_the_appointment(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", last_name="Roy", phone="+15145550123", need="x")
    book(client, token, lead_id, offset=3, time="14:30")
    appt = db.query_one("SELECT * FROM appointments")
    r = client.post(f"/fr/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token})
    assert r.status_code == 200 and "<html" in r.text  # the page, for a plain post
    assert "Annuler le rendez-vous du " in r.text and "à 14 h 30?" in r.text
    assert "Ann Roy recevra un texto l'avisant de l'annulation." in r.text
    assert 'name="confirm" value="yes"' in r.text and "Garder le rendez-vous" in r.text
    assert db.query_one("SELECT status FROM appointments")["status"] == "booked"
    assert count(db, "outbox WHERE kind = 'client_appointment'") == 1
    assert leads.get(db, bid, lead_id)["status"] == "scheduled"
    # htmx: the same step as the lead fragment, its buttons posting with htmx.
    r = client.post(f"/en/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token}, headers=HTMX)
    assert r.status_code == 200 and "<html" not in r.text and "data-focus" in r.text
    assert f'hx-post="/en/app/appointments/{appt["id"]}/cancel"' in r.text and "Yes, cancel it" in r.text
    assert db.query_one("SELECT status FROM appointments")["status"] == "booked"


def test_cancel_confirmation_says_when_no_sms_can_be_sent(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", email="ann@example.com", need="x")
    book(client, token, lead_id)
    appt = db.query_one("SELECT id FROM appointments")
    r = client.post(f"/en/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token})
    assert "No phone number: the client will not be told by SMS." in r.text


def test_cancel_with_confirmation_puts_the_status_back_with_a_timeline_event(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x")
    book(client, token, lead_id)
    appt = db.query_one("SELECT id FROM appointments")
    assert leads.get(db, bid, lead_id)["status"] == "scheduled"
    r = client.post(f"/fr/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token, "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert db.query_one("SELECT status FROM appointments")["status"] == "cancelled"
    assert leads.get(db, bid, lead_id)["status"] == "new"
    assert "est annulé" in db.query("SELECT body FROM outbox ORDER BY id")[-1]["body"]
    page = client.get(f"/fr/app/leads/{lead_id}").text
    assert "Statut : Planifiée → Nouvelle" in page and "Rendez-vous annulé" in page


def test_cancel_puts_back_contacted_and_leaves_a_lead_with_another_booking_scheduled(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x")
    client.post(f"/fr/app/leads/{lead_id}/status", data={"_csrf_token": token, "status": "contacted"})
    book(client, token, lead_id, offset=3)
    book(client, token, lead_id, offset=5)
    first, second = (r["id"] for r in db.query("SELECT id FROM appointments ORDER BY starts_at"))
    client.post(f"/fr/app/appointments/{first}/cancel", data={"_csrf_token": token, "confirm": "yes"})
    assert leads.get(db, bid, lead_id)["status"] == "scheduled"  # the other one is still booked
    client.post(f"/fr/app/appointments/{second}/cancel", data={"_csrf_token": token, "confirm": "yes"})
    assert leads.get(db, bid, lead_id)["status"] == "contacted"


def test_a_lead_closed_by_hand_stays_closed_after_a_cancellation(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x")
    book(client, token, lead_id)
    client.post(f"/fr/app/leads/{lead_id}/status", data={"_csrf_token": token, "status": "closed"})
    appt = db.query_one("SELECT id FROM appointments")
    client.post(f"/fr/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token, "confirm": "yes"})
    assert leads.get(db, bid, lead_id)["status"] == "closed"


def test_cancelling_twice_or_another_business_appointment(client, db, shop):
    bid, owner = shop
    token = signed_in(client, db, owner, bid)
    lead_id = add_lead(db, bid, first_name="Ann", phone="+15145550123", need="x")
    book(client, token, lead_id)
    appt = db.query_one("SELECT id FROM appointments")
    client.post(f"/fr/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token, "confirm": "yes"})
    again = client.post(f"/fr/app/appointments/{appt['id']}/cancel", data={"_csrf_token": token})
    assert again.status_code == 200 and "Annuler le rendez-vous du" not in again.text
    assert count(db, "outbox WHERE kind = 'client_appointment'") == 2
    assert client.post("/fr/app/appointments/999999/cancel", data={"_csrf_token": token}).status_code == 404
