"""The dashboard on a 390 px phone: nothing scrolls sideways, the first lead shows in the
first screen, the phone number calls, and urgent leads say so."""

from __future__ import annotations

import re

import pytest

from app.db import connect
from tests.support.app import ServerProcess
from tests.support.browser import ARTIFACTS, screenshot, sign_in_demo

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def demo_server(tmp_path):
    srv = ServerProcess(tmp_path)
    srv.env["CAPTEO_MAP_TILE_URL"] = f"{srv.url}/static/tiles/{{z}}/{{x}}/{{y}}.png"
    srv.start()
    conn = connect(tmp_path / "data" / "capteo.db")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE leads SET urgent = 1 WHERE first_name = 'Hélène'")
    conn.execute("COMMIT")
    conn.close()
    yield srv
    srv.stop()


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide"


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_dashboard_fits_a_phone(demo_server, browser, lang):
    srv = demo_server
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    try:
        sign_in_demo(page, srv.url, srv.directory / "data", lang=lang)
        _no_sideways_scroll(page)
        first = page.locator("table.leads tbody tr").first
        box = first.bounding_box()
        assert box is not None and box["y"] + 40 <= PHONE["height"], box
        # The number calls; the urgent lead says it is urgent.
        call = first.locator('a[href^="tel:"]')
        assert call.get_attribute("href") == "tel:+15145550101"
        assert first.locator(".badge.urgent").inner_text().strip() == "Urgent"  # the same word in both
        assert page.locator(".badge.urgent").count() == 1
        screenshot(page, f"phone-inbox-{lang}")
        page.screenshot(path=str(ARTIFACTS / f"phone-inbox-{lang}-first-screen.png"))

        first.get_by_role("link", name=re.compile("Hélène")).click()
        page.wait_for_url(re.compile(rf".*/{lang}/app/leads/\d+$"))
        _no_sideways_scroll(page)
        screenshot(page, f"phone-lead-{lang}")

        for name in ("settings", "overview", "calendar", "map"):
            page.goto(f"{srv.url}/{lang}/app/{name}")
            _no_sideways_scroll(page)
            screenshot(page, f"phone-{name}-{lang}")
        # The chart's words are at least 11 px tall on the phone.
        page.goto(f"{srv.url}/{lang}/app/overview")
        sizes = page.evaluate(
            "[...document.querySelectorAll('figure.chart svg text')]"
            ".map(t => t.getBoundingClientRect().height)"
        )
        assert sizes and min(sizes) >= 11, sizes
    finally:
        context.close()
