"""The public request form over HTTP: consent, validation, abuse controls, acceptance."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import form, i18n, normalize
from app.businesses import hours
from tests.support.people import make_business

GOOD = {
    "first_name": "Hélène", "last_name": "Côté", "phone": "514 555-0101", "email": "Helene.Cote@Example.com",
    "street_address": "4521 rue Saint-Hubert", "postal_code": "h2j2x7", "need": "Dégât d'eau au sous-sol",
    "callback_time": "après 17 h", "consent": "yes",
}


@pytest.fixture
def shop(db):
    return make_business(db, "gagnon", "Plomberie Gagnon & Fils", embed=["plomberie-gagnon.ca"])


def token_for(client, slug="gagnon", lang="fr", embed=False):
    page = client.get(f"/{lang}/f/{slug}" + ("?embed=1" if embed else ""))
    assert page.status_code == 200
    return re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)


def submit(client, pairs, slug="gagnon", lang="fr", token=None, headers=None):
    token = token or token_for(client, slug, lang)
    if isinstance(pairs, dict):
        pairs = list(pairs.items())
    data: dict[str, list[str]] = {"form_token": [token]}
    for k, v in pairs:
        data.setdefault(k, []).append(v)
    return client.post(f"/{lang}/f/{slug}", data=data, headers=headers or {})


def good(shop, **overrides):
    _, ids = shop
    data = dict(GOOD, **{f"cf_{ids['property']}": "house", f"cf_{ids['rooms']}": "3"})
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def count(db, table="leads"):
    return db.query_one(f"SELECT count(*) AS n FROM {table}")["n"]


def test_form_page_names_the_business_and_consent_is_never_prechecked(client, shop):
    page = client.get("/fr/f/gagnon").text
    assert "Plomberie Gagnon &amp; Fils" in page
    consent = re.search(r'<input type="checkbox"[^>]*name="consent"[^>]*>', page).group(0)
    assert "checked" not in consent and 'value="yes"' in consent
    assert "J'accepte que Plomberie Gagnon & Fils utilise les renseignements de ce formulaire pour " \
           "traiter ma demande de service" in html.unescape(page)
    assert 'href="/fr/privacy?b=gagnon"' in page  # the policy then names the business
    assert "Type de propriété" in page and "Maison" in page
    en = client.get("/en/f/gagnon").text
    assert "I agree that Plomberie Gagnon &amp; Fils uses the information" in en and "Type of property" in en
    assert client.get("/fr/privacy").status_code == 200


def test_unknown_business_is_404(client, shop):
    assert client.get("/fr/f/nobody").status_code == 404


def test_accepted_submission_stores_everything_in_one_go(client, db, shop):
    r = submit(client, good(shop))
    assert r.status_code == 200
    assert "Merci, votre demande a bien été reçue." in r.text
    reference = re.search(r"<strong>([2-9A-Z]{7})</strong>", r.text).group(1)
    lead = db.query_one("SELECT * FROM leads")
    assert lead["reference"] == reference and lead["channel"] == "web" and lead["status"] == "new"
    assert lead["phone"] == "+15145550101" and lead["postal_code"] == "H2J 2X7"
    assert lead["email"] == "Helene.Cote@example.com"
    assert lead["consent_version"] == form.CONSENT_VERSION and lead["consent_at"]
    assert lead["consent_text"].startswith("J'accepte que Plomberie Gagnon & Fils utilise")
    assert lead["geocode_status"] == "pending"
    answers = json.loads(lead["custom_fields"])
    assert [a["value"] for a in answers.values()] == ["house", 3]
    entry = db.query_one("SELECT * FROM audit_log WHERE action = 'lead.create'")
    assert entry["entity_id"] == str(lead["id"]) and "phone" in entry["fields"] and "Côté" not in str(entry)
    sms = db.query_one("SELECT * FROM outbox")
    assert sms["to_phone"] == "+15145550100" and sms["status"] == "pending"
    assert sms["body"] == f"Nouvelle demande sur Capteo - http://127.0.0.1:8000/fr/app/leads/{lead['id']}"
    # The thank-you page shows what was received, phone in the national format.
    assert "514 555-0101" in r.text and "Maison" in r.text


def test_the_client_ip_is_not_stored(client, db, config, shop):
    submit(client, good(shop), headers={"x-forwarded-for": "203.0.113.77"})
    db.reader().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = config.db_path.read_bytes()
    assert b"testclient" not in raw and b"203.0.113.77" not in raw


@pytest.mark.parametrize("consent", [
    None, [], ["false"], ["0"], ["on "], ["on"], ["Yes"], ["yes "], [""], ["yes", "yes"], ["yes", "no"], ["no", "yes"],
])
def test_consent_matrix(client, db, shop, consent):
    pairs = [(k, v) for k, v in good(shop, consent=None).items()]
    pairs += [("consent", v) for v in (consent or [])]
    r = submit(client, pairs)
    assert 400 <= r.status_code < 500
    assert "Votre consentement est nécessaire pour envoyer cette demande." in r.text
    assert count(db) == 0 and count(db, "outbox") == 0 and count(db, "audit_log") == 1  # business.create only


def test_errors_are_translated_next_to_fields_and_values_kept(client, db, shop):
    r = submit(client, good(shop, phone="555", postal_code="12345", email="pas-un-courriel", need=""), lang="en")
    assert r.status_code == 422
    assert "Enter a valid phone number, e.g. 514 555-0123." in r.text
    assert "Enter a Canadian postal code, e.g. H2X 1Y4." in r.text
    assert "Enter a valid email address" in r.text and "This field is required." in r.text
    assert 'value="pas-un-courriel"' in r.text and 'value="Hélène"' in r.text
    assert re.search(r'id="f-phone"[^>]*aria-describedby="err-phone"[^>]*aria-invalid="true"', r.text)
    assert 'role="alert"' in r.text and "4 answers need your attention." in r.text
    assert count(db) == 0
    # The same token still works once corrected.
    token = re.search(r'name="form_token" value="([^"]+)"', r.text).group(1)
    assert submit(client, good(shop), lang="en", token=token).status_code == 200
    assert count(db) == 1


def test_custom_field_errors(client, db, shop):
    _, ids = shop
    r = submit(client, good(shop, **{f"cf_{ids['property']}": "castle", f"cf_{ids['rooms']}": "beaucoup"}))
    assert "Choisissez parmi les options proposées." in r.text and "Entrez un nombre." in r.text
    r = submit(client, good(shop, **{f"cf_{ids['property']}": None}))
    assert "Ce champ est obligatoire." in r.text
    assert count(db) == 0


def test_honeypot_gets_the_thank_you_page_and_nothing_is_stored(client, db, shop):
    r = submit(client, good(shop, website="http://spam.example"))
    assert r.status_code == 200 and "Merci, votre demande a bien été reçue." in r.text
    assert count(db) == 0 and count(db, "outbox") == 0


def test_same_token_twice_makes_one_lead(client, db, shop):
    token = token_for(client)
    first = submit(client, good(shop), token=token)
    second = submit(client, good(shop), token=token)
    ref = re.search(r"<strong>([2-9A-Z]{7})</strong>", first.text).group(1)
    assert ref in second.text
    assert count(db) == 1 and count(db, "outbox") == 1


@pytest.mark.parametrize("bad", ["", "garbage", "a.b", "eyJ.abc"])
def test_forged_or_missing_token_is_refused(client, db, shop, bad):
    r = client.post("/fr/f/gagnon", data={**good(shop), "form_token": bad})
    assert r.status_code == 400 and "Ce formulaire a expiré." in r.text
    assert count(db) == 0


def test_token_of_another_business_or_too_old_is_refused(client, db, config, shop):
    make_business(db, "provolt", "Pro-Volt", custom=False)
    other = token_for(client, "provolt")
    assert submit(client, good(shop), token=other).status_code == 400
    old = form.issue_token(config.secret("forms"), shop[0], now=1_000_000)
    assert submit(client, good(shop), token=old).status_code == 400
    assert count(db) == 0


def test_rate_limit_per_ip_and_business(tmp_path, db):
    from litestar.testing import TestClient

    from app import config as config_mod
    from app.web import create_app
    from tests.support.app import write_config

    cfg = config_mod.load(write_config(tmp_path, forms={"rate_limit": 2}), env={})
    shop = make_business(db, "gagnon", "Gagnon")
    make_business(db, "provolt", "Pro-Volt", custom=False)
    with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as client:
        assert submit(client, good(shop)).status_code == 200
        assert submit(client, good(shop)).status_code == 200
        blocked = submit(client, good(shop), lang="en")
        assert blocked.status_code == 429 and "Too many requests" in blocked.text
        assert submit(client, GOOD, slug="provolt").status_code == 200
    assert count(db) == 3


def test_htmx_checks_one_field_on_blur(client, shop):
    token = token_for(client)
    r = client.post("/fr/f/gagnon/check", data={"form_token": token, "postal_code": "H2X"},
                    headers={"HX-Request": "true", "HX-Trigger-Name": "postal_code"})
    assert r.text.strip() == ('<p class="field-error" id="err-postal_code" aria-live="polite">'
                              "Entrez un code postal canadien, p. ex. H2X 1Y4.</p>")
    r = client.post("/fr/f/gagnon/check", data={"form_token": token, "postal_code": "h2x 1y4"},
                    headers={"HX-Request": "true", "HX-Trigger-Name": "postal_code"})
    assert r.text.strip() == '<p class="field-error" id="err-postal_code" aria-live="polite"></p>'


def test_embed_is_framable_only_by_the_business_domains(client, shop):
    normal = client.get("/fr/f/gagnon")
    assert "frame-ancestors 'none'" in normal.headers["content-security-policy"]
    assert normal.headers["x-frame-options"] == "DENY"
    embed = client.get("/fr/f/gagnon?embed=1")
    assert "frame-ancestors https://plomberie-gagnon.ca" in embed.headers["content-security-policy"]
    assert "x-frame-options" not in embed.headers
    assert 'class="site-header"' not in embed.text and 'action="/fr/f/gagnon?embed=1"' in embed.text


def test_embedded_form_posts_without_any_cookie(client, db, shop):
    """Inside another site's iframe no cookie is sent: the signed token is enough."""
    token = token_for(client, embed=True)
    client.cookies.clear()
    r = client.post("/fr/f/gagnon?embed=1", data={**good(shop), "form_token": token})
    assert r.status_code == 200 and count(db) == 1
    assert "frame-ancestors https://plomberie-gagnon.ca" in r.headers["content-security-policy"]


