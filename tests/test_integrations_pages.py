"""The owner's Integrations settings: add a webhook (its secret shown once), edit it,
replace its secret, send a test, send a delivery again, remove it; owners only; another
business's endpoint or delivery is a 404; a URL or a choice that cannot be saved is a 422
that says why, in French and in English, with nothing stored. And the two pages in a browser."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

import pytest

import jobs.integrations
from app import businesses, integrations
from app import config as config_mod
from app.db import Database
from app.integrations import guard
from tests.support.browser import screenshot, sign_in_demo
from tests.support.people import make_business, signed_in

PUBLIC_ADDRESS = "93.184.215.14"
HOOK = "https://hooks.crm-gagnon.ca/capteo/leads"
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


def _resolve(host: str, port: int) -> list[str]:
    """DNS for the tests' public-looking names (there is no network here)."""
    if host.endswith((".crm-gagnon.ca", ".example-crm.ca")):
        return [PUBLIC_ADDRESS]
    raise OSError(f"{host}: no such name")


@contextmanager
def _public_names():
    with patch.object(guard, "default_resolve", _resolve):
        yield


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    monkeypatch.setattr(guard, "default_resolve", _resolve)


@pytest.fixture
def woken(monkeypatch):
    """The delivery ids the pages woke the sender for."""
    seen: list[int] = []
    monkeypatch.setattr(jobs.integrations, "deliver", seen.append)
    return seen


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="marie@gagnon.ca", password="x" * 12)
        member = businesses.add_user(conn, business_id=bid, email="luc@gagnon.ca", password="x" * 12,
                                     role="member")
        outsider = businesses.add_user(conn, business_id=other, email="paul@autre.ca", password="x" * 12)
    return {"bid": bid, "other": other, "owner": owner, "member": member, "outsider": outsider}


def _text(response) -> str:
    return html.unescape(response.text)


def _add(client, token, url=HOOK, events=("lead.created",), fields=(), lang="fr"):
    data = {"_csrf_token": token, "url": url, **{f"event:{e}": "yes" for e in events},
            **{f"field:{f}": "yes" for f in fields}}
    return client.post(f"/{lang}/app/settings/integrations", data=data, follow_redirects=False)


def _theirs(db, config, shop) -> tuple[int, int]:
    """An endpoint of the other business, and a delivery of it."""
    endpoint_id, _ = integrations.create_endpoint(db, config, shop["other"], url="https://api.example-crm.ca/in",
                                                  events=["lead.created"], fields=[], actor="t")
    return endpoint_id, integrations.send_test(db, shop["other"], endpoint_id, actor="t")


def test_the_page_explains_webhooks_and_offers_the_form(client, db, shop):
    signed_in(client, db, shop["owner"], shop["bid"])
    for lang, words in (("fr", ("Intégrations", "Zapier", "Standard Webhooks", "Ajouter un webhook",
                                "Une demande est reçue", "Téléphone", "renseignement personnel")),
                        ("en", ("Integrations", "Zapier", "Standard Webhooks", "Add a webhook",
                                "A request is received", "Phone", "personal information"))):
        page = client.get(f"/{lang}/app/settings/integrations")
        assert page.status_code == 200
        text = _text(page)
        for word in words:
            assert word in text, (lang, word)
        assert 'name="field:phone" value="yes">' in page.text  # none ticked by default
        assert "checked" not in page.text.split("Add a webhook" if lang == "en" else "Ajouter un webhook")[1]
    # The other settings link to it.
    assert '/fr/app/settings/integrations"' in client.get("/fr/app/settings/team").text


