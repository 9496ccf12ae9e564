"""Small fixes around the form, the policy, the settings and the dashboard: each test
names the complaint it pins."""

from __future__ import annotations

import html

import pytest

from app import config as config_mod
from tests.support.people import make_business
from tests.test_form import GOOD, count, submit


def _limited_client(tmp_path, **forms):
    from litestar.testing import TestClient

    from app.web import create_app
    from tests.support.app import write_config

    cfg = config_mod.load(write_config(tmp_path, forms=forms), env={})
    return TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1")


@pytest.mark.parametrize("lang, wait, phone, kept", [
    ("fr", "1 heure", "514 555-0199", "Dégât d'eau au sous-sol"),
    ("en", "1 hour", "(514) 555-0199", "Dégât d'eau au sous-sol"),
])
def test_429_keeps_what_was_typed_states_the_real_wait_and_the_phone(tmp_path, db, lang, wait, phone, kept):
    """'429 is a dead end: it says a few minutes when the window is an hour, drops what
    they typed and sends them to Capteo's home.'"""
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with db.write() as conn:
        conn.execute("UPDATE businesses SET phone = '+15145550199' WHERE id = ?", (bid,))
    with _limited_client(tmp_path, rate_limit=1, rate_window=3600) as client:
        assert submit(client, GOOD, lang=lang).status_code == 200
        blocked = submit(client, dict(GOOD, need="Dégât d'eau au sous-sol, vite"), lang=lang)
    assert blocked.status_code == 429
    assert blocked.headers["retry-after"] == "3600"
    text = html.unescape(blocked.text)
    assert wait in text and f'<a class="nowrap" href="tel:+15145550199">{phone}</a>' in text
    assert "Plomberie Gagnon" in text
    assert "quelques minutes" not in text and "few minutes" not in text
    # The form again, filled with what they typed, and a token to send it with.
    assert 'name="form_token"' in blocked.text
    assert f"{kept}, vite" in text and 'value="Côté"' in text
    assert count(db) == 1


def test_429_without_a_business_phone_still_states_the_wait(tmp_path, db):
    make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with _limited_client(tmp_path, rate_limit=1, rate_window=5400) as client:
        submit(client, GOOD, lang="en")
        blocked = submit(client, GOOD, lang="en")
    assert blocked.status_code == 429
    text = html.unescape(blocked.text)
    assert "90 minutes" in text and "or call" not in text


def test_policy_names_the_business_of_the_form_and_its_phone(client, db):
    """'Questions about this policy: —'; it never names the business whose form the person used."""
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with db.write() as conn:
        conn.execute("UPDATE businesses SET phone = '+15145550199' WHERE id = ?", (bid,))
    form_page = client.get("/fr/f/gagnon").text
    assert 'href="/fr/privacy?b=gagnon"' in form_page
    fr = html.unescape(client.get("/fr/privacy?b=gagnon").text)
    assert "Cette demande est traitée par Plomberie Gagnon." in fr
    assert 'href="tel:+15145550199"' in fr and "514 555-0199" in fr
    assert "/fr/privacy/request?b=gagnon" in fr
    en = html.unescape(client.get("/en/privacy?b=gagnon").text)
    assert "This request is handled by Plomberie Gagnon." in en and "(514) 555-0199" in en
    # No operator contact configured: said plainly, never a bare dash.
    assert "Questions about this policy: —" not in en
    assert "no contact has been given yet by the operator" in en
    assert "aucune personne-ressource n'a encore été indiquée" in fr


def test_policy_keeps_the_operator_contact_and_ignores_an_unknown_business(tmp_path, db):
    from litestar.testing import TestClient

    from app.web import create_app
    from tests.support.app import write_config

    cfg = config_mod.load(write_config(tmp_path, privacy={"contact": "vie-privee@capteo.example"}), env={})
    make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as client:
        page = client.get("/en/privacy?b=gagnon")
        unknown = client.get("/en/privacy?b=nobody")
    assert "Questions about this policy: vie-privee@capteo.example" in page.text
    assert "This request is handled by Plomberie Gagnon." in html.unescape(page.text)
    assert "Contact for questions" not in page.text  # no phone: no empty contact line
    assert unknown.status_code == 200 and "handled by" not in unknown.text


def _owner(db, slug="gagnon", name="Plomberie Gagnon"):
    from app import businesses

    bid, _ = make_business(db, slug, name, custom=False, embed=["www.plomberie-gagnon.ca"])
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email=f"owner@{slug}.test",
                                    password="correct horse battery", name="Marie")
    return bid, owner


