"""Every page a client, an owner or the operator meets, in French and English, on a
desktop and on a phone: axe-core finds no critical or serious WCAG 2.1 A/AA violation.
The new pages (billing, export, close, policy changes) are also kept as screenshots."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from app import clock
from app import config as config_mod
from app.db import Database
from app.privacy import versions
from tests.support.app import ServerProcess, write_config
from tests.support.axe import violations
from tests.support.browser import screenshot, sign_in_demo
from tests.test_integrations_pages import add_demo_webhook

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PUBLIC = ["/{lang}/", "/{lang}/f/demo", "/{lang}/f/demo?embed=1", "/{lang}/privacy", "/{lang}/privacy/request?b=demo",
          "/{lang}/login", "/{lang}/status", "/{lang}/page-that-does-not-exist",
          "/{lang}/privacy/changes/{version}"]
DASHBOARD = ["/{lang}/app/leads", "/{lang}/app/leads/1", "/{lang}/app/leads/1?edit=1", "/{lang}/app/calendar",
             "/{lang}/app/map", "/{lang}/app/overview", "/{lang}/app/voicemail", "/{lang}/app/privacy",
             "/{lang}/app/audit", "/{lang}/app/settings", "/{lang}/app/settings/fields", "/{lang}/app/settings/team",
             "/{lang}/app/password", "/{lang}/app/settings/integrations", "/{lang}/app/settings/integrations/1",
             "/{lang}/app/billing", "/{lang}/app/settings/export", "/{lang}/app/settings/close"]
# Kept as screenshots in tests/artifacts/ (a11y-<size>-<lang>-<name>.png).
SHOTS = {"/{lang}/app/billing": "billing", "/{lang}/app/settings/export": "export",
         "/{lang}/app/settings/close": "close", "/{lang}/privacy/changes/{version}": "changes",
         "/{lang}/app/leads": "inbox-policy-notice"}
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}

NEW_FR = ("# Politique de confidentialité\n\nNous gardons vos demandes.\n\n"
          "Nouveau : les messages vocaux sont gardés 90 jours.\n")
NEW_EN = "# Privacy policy\n\nWe keep your requests.\n\nNew: voice messages are kept 90 days.\n"


def publish_policy(data_dir: Path) -> str:
    """A policy version published in a running server's data directory, 40 days ahead: the
    owners' notice shows on every dashboard page, and its changes page exists."""
    cfg = config_mod.load(data_dir.parent / "capteo.toml", env={})
    fr, en = data_dir.parent / "policy.fr.md", data_dir.parent / "policy.en.md"
    fr.write_text(NEW_FR, encoding="utf-8")
    en.write_text(NEW_EN, encoding="utf-8")
    return versions.publish(Database(cfg.db_path), cfg, fr, en, clock.now().date() + timedelta(days=40),
                            summary_fr="Les messages vocaux sont gardés 90 jours.",
                            summary_en="Voice messages are kept 90 days.")


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", SIZES)
def test_no_serious_violations_anywhere(server, browser, size):
    context = browser.new_context(viewport=SIZES[size])
    page = context.new_page()
    found, overflowing = {}, []
    add_demo_webhook(server.directory / "data")  # endpoint 1, a delivery in its log
    version = publish_policy(server.directory / "data")
    try:
        for lang in ("fr", "en"):
            for group in (PUBLIC, DASHBOARD):
                if group is DASHBOARD:
                    sign_in_demo(page, server.url, server.directory / "data", lang=lang)
                for path in group:
                    url = path.format(lang=lang, version=version)
                    page.goto(server.url + url)
                    found[f"{size} {url}"] = violations(page)
                    if path in SHOTS:
                        screenshot(page, f"a11y-{size}-{lang}-{SHOTS[path]}")
                        if not no_horizontal_overflow(page):
                            overflowing.append(url)
                    if path == "/{lang}/app/leads":
                        assert page.locator("#policy-notice").is_visible()
            page.context.clear_cookies()
    finally:
        context.close()
    failing = [f"{where}: {v['id']} ({v['impact']}) {v['nodes']}" for where, vs in found.items() for v in vs]
    assert not failing, "\n".join(failing)
    assert not overflowing, f"wider than the {size} screen: {overflowing}"
    assert len(found) == 2 * (len(PUBLIC) + len(DASHBOARD))


