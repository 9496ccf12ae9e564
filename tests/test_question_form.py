"""The owner's own form questions over HTTP: an error keeps what was typed, and a
question's kind of answer can change without touching answers already received."""

from __future__ import annotations

import html
import json
import re

import pytest

from app import businesses, leads
from app.leads import custom_fields
from tests.support.people import make_business, signed_in

PASSWORD = "correct horse battery"


@pytest.fixture
def owner(client, db):
    bid, ids = make_business(db, "gagnon", "Plomberie Gagnon")
    with db.write() as conn:
        user = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password=PASSWORD, name="Marie")
    return bid, ids, signed_in(client, db, user, bid)


def add_form(page: str) -> str:
    return page[page.index('id="add-title"'):]


def edit_form(page: str, field_id: int) -> str:
    start = page.index(f'action="/fr/app/settings/fields/{field_id}"')
    return page[start:page.index("</form>", start)]


def selected_kind(form: str) -> str | None:
    match = re.search(r'<option value="(\w+)" selected>', form)
    return match.group(1) if match else None


def count(db) -> int:
    return db.query_one("SELECT count(*) AS n FROM custom_fields WHERE active = 1")["n"]


@pytest.mark.parametrize("data, error", [
    ({"kind": "multiple_choice", "label_fr": "Pièces visées", "label_en": "Rooms concerned",
      "options": "Cuisine & salon | Kitchen & living room", "required": "yes"}, "au moins deux options"),
    ({"kind": "single_choice", "label_fr": "", "label_en": "Which floor?",
      "options": "Sous-sol | Basement\nRez-de-chaussée | Ground floor", "required": "yes"}, "Donnez la question en français"),
    ({"kind": "", "label_fr": "Couleur « préférée »", "label_en": "Favourite colour",
      "options": "Rouge | Red\nBleu | Blue", "required": "yes"}, "Choisissez un type de réponse"),
])
def test_a_refused_question_keeps_everything_typed(client, db, owner, data, error):
    _, _, token = owner
    before = count(db)
    r = client.post("/fr/app/settings/fields", data={"_csrf_token": token, **data})
    assert r.status_code == 422 and count(db) == before
    form = add_form(r.text)
    assert error in html.unescape(form[:form.index("<form")])
    assert f'value="{html.escape(data["label_fr"])}"' in form
    assert f'value="{html.escape(data["label_en"])}"' in form
    assert selected_kind(form) == (data["kind"] or None)
    assert data["options"] in html.unescape(form)
    assert re.search(r'name="required" value="yes" checked', form)


def test_a_refused_question_keeps_an_unticked_required_box(client, db, owner):
    _, _, token = owner
    r = client.post("/en/app/settings/fields", data={"_csrf_token": token, "kind": "single_choice",
                                                     "label_fr": "Étage", "options": "Un seul"})
    assert r.status_code == 422 and "at least two options" in r.text
    form = r.text[r.text.index('id="add-title"'):]
    assert 'value="Étage"' in form and "Un seul" in form
    assert 'name="required" value="yes">' in form


def test_a_refused_edit_keeps_everything_typed(client, db, owner):
    _, ids, token = owner
    field_id = ids["rooms"]
    r = client.post(f"/fr/app/settings/fields/{field_id}", data={
        "_csrf_token": token, "kind": "single_choice", "label_fr": "Nombre d'étages", "label_en": "Floors",
        "options": "Un seul", "required": "yes"})
    assert r.status_code == 422 and "au moins deux options" in r.text
    form = edit_form(r.text, field_id)
    assert 'value="Nombre d&#39;étages"' in form or 'value="Nombre d&#x27;étages"' in form
    assert 'value="Floors"' in form and "Un seul</textarea>" in form
    assert selected_kind(form) == "single_choice"
    assert 'name="required" value="yes" checked' in form
    saved = custom_fields.get(db, owner[0], field_id)
    assert saved is not None and saved.kind == "number" and saved.label_fr == "Nombre de pièces"
    r = client.post(f"/fr/app/settings/fields/{field_id}", data={
        "_csrf_token": token, "kind": "number", "label_fr": "", "label_en": "Rooms"})
    assert r.status_code == 422 and "Donnez la question en français" in html.unescape(r.text)
    form = edit_form(r.text, field_id)
    assert 'value="Rooms"' in form and 'name="required" value="yes">' in form


def test_the_kind_of_answer_changes_and_answers_received_keep_their_form(client, db, owner):
    bid, ids, token = owner
    prop = custom_fields.get(db, bid, ids["property"])
    assert prop is not None
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="test", first_name="Hélène",
                               custom_fields={prop.name: custom_fields.snapshot(prop, "house")})["id"]
    page = client.get("/fr/app/settings/fields").text
    assert "Les réponses déjà reçues gardent la forme sous laquelle elles ont été données." in page
    assert "Answers already received keep the form they were given in." in client.get("/en/app/settings/fields").text
    # A choice becomes short text: its options go.
    r = client.post(f"/fr/app/settings/fields/{prop.id}", data={
        "_csrf_token": token, "kind": "short_text", "label_fr": "Type de propriété", "label_en": "Type of property",
        "options": "Maison | House\nCondo | Condo", "required": "yes"}, follow_redirects=False)
    assert r.status_code == 303
    changed = custom_fields.get(db, bid, prop.id)
    assert changed is not None and changed.kind == "short_text" and changed.options == []
    form = client.get("/fr/f/gagnon").text
    assert f'name="{prop.name}"' in form and "Maison" not in form
    # The lead still shows the answer as given.
    assert "Maison" in client.get(f"/fr/app/leads/{lead_id}").text
    assert "House" in client.get(f"/en/app/leads/{lead_id}").text
    # Number becomes a choice: options are needed, then taken.
    r = client.post(f"/fr/app/settings/fields/{ids['rooms']}", data={
        "_csrf_token": token, "kind": "multiple_choice", "label_fr": "Pièces", "label_en": "Rooms", "options": ""})
    assert r.status_code == 422 and custom_fields.get(db, bid, ids["rooms"]).kind == "number"
    client.post(f"/fr/app/settings/fields/{ids['rooms']}", data={
        "_csrf_token": token, "kind": "multiple_choice", "label_fr": "Pièces", "label_en": "Rooms",
        "options": "Cuisine | Kitchen\nSalon | Living room"})
    rooms = custom_fields.get(db, bid, ids["rooms"])
    assert rooms is not None and rooms.kind == "multiple_choice" and [o["en"] for o in rooms.options] == [
        "Kitchen", "Living room"]
    entry = db.query_one("SELECT fields FROM audit_log WHERE action = 'custom_field.edit'")
    assert set(json.loads(entry["fields"])) == {"label_fr", "label_en"}
