"""The pages in Debian's Chromium, driven by Playwright, against a real server."""

import re

import pytest

from tests.support.browser import screenshot

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_language_switch_is_remembered_by_the_browser(server, page):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(server.url + "/fr/")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.get_by_role("heading", level=1).inner_text() == "Chaque demande de vos clients, captée. Aucune oubliée."
    screenshot(page, "home-fr")

    page.get_by_role("link", name="English").click()
    page.wait_for_url(server.url + "/en/")
    assert page.get_by_role("heading", level=1).inner_text() == "Every client request, captured. None forgotten."
    assert page.evaluate("localStorage.getItem('capteo.lang')") == "en"
    screenshot(page, "home-en")

    # A bare URL: the browser's saved choice wins over Accept-Language (French here).
    page.goto(server.url + "/")
    page.wait_for_url(server.url + "/en/")
    assert page.locator("html").get_attribute("lang") == "en"
    page.reload()
    assert page.url == server.url + "/en/"

    # No cookie carries the language; nothing was requested from another host.
    assert not any("lang" in c["name"] for c in page.context.cookies())
    assert all(u.startswith(server.url) for u in requests), [u for u in requests if not u.startswith(server.url)]
    assert errors == []  # CSP blocked nothing we ship


def test_bare_url_without_saved_choice_follows_accept_language(server, browser):
    context = browser.new_context(locale="en-CA", extra_http_headers={"Accept-Language": "en-CA,en;q=0.9"})
    page = context.new_page()
    page.goto(server.url + "/login")
    page.wait_for_url(server.url + "/en/login")
    assert page.get_by_role("heading", level=1).inner_text() == "Sign in"
    context.close()


def test_sign_in_and_see_the_demo_inbox(server, page):
    password = (server.directory / "data" / "secrets" / "demo-password").read_text().strip()
    page.goto(server.url + "/fr/app/leads")
    page.wait_for_url(re.compile(r".*/fr/login\?next=.*"))
    screenshot(page, "login-fr")
    page.get_by_label("Courriel").fill("demo@capteo.test")
    page.get_by_label("Mot de passe").fill("wrong password")
    page.get_by_role("button", name="Se connecter").click()
    assert page.get_by_role("alert").inner_text() == "Ce courriel et ce mot de passe ne correspondent à aucun compte."
    page.get_by_label("Mot de passe").fill(password)
    page.get_by_role("button", name="Se connecter").click()
    page.wait_for_url(server.url + "/fr/app/leads")
    assert page.get_by_role("cell", name="Hélène Côté").is_visible()
    assert page.get_by_role("cell", name="514 555-0101").is_visible()
    screenshot(page, "inbox-fr")

    # An htmx tab swap, URL updated so Back works.
    page.get_by_role("link", name=re.compile("Fermées")).click()
    page.wait_for_url(server.url + "/fr/app/leads?status=closed")
    assert page.get_by_role("cell", name="Priya Nair").is_visible()
    assert not page.get_by_role("cell", name="Hélène Côté").is_visible()
    page.go_back()
    page.wait_for_url(server.url + "/fr/app/leads")

    page.get_by_role("link", name="English").click()
    page.wait_for_url(server.url + "/en/app/leads")
    assert page.get_by_role("cell", name="(514) 555-0101").is_visible()
    screenshot(page, "inbox-en")

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server.url + "/en/login")
    page.goto(server.url + "/en/app/leads")
    page.wait_for_url(re.compile(r".*/en/login.*"))


def test_pages_fit_a_phone_screen(server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.goto(server.url + "/fr/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "home-fr-mobile")
    page.goto(server.url + "/fr/nulle-part")
    assert page.get_by_role("heading", level=1).inner_text() == "Page introuvable"
    screenshot(page, "404-fr-mobile")
    context.close()