def test_owner_adds_a_webhook_and_sees_its_secret_once(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    r = _add(client, token, events=("lead.created", "appointment.booked"), fields=("phone", "first_name"))
    assert r.status_code == 200
    text = _text(r)
    secret = SECRET.search(text).group()
    assert "ne sera plus affichée" in text and "webhook-signature" in text and "standardwebhooks" in text
    [saved] = integrations.endpoints(db, shop["bid"])
    assert saved["url"] == HOOK and saved["secret"] == secret
    assert saved["events"] == ["lead.created", "appointment.booked"]
    assert saved["fields"] == ["first_name", "phone"]
    # Listed, never shown again.
    listing = _text(client.get("/fr/app/settings/integrations"))
    assert HOOK in listing and "Activé" in listing and "Rien d'envoyé pour l'instant" in listing
    assert secret not in listing and not SECRET.search(listing)
    detail = client.get(f"/fr/app/settings/integrations/{saved['id']}")
    assert detail.status_code == 200 and not SECRET.search(detail.text)


def test_owner_edits_the_webhook(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    _add(client, token)
    [endpoint] = integrations.endpoints(db, shop["bid"])
    url = f"/en/app/settings/integrations/{endpoint['id']}"
    r = client.post(url, data={"_csrf_token": token, "url": "https://api.example-crm.ca/hooks",
                               "event:lead.updated": "yes", "field:email": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{url}?done=saved"
    changed = integrations.endpoint(db, shop["bid"], endpoint["id"])
    assert changed["url"] == "https://api.example-crm.ca/hooks" and changed["events"] == ["lead.updated"]
    assert changed["fields"] == ["email"] and not changed["enabled"]  # "on" left unticked
    page = _text(client.get(r.headers["location"]))
    assert "Webhook saved." in page and "Disabled" in page
    # Turned off by Capteo after a day of failures: the list and the page say so.
    with db.write() as conn:
        conn.execute("UPDATE webhook_endpoints SET disabled_reason = 'failing' WHERE id = ?", (endpoint["id"],))
    assert "turned off after 24 hours of failures" in _text(client.get("/en/app/settings/integrations")).lower()
    assert "après 24 heures d'échecs" in _text(client.get(f"/fr/app/settings/integrations/{endpoint['id']}"))
    r = client.post(url, data={"_csrf_token": token, "url": "https://api.example-crm.ca/hooks",
                               "event:lead.updated": "yes", "enabled": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and integrations.endpoint(db, shop["bid"], endpoint["id"])["enabled"]


def test_owner_replaces_the_secret(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    first = SECRET.search(_text(_add(client, token))).group()
    [endpoint] = integrations.endpoints(db, shop["bid"])
    r = client.post(f"/fr/app/settings/integrations/{endpoint['id']}/rotate", data={"_csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 200
    text = _text(r)
    second = SECRET.search(text).group()
    assert second != first and "24 heures" in text and "ne sera plus affichée" in text
    saved = integrations.endpoint(db, shop["bid"], endpoint["id"])
    assert saved["secret"] == second and saved["previous_secret"] == first
    assert not SECRET.search(client.get(f"/fr/app/settings/integrations/{endpoint['id']}").text)


def test_owner_sends_a_test_and_sends_a_delivery_again(client, db, shop, woken):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    _add(client, token)
    [endpoint] = integrations.endpoints(db, shop["bid"])
    base = f"/fr/app/settings/integrations/{endpoint['id']}"
    r = client.post(f"{base}/test", data={"_csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{base}?done=test"
    [delivery] = integrations.deliveries(db, shop["bid"], endpoint["id"])
    assert delivery["event_type"] == "webhook.test" and woken == [delivery["id"]]
    page = _text(client.get(r.headers["location"]))
    assert "Événement de test" in page and "En attente d'envoi" in page
    assert f"/deliveries/{delivery['id']}/again" not in page  # not yet sent: nothing to send again
    # Delivered: its log row says how it went, and it can be sent again.
    with db.write() as conn:
        conn.execute("UPDATE webhook_deliveries SET status = 'delivered', attempts = 1, last_status = 200, "
                     "last_latency_ms = 184, last_response = '{\"ok\":true}' WHERE id = ?", (delivery["id"],))
    page = _text(client.get(base))
    assert "Livré" in page and "184" in page and '{"ok":true}' in page
    assert f"/deliveries/{delivery['id']}/again" in page
    r = client.post(f"{base}/deliveries/{delivery['id']}/again", data={"_csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{base}?done=again"
    assert integrations.deliveries(db, shop["bid"], endpoint["id"])[0]["status"] == "pending"
    assert woken == [delivery["id"], delivery["id"]]
    # Pending again: it cannot be sent again, and the page says so instead of failing.
    r = client.post(f"{base}/deliveries/{delivery['id']}/again", data={"_csrf_token": token},
                    follow_redirects=False)
    assert r.headers["location"] == f"{base}?done=not_again" and len(woken) == 2


def test_owner_removes_the_webhook_after_confirming(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    _add(client, token)
    [endpoint] = integrations.endpoints(db, shop["bid"])
    url = f"/en/app/settings/integrations/{endpoint['id']}/delete"
    r = client.post(url, data={"_csrf_token": token}, follow_redirects=False)
    assert r.status_code == 200 and f"Remove the webhook to {HOOK}?" in _text(r)
    assert integrations.endpoints(db, shop["bid"])
    r = client.post(url, data={"_csrf_token": token, "confirm": "yes"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/en/app/settings/integrations?done=deleted"
    assert integrations.endpoints(db, shop["bid"]) == []
    assert "Webhook removed." in _text(client.get(r.headers["location"]))


def test_a_member_gets_what_other_owner_only_settings_give(client, db, shop):
    token = signed_in(client, db, shop["member"], shop["bid"])
    for r in (client.get("/fr/app/settings/integrations"), client.get("/fr/app/settings/team"),
              _add(client, token)):
        assert r.status_code == 403 and "Réservé au propriétaire" in r.text
    assert integrations.endpoints(db, shop["bid"]) == []
    # Nor is the tab shown to them where the owner's settings are linked.
    assert "/app/settings" not in client.get("/fr/app/leads").text


def test_another_business_endpoint_or_delivery_is_404(client, db, config, shop, woken):
    endpoint_id, delivery_id = _theirs(db, config, shop)
    token = signed_in(client, db, shop["owner"], shop["bid"])
    _add(client, token)
    [mine] = integrations.endpoints(db, shop["bid"])
    base = f"/fr/app/settings/integrations/{endpoint_id}"
    assert client.get(base).status_code == 404
    for path, data in ((base, {"url": HOOK, "event:lead.created": "yes", "enabled": "yes"}), (f"{base}/rotate", {}),
                       (f"{base}/test", {}), (f"{base}/delete", {"confirm": "yes"}),
                       (f"{base}/deliveries/{delivery_id}/again", {}),
                       # their delivery through my endpoint's address
                       (f"/fr/app/settings/integrations/{mine['id']}/deliveries/{delivery_id}/again", {})):
        r = client.post(path, data={"_csrf_token": token, **data}, follow_redirects=False)
        assert r.status_code == 404, path
    theirs = integrations.endpoint(db, shop["other"], endpoint_id)
    assert theirs["url"] == "https://api.example-crm.ca/in" and theirs["previous_secret"] is None
    assert len(integrations.deliveries(db, shop["other"], endpoint_id)) == 1 and woken == []


BAD = [
    ("http://hooks.crm-gagnon.ca/in", ("lead.created",), "L'adresse doit commencer par https://.",
     "The address must start with https://."),
    ("https://127.0.0.1/in", ("lead.created",),
     "Cette adresse ne peut pas être utilisée : Capteo n'appelle que des adresses https publiques.",
     "This address cannot be used: Capteo only calls public https addresses."),
    ("https://nowhere.invalid/in", ("lead.created",), "Le nom de cette adresse n'existe pas (vérifiez l'orthographe).",
     "This address's name does not exist (check for a typo)."),
    (HOOK, (), "Choisissez au moins un événement.", "Choose at least one event."),
    ("", ("lead.created",), "Entrez l'adresse https du webhook de votre outil.",
     "Enter the https address of your tool's webhook."),
    # Found in review: a longer URL was cut to 2,000 characters and saved.
    ("https://hooks.crm-gagnon.ca/" + "a" * 2100, ("lead.created",),
     "Entrez l'adresse https du webhook de votre outil.", "Enter the https address of your tool's webhook."),
]


@pytest.mark.parametrize("url, events, french, english", BAD)
def test_what_cannot_be_saved_is_a_422_that_says_why(client, db, shop, url, events, french, english):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    for lang, message in (("fr", french), ("en", english)):
        r = _add(client, token, url=url, events=events, fields=("phone",), lang=lang)
        assert r.status_code == 422
        text = _text(r)
        assert message in text, text[:3000]
        # What was typed comes back.
        assert f'value="{url}"' in text and 'name="field:phone" value="yes" checked' in text
    assert integrations.endpoints(db, shop["bid"]) == []


def test_an_edit_that_cannot_be_saved_changes_nothing(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    _add(client, token)
    [endpoint] = integrations.endpoints(db, shop["bid"])
    r = client.post(f"/en/app/settings/integrations/{endpoint['id']}",
                    data={"_csrf_token": token, "url": "https://10.0.0.5/in", "event:lead.created": "yes",
                          "enabled": "yes"}, follow_redirects=False)
    assert r.status_code == 422 and "only calls public https addresses" in _text(r)
    assert 'value="https://10.0.0.5/in"' in r.text
    assert integrations.endpoint(db, shop["bid"], endpoint["id"])["url"] == HOOK


# ---- in a browser ----------------------------------------------------------------------------------

def add_demo_webhook(data_dir: Path) -> tuple[int, int]:
    """A webhook of the demo business (in a running server's data directory) and a
    delivered test event in its log: (endpoint id, delivery id)."""
    cfg = config_mod.load(data_dir.parent / "capteo.toml", env={})
    db = Database(cfg.db_path)
    try:
        bid = db.one("SELECT id FROM businesses WHERE slug = 'demo'")["id"]
        with _public_names():
            endpoint_id, _ = integrations.create_endpoint(
                db, cfg, bid, url=HOOK, events=["lead.created", "lead.updated", "appointment.booked"],
                fields=["first_name", "phone"], actor="test")
        delivery_id = integrations.send_test(db, bid, endpoint_id, actor="test")
        with db.write() as conn:
            conn.execute("UPDATE webhook_deliveries SET status = 'delivered', attempts = 1, last_status = 200, "
                         "last_latency_ms = 184, last_response = '{\"ok\":true,\"id\":\"rec_8f2K\"}', "
                         "delivered_at = created_at WHERE id = ?", (delivery_id,))
    finally:
        db.close()
    return endpoint_id, delivery_id


@pytest.mark.slow
@pytest.mark.browser
def test_screenshots_of_the_two_pages(server, browser):
    endpoint_id, _ = add_demo_webhook(server.directory / "data")
    for size, viewport in (("desktop", {"width": 1280, "height": 860}), ("phone", {"width": 390, "height": 844})):
        context = browser.new_context(viewport=viewport)
        page = context.new_page()
        try:
            for lang in ("fr", "en"):
                sign_in_demo(page, server.url, server.directory / "data", lang=lang)
                page.goto(f"{server.url}/{lang}/app/settings/integrations")
                assert HOOK in page.content()
                screenshot(page, f"integrations-{lang}-{size}")
                page.goto(f"{server.url}/{lang}/app/settings/integrations/{endpoint_id}")
                assert page.locator("table.log tbody tr").count() >= 1
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"{page.url} is {width} px wide"
                screenshot(page, f"integration-{lang}-{size}")
                page.get_by_role("button", name={"fr": "Remplacer la clé secrète",
                                                 "en": "Replace the secret key"}[lang]).click()
                page.wait_for_selector(".webhook-secret code.secret")
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= viewport["width"], f"the new secret: {width} px wide"
                screenshot(page, f"integration-secret-{lang}-{size}")
                page.context.clear_cookies()
        finally:
            context.close()
