"""The public form in Debian's Chromium: a person fills it in, in French and in English."""

from __future__ import annotations

import re

import pytest

from tests.support.browser import screenshot, sign_in_demo

pytestmark = [pytest.mark.slow, pytest.mark.browser]

XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">"\'><svg onload=window.__pwned=1>'


@pytest.mark.parametrize("lang, labels", [
    ("fr", dict(first="Prénom", phone="Téléphone", postal="Code postal", need="De quoi avez-vous besoin?",
                property="Condo ou appartement", send="Envoyer ma demande",
                phone_error="Entrez un numéro de téléphone valide, p. ex. 514 555-0123.",
                thanks="Merci, votre demande a bien été reçue.")),
    ("en", dict(first="First name", phone="Phone", postal="Postal code", need="What do you need?",
                property="Condo or apartment", send="Send my request",
                phone_error="Enter a valid phone number, e.g. 514 555-0123.",
                thanks="Thank you, your request was received.")),
])
def test_fill_correct_and_send_the_form(server, page, lang, labels):
    page.goto(f"{server.url}/{lang}/f/demo")
    screenshot(page, f"form-{lang}")
    page.get_by_label(labels["first"]).fill("Hélène")
    page.get_by_label(labels["phone"]).fill("555")
    page.get_by_label(labels["postal"]).fill("h2j2x7")
    # Leaving the phone field checks it (htmx) and announces the error.
    page.get_by_label(labels["need"]).click()
    error = page.locator("#err-phone")
    error.wait_for(state="visible")
    assert error.inner_text() == labels["phone_error"]
    assert error.get_attribute("aria-live") == "polite"
    screenshot(page, f"form-{lang}-error")
    page.get_by_label(labels["need"]).fill("Le chauffe-eau fuit / the water heater leaks")
    page.get_by_label(labels["property"]).check()
    page.locator("input[name=consent]").check()
    # Sent anyway with the bad phone: the server refuses and keeps everything typed.
    page.get_by_role("button", name=labels["send"]).click()
    page.wait_for_load_state()
    assert page.get_by_role("alert").is_visible()
    assert page.get_by_label(labels["first"]).input_value() == "Hélène"
    assert page.get_by_label(labels["property"]).is_checked()
    page.get_by_label(labels["phone"]).fill("514 555-0101")
    page.locator("input[name=consent]").check()
    page.get_by_role("button", name=labels["send"]).click()
    page.get_by_role("heading", name=labels["thanks"]).wait_for()
    assert re.search(r"[2-9A-Z]{7}", page.locator(".reference strong").inner_text())
    assert page.get_by_text("H2J 2X7").is_visible()
    screenshot(page, f"form-{lang}-thanks")


def test_script_in_every_field_stays_text(server, page):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{server.url}/en/f/demo")
    for label in ("First name", "Last name", "Street address", "What do you need?", "Best time to call you back"):
        page.get_by_label(label).fill(XSS)
    page.get_by_label("Phone").fill("514 555-0101")
    page.get_by_label("House").check()
    page.locator("input[name=consent]").check()
    page.get_by_role("button", name="Send my request").click()
    page.get_by_role("heading", name="Thank you, your request was received.").wait_for()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("dl.summary").inner_text().count("<script>window.__pwned=1</script>") >= 3
    assert page.locator("dl.summary script, dl.summary img, dl.summary svg").count() == 0

    # The owner opens it on the dashboard: still inert.
    sign_in_demo(page, server.url, server.directory / "data", "en")
    assert page.locator("table.leads img, table.leads script, table.leads svg").count() == 0
    page.locator("table.leads a").first.click()
    page.wait_for_url(re.compile(r".*/en/app/leads/\d+"))
    assert page.locator("dl.summary script, dl.summary img, dl.summary svg").count() == 0
    assert XSS in page.locator("dl.summary").inner_text()
    assert page.evaluate("window.__pwned") is None and dialogs == []
    screenshot(page, "lead-en-xss")
