"""A client follows their request in Debian's Chromium: from the thank-you page to the
status page, in French on a desktop and in English on a phone."""

from __future__ import annotations

import pytest

from tests.support.axe import violations
from tests.support.browser import screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _send_request(page, url: str, lang: str) -> str:
    labels = {"fr": ("Téléphone", "De quoi avez-vous besoin?", "Condo ou appartement", "Envoyer ma demande"),
              "en": ("Phone", "What do you need?", "Condo or apartment", "Send my request")}[lang]
    page.goto(f"{url}/{lang}/f/demo")
    page.get_by_label(labels[0]).fill("514 555-0142")
    page.get_by_label(labels[1]).fill("Le robinet de la cuisine fuit")
    page.get_by_label(labels[2]).check()
    page.locator("input[name=consent]").check()
    page.get_by_role("button", name=labels[3]).click()
    page.locator(".reference strong").wait_for()
    return page.locator(".reference strong").inner_text()


@pytest.mark.parametrize("lang, size", [("fr", (1280, 860)), ("en", (390, 844))])
def test_from_the_thank_you_page_to_where_it_stands(server, browser, lang, size):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    try:
        reference = _send_request(page, server.url, lang)
        words = {"fr": ("Où en est ma demande?", "Référence", "Téléphone", "Voir ma demande",
                        "Reçue : l'entreprise communiquera avec vous.", "Annuler ma demande", "Annuler cette demande?"),
                 "en": ("Where is my request?", "Reference", "Phone", "See my request",
                        "Received: the business will contact you.", "Cancel my request", "Cancel this request?")}[lang]
        page.get_by_role("link", name=words[0][:-1], exact=False).click()
        page.get_by_role("heading", name=words[0]).wait_for()
        page.get_by_label(words[1]).fill(reference.lower())
        page.get_by_label(words[2]).fill("(514) 555-0142")
        screenshot(page, f"status-{lang}-ask")
        page.get_by_role("button", name=words[3]).click()
        page.get_by_text(words[4]).wait_for()
        assert "robinet" not in page.content()  # nothing but where it stands
        assert not violations(page)
        screenshot(page, f"status-{lang}-found")
        page.get_by_role("button", name=words[5]).click()
        page.get_by_role("heading", name=words[6]).wait_for()
        screenshot(page, f"status-{lang}-cancel")
        assert page.evaluate("document.documentElement.scrollWidth") <= size[0]
    finally:
        context.close()