# ---- billing turned on: a subscription canceled long ago -------------------------------------------

@pytest.fixture
def billing_server(tmp_path):
    """The demo server with billing configured (nothing reaches Paddle: its API is a closed
    local port and the browser aborts every request to cdn.paddle.com), the demo business's
    subscription canceled 60 days ago: the dashboard is read-only and the form closed."""
    srv = ServerProcess(tmp_path, extra_env={"CAPTEO_SECRET_PADDLE_API_KEY": "pdl_test_apikey",
                                             "CAPTEO_SECRET_PADDLE_WEBHOOK_SECRET": "pdl_ntfset_test"})
    write_config(tmp_path, demo=True, server={"port": srv.port}, billing={
        "price_id": "pri_01test", "client_token": "test_clienttoken", "paddle_api_base": "http://127.0.0.1:9"})
    srv.start()
    cfg = config_mod.load(srv.config_path, env={})
    since = (clock.now() - timedelta(days=60)).isoformat(timespec="seconds")
    with Database(cfg.db_path).write() as conn:
        conn.execute("UPDATE businesses SET billing_state = 'canceled', billing_restricted_since = ?, "
                     "paddle_customer_id = 'ctm_demo' WHERE slug = 'demo'", (since,))
    yield srv
    srv.stop()


@pytest.mark.parametrize("size", SIZES)
def test_billing_pages_when_billing_is_on(billing_server, browser, size):
    server = billing_server
    context = browser.new_context(viewport=SIZES[size])
    paddle_requests = []

    def abort(route):
        paddle_requests.append(route.request.url)
        route.abort()

    context.route("https://cdn.paddle.com/**", abort)
    page = context.new_page()
    found, overflowing = {}, []
    try:
        for lang in ("fr", "en"):
            for path, name in (("/{lang}/f/demo", "form-closed"), ("/{lang}/f/demo?embed=1", "form-closed-embed")):
                url = path.format(lang=lang)
                page.goto(server.url + url)
                found[f"{size} {url}"] = violations(page)
                screenshot(page, f"a11y-{size}-{lang}-billing-on-{name}")
            sign_in_demo(page, server.url, server.directory / "data", lang=lang)
            assert page.locator(".billing-banner").is_visible()
            found[f"{size} /{lang}/app/leads (billing banner)"] = violations(page)
            screenshot(page, f"a11y-{size}-{lang}-billing-on-inbox")
            page.goto(f"{server.url}/{lang}/app/billing")
            found[f"{size} /{lang}/app/billing (billing on)"] = violations(page)
            screenshot(page, f"a11y-{size}-{lang}-billing-on-billing")
            if not no_horizontal_overflow(page):
                overflowing.append(page.url)
            # A change refused while read-only: the 403 page that leads to billing.
            page.goto(f"{server.url}/{lang}/app/settings")
            with page.expect_navigation():
                page.evaluate("""() => { const f = [...document.querySelectorAll('form[method=post]')]
                    .find(f => f.action.endsWith('/app/settings')); f.noValidate = true; f.submit(); }""")
            assert page.locator("#error-title").is_visible()
            found[f"{size} /{lang}/app/settings POST (read-only)"] = violations(page)
            screenshot(page, f"a11y-{size}-{lang}-billing-on-read-only")
            if not no_horizontal_overflow(page):
                overflowing.append(f"{lang} read-only")
            page.context.clear_cookies()
    finally:
        context.close()
    assert paddle_requests, "the billing page did not ask for Paddle.js"
    assert all(u.startswith("https://cdn.paddle.com/") for u in paddle_requests)
    failing = [f"{where}: {v['id']} ({v['impact']}) {v['nodes']}" for where, vs in found.items() for v in vs]
    assert not failing, "\n".join(failing)
    assert not overflowing, f"wider than the {size} screen: {overflowing}"