@pytest.mark.parametrize("raw, expected", [
    ("  Jean\u0000-Guy\u200b ", "Jean-Guy"),
    ("Ame\u0301lie", "Amélie"),  # NFC
    ("ligne 1\r\nligne 2", "ligne 1 ligne 2"),
])
def test_clean(raw, expected):
    assert normalize.clean(raw) == expected


def test_clean_keeps_newlines_in_multiline_fields():
    assert normalize.clean("ligne 1\r\nligne 2\x07", multiline=True) == "ligne 1\nligne 2"


@pytest.mark.parametrize("raw, e164", [
    ("514 555-0101", "+15145550101"), ("(514) 555-0101", "+15145550101"), ("1-514-555-0101", "+15145550101"),
    ("+33 1 42 68 53 00", "+33142685300"), ("555-0101", None), ("abc", None), ("514 555 01010", None),
])
def test_phone_normalization(raw, e164):
    assert normalize.phone(raw) == e164


@pytest.mark.parametrize("raw, code", [
    ("h2x1y4", "H2X 1Y4"), ("H2X 1Y4", "H2X 1Y4"), ("h2x-1y4", "H2X 1Y4"), ("D2X 1Y4", None), ("12345", None),
    ("H2X 1Y", None),
])
def test_postal_code_normalization(raw, code):
    assert normalize.postal_code(raw) == code


