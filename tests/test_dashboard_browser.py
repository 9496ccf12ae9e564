"""A day on the dashboard in Debian's Chromium: sign in, search, change a status, book,
see the calendar, the feed and the map, add a question to the public form."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from playwright.sync_api import expect

from app.db import connect
from tests.support.app import ServerProcess
from tests.support.browser import screenshot, sign_in_demo

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def demo_server(tmp_path):
    srv = ServerProcess(tmp_path)
    # Tiles from this same server (none exist: grey squares), so the test reaches no other host.
    srv.env["CAPTEO_MAP_TILE_URL"] = f"{srv.url}/static/tiles/{{z}}/{{x}}/{{y}}.png"
    srv.start()
    conn = connect(tmp_path / "data" / "capteo.db")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE leads SET latitude = 45.5288, longitude = -73.583 WHERE first_name = 'Hélène'")
    conn.execute("UPDATE leads SET latitude = 46.81, longitude = -71.215 WHERE first_name = 'Julie'")
    conn.execute("COMMIT")
    conn.close()
    yield srv
    srv.stop()


def test_a_day_on_the_dashboard(demo_server, page):
    srv = demo_server
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    sign_in_demo(page, srv.url, srv.directory / "data")
    screenshot(page, "dash-inbox-fr")

    # Search: an htmx swap, and the URL follows so Back and sharing work.
    page.get_by_label("Rechercher dans les demandes").fill("helene")
    page.wait_for_url(re.compile(r".*/fr/app/leads\?q=helene"))
    page.get_by_role("link", name="Hélène Côté").wait_for()
    assert page.locator("table.leads tbody tr").count() == 1
    screenshot(page, "dash-search-fr")
    page.get_by_role("link", name="Hélène Côté").click()
    page.wait_for_url(re.compile(r".*/fr/app/leads/\d+$"))
    lead_url = page.url

    page.get_by_label("Statut", exact=True).select_option("contacted")
    page.get_by_role("button", name="Changer").click()
    page.get_by_text("Statut : Nouvelle → Contactée").wait_for()
    assert page.url == lead_url

    day = (date.today() + timedelta(days=1)).isoformat()
    page.locator("#b-day").fill(day)
    page.locator("#b-time").fill("10:00")
    page.get_by_role("button", name="Prendre rendez-vous").click()
    page.get_by_text("Rendez-vous pris pour").wait_for()
    assert page.locator(".status").first.inner_text() == "Planifiée"
    screenshot(page, "dash-lead-fr")

    page.goto(f"{srv.url}/fr/app/calendar?week={day}")
    page.get_by_role("link", name=re.compile("10:00 Hélène Côté")).wait_for()
    screenshot(page, "dash-calendar-fr")
    feed_url = page.locator("input.copy").input_value()
    feed = page.request.get(feed_url.replace("http://127.0.0.1:8000", srv.url))
    assert feed.ok and "BEGIN:VEVENT" in feed.text() and "Hélène" in feed.text()

    page.goto(srv.url + "/en/app/map")
    expect(page.locator("path.leaflet-interactive")).to_have_count(2)
    page.locator(".leaflet-interactive").first.click()
    page.locator(".leaflet-popup-content a").wait_for()
    screenshot(page, "dash-map-en")

    page.goto(srv.url + "/en/app/overview")
    assert page.locator("figure.chart svg[role=img]").count() == 1
    screenshot(page, "dash-overview-en")

    page.goto(srv.url + "/fr/app/settings/fields")
    add = page.get_by_role("region", name="Ajouter une question")
    add.get_by_label("Question en français").fill("Année de construction")
    add.get_by_label("Question en anglais").fill("Year built")
    add.get_by_label("Type de réponse").select_option("number")
    page.get_by_role("button", name="Ajouter la question").click()
    page.get_by_role("heading", name=re.compile("Année de construction")).wait_for()
    screenshot(page, "dash-fields-fr")
    page.goto(srv.url + "/en/f/demo")
    assert page.get_by_label("Year built").is_visible()

    page.goto(srv.url + "/fr/app/settings")
    screenshot(page, "dash-settings-fr")
    assert all(u.startswith(srv.url) for u in requests), [u for u in requests if not u.startswith(srv.url)]
