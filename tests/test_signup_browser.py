"""Sign-up end to end in Chromium, at phone width, in French and English: the form, the
first-run checklist, the business's own form, a test request, and back to the dashboard
where the lead is and the checklist's last item is done. axe checks the sign-up page and
the checklist. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import pytest

from tests.support.axe import violations
from tests.support.browser import screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
WORDS = {
    "fr": {"email": "Votre courriel", "password": "Choisissez un mot de passe", "again": "Le mot de passe, encore une fois",
           "name": "Nom de l'entreprise", "create": "Créer mon entreprise", "checklist": "Premiers pas",
           "open": "Ouvrir mon formulaire", "send": "Envoyer ma demande", "done": "Fait"},
    "en": {"email": "Your email", "password": "Choose a password", "again": "The password again",
           "name": "Business name", "create": "Create my business", "checklist": "Get started",
           "open": "Open my form", "send": "Send my request", "done": "Done"},
}


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_sign_up_to_first_lead_on_a_phone(server, browser, lang):
    w = WORDS[lang]
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    found = {}
    try:
        page.goto(f"{server.url}/{lang}/login")
        page.locator(f'a[href="/{lang}/signup"]').click()
        page.wait_for_url(f"{server.url}/{lang}/signup")
        found["signup"] = violations(page)
        screenshot(page, f"signup-{lang}-phone")
        # Screen 1: the sign-up form (the required fields only; the address is made from the name).
        page.get_by_label(w["email"]).fill(f"owner-{lang}@plomberie-essai.ca")
        page.get_by_label(w["password"]).fill("correct horse battery")
        page.get_by_label(w["again"]).fill("correct horse battery")
        page.get_by_label(w["name"], exact=True).fill(f"Plomberie Essai {lang.upper()}")
        page.get_by_role("button", name=w["create"]).click()
        # Screen 2: the dashboard with the checklist.
        page.wait_for_url(f"{server.url}/{lang}/app/leads")
        assert page.get_by_role("heading", name=w["checklist"]).is_visible()
        found["checklist"] = violations(page)
        screenshot(page, f"checklist-{lang}-phone")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the dashboard scrolls sideways: {width}px"
        # Screen 3: their own form; a test request.
        page.get_by_role("link", name=w["open"]).click()
        page.wait_for_url(f"{server.url}/{lang}/f/plomberie-essai-{lang}")
        page.locator("#f-phone").fill("514 555-0199")
        page.locator("#f-need").fill("Test request / demande d'essai")
        page.locator("#f-consent").check()
        page.get_by_role("button", name=w["send"]).click()
        page.wait_for_load_state()
        screenshot(page, f"signup-test-request-sent-{lang}-phone")
        # Back to the dashboard: the lead is there, the checklist's last item is done.
        page.goto(f"{server.url}/{lang}/app/leads")
        assert page.get_by_text("Test request / demande d'essai").first.is_visible()
        assert page.locator("#first-run li.is-done").count() == 1
        assert page.locator("#first-run").get_by_text(w["done"], exact=False).first.is_visible()
        screenshot(page, f"signup-first-lead-{lang}-phone")
    finally:
        context.close()
    failing = [f"{where}: {v['id']} ({v['impact']}) {v['nodes']}" for where, vs in found.items() for v in vs]
    assert not failing, "\n".join(failing)
