"""htmx actions on a lead never fail silently (issue 12): a refused correction, an overlap,
a past slot show where the person looks and take the focus; a success leaves the focus
inside the lead, never on <body>; cancelling an appointment asks first."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from tests.support.browser import screenshot, sign_in_demo

pytestmark = [pytest.mark.slow, pytest.mark.browser]

FOCUS_IN_LEAD = "() => document.activeElement !== document.body && !!document.activeElement.closest('#lead')"


def open_lead(page, name: str) -> None:
    page.get_by_role("link", name=name).click()
    page.wait_for_url(re.compile(r".*/app/leads/\d+$"))


def book(page, day: str, time: str, button: str) -> None:
    page.locator("#b-day").fill(day)
    page.locator("#b-time").fill(time)
    page.get_by_role("button", name=button).click()


def test_lead_actions_show_their_errors_and_move_focus(server, page):
    sign_in_demo(page, server.url, server.directory / "data")
    open_lead(page, "Hélène Côté")

    # A success: the focus stays in the lead (on its header, which says the new status).
    page.get_by_label("Statut", exact=True).select_option("contacted")
    page.get_by_role("button", name="Changer").click()
    page.get_by_text("Statut : Nouvelle → Contactée").wait_for()
    page.wait_for_function(FOCUS_IN_LEAD)
    expect(page.locator("#lead-head")).to_be_focused()

    # An invalid correction (422): the message shows, the field is focused.
    page.get_by_role("link", name="Corriger les renseignements").first.click()
    page.locator("#e-phone").fill("123")
    page.get_by_role("button", name="Enregistrer les corrections").click()
    expect(page.locator("#ee-phone")).to_be_visible()
    expect(page.locator("#e-phone")).to_be_focused()
    screenshot(page, "htmx-correction-error-fr")
    page.get_by_role("link", name="Annuler", exact=True).click()
    expect(page.locator("#e-phone")).to_have_count(0)

    # A slot in the past (422): refused by the booking form, focused, nothing booked.
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    book(page, yesterday, "10:00", "Prendre rendez-vous")
    past = page.locator("#lead [role=alert]", has_text="Cette heure est déjà passée")
    expect(past).to_be_visible()
    expect(past).to_be_focused()
    expect(page.locator("ul.appts")).to_have_count(0)

    # An overlap (409): the warning shows by the form, focused; nothing is booked until confirmed.
    far = (date.today() + timedelta(days=200)).isoformat()
    book(page, far, "07:00", "Prendre rendez-vous")
    page.get_by_text("Rendez-vous pris pour").wait_for()
    page.wait_for_function(FOCUS_IN_LEAD)
    book(page, far, "07:30", "Prendre rendez-vous")
    overlap = page.locator("#lead [role=alert]", has_text="Cette heure chevauche un autre rendez-vous")
    expect(overlap).to_be_visible()
    expect(overlap).to_be_focused()
    expect(page.locator("ul.appts > li")).to_have_count(1)
    screenshot(page, "htmx-overlap-fr")

    # Cancelling asks first, naming the appointment and the SMS; then the status goes back.
    page.get_by_role("button", name="Annuler le rendez-vous").click()
    confirm = page.locator(".confirm-cancel")
    expect(confirm).to_be_focused()
    expect(confirm).to_contain_text("recevra un texto")
    screenshot(page, "htmx-cancel-confirm-fr")
    page.get_by_role("button", name="Oui, l'annuler").click()
    page.get_by_text("Statut : Planifiée → Contactée").wait_for()
    expect(page.locator(".lead-head .status")).to_have_text("Contactée")
    page.wait_for_function(FOCUS_IN_LEAD)


def test_the_same_in_english_on_a_phone(server, page):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in_demo(page, server.url, server.directory / "data", lang="en")
    open_lead(page, "Hélène Côté")
    far = (date.today() + timedelta(days=201)).isoformat()
    book(page, far, "08:00", "Book an appointment")
    page.get_by_text("Appointment booked for").wait_for()
    book(page, (date.today() - timedelta(days=3)).isoformat(), "08:00", "Book an appointment")
    past = page.locator("#lead [role=alert]", has_text="This time has already passed")
    expect(past).to_be_focused()
    expect(past).to_be_in_viewport()
    screenshot(page, "htmx-past-slot-en-phone")
    page.get_by_role("button", name="Cancel the appointment").click()
    confirm = page.locator(".confirm-cancel")
    expect(confirm).to_be_focused()
    expect(confirm).to_be_in_viewport()
    screenshot(page, "htmx-cancel-confirm-en-phone")
    page.get_by_role("link", name="Keep the appointment").click()
    expect(page.locator(".confirm-cancel")).to_have_count(0)
    expect(page.locator("ul.appts > li.booked")).to_have_count(1)
    page.wait_for_function(FOCUS_IN_LEAD)

    # The settings confirmations, on the phone too.
    page.goto(f"{server.url}/en/app/settings/fields")
    page.get_by_role("button", name="Remove").first.click()
    expect(page.get_by_role("heading", name=re.compile("Remove the question"))).to_be_visible()
    screenshot(page, "confirm-remove-question-en-phone")


def test_removing_a_question_asks_first(server, page):
    sign_in_demo(page, server.url, server.directory / "data")
    page.goto(f"{server.url}/fr/app/settings/fields")
    count = page.locator("section.field-def").count()
    page.get_by_role("button", name="Retirer").first.click()
    heading = page.get_by_role("heading", name=re.compile("Retirer la question « .+ » de votre formulaire?"))
    expect(heading).to_be_in_viewport()
    expect(page.locator("section.field-def")).to_have_count(count)  # nothing removed yet
    screenshot(page, "confirm-remove-question-fr")
    page.get_by_role("button", name="Oui, retirer la question").click()
    expect(page.locator("section.field-def")).to_have_count(count - 1)


def test_removing_a_team_member_asks_first(server, page):
    from app import businesses
    from app.db import Database

    db = Database(server.directory / "data" / "capteo.db")
    business_id = db.query_one("SELECT id FROM businesses")["id"]
    with db.write() as conn:
        businesses.add_user(conn, business_id=business_id, email="aide@demo.test", password="x" * 16,
                            name="Luc Aide", role="member")
    sign_in_demo(page, server.url, server.directory / "data", lang="en")
    page.goto(f"{server.url}/en/app/settings/team")
    page.get_by_role("button", name="Remove from the team").click()
    expect(page.get_by_role("heading", name="Remove Luc Aide from the team?")).to_be_in_viewport()
    expect(page.get_by_text("aide@demo.test loses access")).to_be_visible()
    screenshot(page, "confirm-remove-member-en")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "confirm-remove-member-en-phone")
    page.get_by_role("button", name="Yes, remove them").click()
    expect(page.get_by_role("button", name="Remove from the team")).to_have_count(0)
