"""The privacy pages in Debian's Chromium."""

from __future__ import annotations

import pytest

from tests.support.browser import screenshot, sign_in_demo

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_a_person_asks_and_the_owner_answers(server, page):
    page.goto(server.url + "/en/f/demo")
    page.get_by_role("link", name="Your rights: see, correct or erase your information").click()
    page.wait_for_url(server.url + "/en/privacy/request?b=demo")
    page.get_by_label("What do you ask?").select_option("portability")
    page.get_by_label("Your name").fill("Hélène Côté")
    page.get_by_label("Phone or email where we can answer you").fill("514 555-0101")
    screenshot(page, "privacy-request-en")
    page.get_by_role("button", name="Send my request").click()
    page.get_by_role("heading", name="Your request was sent to Plomberie Démo.").wait_for()

    sign_in_demo(page, server.url, server.directory / "data")
    page.get_by_role("link", name="Confidentialité", exact=True).click()
    assert page.get_by_role("cell", name="Une copie de mes renseignements (portabilité)").is_visible()
    page.locator("#pf-phone").fill("514 555-0101")
    page.get_by_role("button", name="Rechercher").click()
    page.get_by_role("button", name="Exporter (JSON)").wait_for()
    assert "514" not in page.url and "555" not in page.url  # posted: no phone number in an address
    screenshot(page, "privacy-tools-fr")
    with page.expect_download() as download:
        page.get_by_role("button", name="Exporter (JSON)").click()
    assert '"capteo.person-export/1"' in download.value.path().read_text()
    page.get_by_role("button", name="Effacer les renseignements de cette personne").click()
    page.get_by_role("heading", name="Effacer les renseignements de cette personne?").wait_for()
    screenshot(page, "privacy-erase-confirm-fr")
    page.goto(server.url + "/fr/app/audit")
    assert page.get_by_text("Chaîne vérifiée").is_visible()
    screenshot(page, "audit-fr")
    page.goto(server.url + "/fr/privacy")
    screenshot(page, "policy-fr")
