"""Inputs that once answered 500 (with a traceback in the log): each now gets a clear 4xx,
or the page it should, and nothing is stored."""

from __future__ import annotations

import logging
import re

import pytest

from app import businesses, leads
from tests.support.people import make_business, signed_in

HUGE = "99999999999999999999999"


@pytest.fixture
def owner(client, db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon")
    with db.write() as conn:
        uid = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password="x" * 12)
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="t", phone="+15145550101",
                               need="fuite")["id"]
    return {"token": signed_in(client, db, uid, bid), "lead": lead_id, "business": bid}


def _form_token(client):
    return re.search(r'name="form_token" value="([^"]+)"', client.get("/fr/f/gagnon").text).group(1)


def test_a_file_part_in_the_public_form_is_not_a_field(client, db, owner, caplog):
    before = db.query_one("SELECT count(*) AS n FROM leads")["n"]
    with caplog.at_level(logging.ERROR):
        r = client.post("/fr/f/gagnon", data={"form_token": _form_token(client), "phone": "514 555-0101"},
                        files={"need": ("need.txt", b"a file, not a need", "text/plain")})
        check = client.post("/fr/f/gagnon/check", data={"form_token": _form_token(client)},
                            files={"need": ("need.txt", b"x", "text/plain")}, headers={"hx-trigger-name": "need"})
    assert r.status_code == 422 and "Ce champ est obligatoire" in r.text
    assert check.status_code == 200
    assert db.query_one("SELECT count(*) AS n FROM leads")["n"] == before
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("path", [f"/fr/app/leads/{HUGE}", f"/fr/app/voicemail/{HUGE}",
                                  f"/fr/app/voicemail/{HUGE}/audio", f"/en/app/leads/{HUGE}?edit=1"])
def test_ids_no_row_can_have_answer_404(client, owner, path):
    assert client.get(path).status_code == 404


def test_posts_to_ids_no_row_can_have_answer_404(client, owner):
    for path in (f"/fr/app/leads/{HUGE}/status", f"/fr/app/appointments/{HUGE}/cancel",
                 f"/fr/app/settings/fields/{HUGE}/remove"):
        assert client.post(path, data={"_csrf_token": owner["token"], "status": "closed"}).status_code == 404


@pytest.mark.parametrize("week", ["9999-12-31", "0001-01-01", "2026-02-30", "x"])
def test_calendar_weeks_out_of_range_show_this_week(client, owner, week):
    assert client.get("/fr/app/calendar", params={"week": week}).status_code == 200


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-12-31"])
def test_appointment_days_out_of_range_are_refused(client, db, owner, day):
    r = client.post(f"/fr/app/leads/{owner['lead']}/appointments",
                    data={"_csrf_token": owner["token"], "day": day, "time": "23:59", "duration": "60"})
    assert r.status_code == 422 and "Entrez une date et une heure" in r.text
    assert db.query_one("SELECT count(*) AS n FROM appointments")["n"] == 0


def test_paging_far_past_the_end_shows_an_empty_page(client, owner):
    assert client.get("/fr/app/audit", params={"page": HUGE}).status_code == 200
    assert client.get("/fr/app/leads", params={"page": HUGE}).status_code == 200


@pytest.mark.parametrize("received", ["0001-01-01T00:00:00+14:00", "0001-01-01", "9999-12-31", "2026-02-30"])
def test_a_register_date_out_of_range_is_refused_and_the_register_still_opens(client, db, owner, received):
    r = client.post("/fr/app/privacy/requests", data={
        "_csrf_token": owner["token"], "kind": "access", "person": "Alice", "contact": "alice@example.com",
        "received_on": received})
    assert r.status_code == 422 and "le jour où la demande a été reçue" in r.text
    assert db.query_one("SELECT count(*) AS n FROM privacy_requests")["n"] == 0
    assert client.get("/fr/app/privacy").status_code == 200


def test_a_non_ascii_operator_key_is_just_a_wrong_key(client, owner):
    r = client.post("/fr/operator/incidents", data={"_csrf_token": owner["token"], "key": "clé-été-🔑"})
    assert r.status_code == 403
    bearer = client.get("/fr/operator/incidents", headers={"authorization": "Bearer clé".encode()})
    assert bearer.status_code in (200, 403) and "Traceback" not in bearer.text


def test_a_nul_byte_in_a_static_path_is_a_bad_request(client):
    assert client.get("/static/app%00.css").status_code in (400, 404)


def test_posted_forms_do_not_stay_in_memory_after_the_answer(client, owner):
    """Litestar memoizes parsed form bodies; a sign-in password or a request's personal
    data must not outlive its request there."""
    from litestar._parsers import parse_url_encoded_form_data

    client.post("/fr/login", data={"_csrf_token": owner["token"], "email": "owner@gagnon.test",
                                   "password": "un mot de passe secret"})
    client.post("/fr/f/gagnon", data={"form_token": _form_token(client), "phone": "514 555-0199",
                                      "need": "Fuite chez Mme Tremblay"})
    assert parse_url_encoded_form_data.cache_info().currsize == 0