def test_settings_give_a_full_width_snippet_that_resizes_with_a_copy_button(client, db):
    """'The snippet from Settings gives a 300×150 box on the business's site.'"""
    from tests.support.people import signed_in

    bid, owner = _owner(db)
    signed_in(client, db, owner, bid)
    for lang, words in (("fr", ("Copier le code", "servi en https")), ("en", ("Copy the code", "served over https"))):
        page = html.unescape(client.get(f"/{lang}/app/settings").text)
        assert f'/{lang}/f/gagnon?embed=1" title=' in page
        assert 'style="width:100%;height:900px;border:0"' in page
        assert '/static/js/embed.js" async></script>' in page
        assert 'data-copy="s-snippet"' in page
        assert all(w in page for w in words)
    assert client.get("/static/js/embed.js").status_code == 200


@pytest.mark.slow
@pytest.mark.browser
def test_embedded_form_resizes_its_iframe_on_the_business_site(server, browser):
    """The snippet on an https site: the iframe grows to the form's height, and messages
    from another origin are ignored. Playwright plays both https hosts: the business's site,
    and Capteo (passed through to the test server; Chromium would not let a public https
    page reach a loopback address)."""
    conn_db = __import__("app.db", fromlist=["connect"]).connect(server.directory / "data" / "capteo.db")
    conn_db.execute("BEGIN IMMEDIATE")
    conn_db.execute("UPDATE businesses SET embed_domains = '[\"www.plomberie-gagnon.ca\"]'")
    conn_db.execute("COMMIT")
    slug = conn_db.execute("SELECT slug FROM businesses LIMIT 1").fetchone()["slug"]
    conn_db.close()
    site = (f'<!doctype html><html><body style="margin:0"><h1>Plomberie</h1>'
            f'<iframe id="f" src="https://capteo.test/fr/f/{slug}?embed=1" title="Formulaire" '
            f'style="width:100%;height:900px;border:0"></iframe>'
            f'<script src="https://capteo.test/static/js/embed.js" async></script></body></html>')
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        context.route("https://www.plomberie-gagnon.ca/**",
                      lambda route: route.fulfill(status=200, content_type="text/html", body=site))
        context.route("https://capteo.test/**", lambda route: route.fulfill(
            response=route.fetch(url=route.request.url.replace("https://capteo.test", server.url))))
        page.goto("https://www.plomberie-gagnon.ca/contact")
        frame = page.frame_locator("#f")
        frame.locator("form").first.wait_for()
        page.wait_for_function("parseInt(document.getElementById('f').style.height) > 1000")
        inner = page.frames[1].evaluate("Math.ceil(document.body.getBoundingClientRect().height)")
        outer = page.evaluate("document.getElementById('f').getBoundingClientRect().height")
        assert abs(outer - inner) <= 2, (outer, inner)
        from tests.support.browser import screenshot
        screenshot(page, "embed-on-business-site-fr")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # A message from the site itself (not Capteo's origin) changes nothing.
        page.evaluate("window.postMessage({type: 'capteo:height', height: 200}, '*')")
        page.wait_for_timeout(200)
        assert page.evaluate("document.getElementById('f').getBoundingClientRect().height") == outer
    finally:
        context.close()


def test_language_switch_follows_a_live_search(client, db):
    """'Language switch forgets a live search': the search swaps the inbox only (the URL is
    pushed), so the inbox fragment brings the header's switch along, out of band."""
    from tests.support.people import signed_in

    bid, owner = _owner(db)
    signed_in(client, db, owner, bid)
    full = client.get("/fr/app/leads?q=helene&channel=web").text
    assert 'class="lang-switch" href="/en/app/leads?q=helene&amp;channel=web" id="lang-switch"' in full
    assert "hx-swap-oob" not in full
    fragment = client.get("/fr/app/leads?q=helene", headers={"HX-Request": "true"}).text
    assert 'class="lang-switch" href="/en/app/leads?q=helene" id="lang-switch" hx-swap-oob="true"' in fragment


