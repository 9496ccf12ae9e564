"""Every page a client, an owner or the operator meets, in French and English, on a
desktop and on a phone: axe-core finds no critical or serious WCAG 2.1 A/AA violation."""

from __future__ import annotations

import pytest

from tests.support.axe import violations
from tests.support.browser import sign_in_demo
from tests.test_integrations_pages import add_demo_webhook

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PUBLIC = ["/{lang}/", "/{lang}/f/demo", "/{lang}/f/demo?embed=1", "/{lang}/privacy", "/{lang}/privacy/request?b=demo",
          "/{lang}/login", "/{lang}/status", "/{lang}/page-that-does-not-exist"]
DASHBOARD = ["/{lang}/app/leads", "/{lang}/app/leads/1", "/{lang}/app/leads/1?edit=1", "/{lang}/app/calendar",
             "/{lang}/app/map", "/{lang}/app/overview", "/{lang}/app/voicemail", "/{lang}/app/privacy",
             "/{lang}/app/audit", "/{lang}/app/settings", "/{lang}/app/settings/fields", "/{lang}/app/settings/team",
             "/{lang}/app/password", "/{lang}/app/settings/integrations", "/{lang}/app/settings/integrations/1"]
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}


@pytest.mark.parametrize("size", SIZES)
def test_no_serious_violations_anywhere(server, browser, size):
    context = browser.new_context(viewport=SIZES[size])
    page = context.new_page()
    found = {}
    add_demo_webhook(server.directory / "data")  # endpoint 1, a delivery in its log
    try:
        for lang in ("fr", "en"):
            for path in PUBLIC:
                page.goto(server.url + path.format(lang=lang))
                found[f"{size} {path.format(lang=lang)}"] = violations(page)
            sign_in_demo(page, server.url, server.directory / "data", lang=lang)
            for path in DASHBOARD:
                page.goto(server.url + path.format(lang=lang))
                found[f"{size} {path.format(lang=lang)}"] = violations(page)
            page.context.clear_cookies()
    finally:
        context.close()
    failing = [f"{where}: {v['id']} ({v['impact']}) {v['nodes']}" for where, vs in found.items() for v in vs]
    assert not failing, "\n".join(failing)
    assert len(found) == 2 * (len(PUBLIC) + len(DASHBOARD))