def test_callback_message_follows_the_business_hours():
    week = json.dumps({d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")})
    tz = "America/Toronto"
    token = i18n.current_language.set("fr")
    try:
        # Thursday 2026-11-19 14:00 in Montreal = 19:00 UTC
        assert hours.callback_message(week, tz, datetime(2026, 11, 19, 19, 0, tzinfo=UTC)) == \
            "Nous sommes ouverts : nous vous rappellerons sous peu."
        assert hours.callback_message(week, tz, datetime(2026, 11, 19, 23, 30, tzinfo=UTC)) == \
            "Nous sommes fermés en ce moment; nous vous rappellerons demain matin."
        assert hours.callback_message(week, tz, datetime(2026, 11, 19, 11, 0, tzinfo=UTC)) == \
            "Nous sommes fermés en ce moment; nous vous rappellerons aujourd'hui à partir de 8 h 00."
        i18n.current_language.set("en")
        # Friday evening -> Monday
        assert hours.callback_message(week, tz, datetime(2026, 11, 20, 23, 30, tzinfo=UTC)) == \
            "We are closed right now; we will call you back from 8:00\u202fa.m. on Monday."
        assert hours.callback_message("{}", tz, datetime(2026, 11, 20, 23, 30, tzinfo=UTC)) is None
    finally:
        i18n.current_language.reset(token)


text_values = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.fixed_dictionaries({name: text_values for name in form.STANDARD_FIELDS}),
       consent=st.sampled_from([None, "yes", "no", "YES"]), cf=text_values)
def test_any_input_never_errors_and_a_rejection_stores_nothing(client, db, shop, data, consent, cf):
    before = count(db)
    pairs = list(data.items()) + [(f"cf_{shop[1]['rooms']}", cf), (f"cf_{shop[1]['property']}", "house")]
    if consent:
        pairs.append(("consent", consent))
    r = submit(client, pairs)
    assert r.status_code in (200, 422), r.text[:500]
    if r.status_code == 422:
        assert count(db) == before
    else:
        assert count(db) == before + 1
        lead = db.query_one("SELECT * FROM leads ORDER BY id DESC LIMIT 1")
        assert lead["phone"].startswith("+") and lead["need"]