def test_sign_in_comes_back_to_the_page_with_its_query(client, db):
    """'After sign-in the page you asked for loses its query.'"""
    import re

    bid, owner = _owner(db)
    asked = client.get("/en/app/leads?q=helene&status=new", follow_redirects=False)
    assert asked.status_code == 303
    assert asked.headers["location"] == "/en/login?next=/en/app/leads%3Fq%3Dhelene%26status%3Dnew"
    # Only dashboard pages of this site may follow.
    for bad in ("https://evil.example/", "/en/app/leads?u=//evil", "/en/app/x\r\nSet-Cookie: a=b"):
        r = client.get("/en/login", params={"next": bad})
        assert 'name="next" value="/en/app/leads"' in r.text, bad
    login = client.get(asked.headers["location"]).text
    assert 'name="next" value="/en/app/leads?q=helene&amp;status=new"' in login
    token = re.search(r'name="_csrf_token" value="([^"]+)"', login).group(1)
    done = client.post("/en/login", data={"_csrf_token": token, "email": "owner@gagnon.test",
                                          "password": "correct horse battery",
                                          "next": "/en/app/leads?q=helene&status=new"}, follow_redirects=False)
    assert done.headers["location"] == "/en/app/leads?q=helene&status=new"


def test_sms_list_says_which_message_and_why_one_was_not_sent(client, db):
    """'The SMS list does not say which message is which, nor why one was not sent.'"""
    from tests.support.people import signed_in

    bid, owner = _owner(db)
    assert submit(client, GOOD).status_code == 200  # queues the team's notice (no Twilio here)
    lead_id = db.query_one("SELECT id FROM leads WHERE business_id = ?", (bid,))["id"]
    with db.write() as conn:
        conn.execute("""INSERT INTO outbox (business_id, lead_id, kind, to_phone, body, status, attempts,
                        error_code, next_attempt_at, created_at)
                        VALUES (?, ?, 'client_appointment', '+15145550101', 'x', 'failed', 3, '21211',
                                '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')""", (bid, lead_id))
    signed_in(client, db, owner, bid)
    fr = html.unescape(client.get(f"/fr/app/leads/{lead_id}").text)
    assert "Avis de nouvelle demande à l'équipe" in fr
    assert "non envoyé : les textos ne sont pas configurés sur ce serveur" in fr
    assert "Confirmation de rendez-vous au client" in fr and "échec (erreur 21211)" in fr
    en = html.unescape(client.get(f"/en/app/leads/{lead_id}").text)
    assert "New-request notice to the team" in en and "not set up on this server" in en
    assert "Appointment confirmation to the client" in en and "failed (error 21211)" in en


def test_map_says_how_many_leads_wait_for_coordinates_and_translates_its_zoom(client, db):
    """'The map shows nothing when leads await geocoding; its controls are in English.'"""
    from tests.support.people import signed_in

    bid, owner = _owner(db)
    submit(client, GOOD)  # a postal code: waits for geocoding
    submit(client, dict(GOOD, first_name="Julie", phone="418 555-0105"))
    signed_in(client, db, owner, bid)
    fr = html.unescape(client.get("/fr/app/map").text)
    assert "2 demandes attendent leurs coordonnées" in fr
    assert 'data-zoom-in="Zoom avant" data-zoom-out="Zoom arrière"' in fr
    with db.write() as conn:
        conn.execute("UPDATE leads SET geocode_status = 'found' WHERE first_name = 'Julie'")
    en = html.unescape(client.get("/en/app/map").text)
    assert "1 lead is waiting for its coordinates" in en and 'data-zoom-in="Zoom in"' in en
    with db.write() as conn:
        conn.execute("UPDATE leads SET geocode_status = 'found'")
    assert "waiting for" not in client.get("/en/app/map").text


def test_calendar_feed_has_a_copy_button_a_webcal_link_and_the_address(client, db):
    """'ICS address without a copy button or webcal: link; events without the address.'"""
    import re

    from app import leads
    from tests.support.people import signed_in

    bid, owner = _owner(db)
    token = signed_in(client, db, owner, bid)
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="test", language="fr",
                               first_name="Hélène", last_name="Côté", phone="+15145550101", need="x",
                               street_address="4521 rue Saint-Hubert", postal_code="H2J 2X7")["id"]
    client.post(f"/fr/app/leads/{lead_id}/appointments",
                data={"_csrf_token": token, "day": "2037-11-26", "time": "14:00", "duration": "45"})
    page = client.get("/fr/app/calendar?week=2037-11-23").text
    url = re.search(r'id="feed-url" class="copy" readonly value="(http[^"]+\.ics)"', page).group(1)
    assert 'data-copy="feed-url"' in page and "Copier l'adresse" in html.unescape(page)
    assert f'href="{url.replace("http://", "webcal://")}"' in page
    feed = client.get(url.replace("http://127.0.0.1:8000", "")).text
    assert "LOCATION:4521 rue Saint-Hubert\\, H2J 2X7" in feed
    # The summary still carries only the first name and the reference.
    assert "Côté" not in feed and "SUMMARY:Hélène (" in feed
