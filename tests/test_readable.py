"""Issue 12, an owner's first hour: the reference the client keeps finds their lead, a
word's beginning finds the word, the audit log and timeline speak the owner's language
(names, actions, field labels, links), and the privacy register's days are not shifted."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from babel.dates import format_date
from babel.messages.pofile import read_po

from app import audit, businesses, clock, leads
from tests.support.app import ROOT, csrf_token
from tests.support.people import make_business, signed_in


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="marie@gagnon.ca", password="correct horse battery",
                                    name="Marie Gagnon")
        outsider = businesses.add_user(conn, business_id=other, email="paul@autre.ca",
                                       password="correct horse battery", name="Paul Autre")
        lead = leads.create(conn, business_id=bid, channel="web", actor="public:form", first_name="Hélène",
                            last_name="Côté", phone="+15145550101", need="Fuite d'eau sous l'évier")
        theirs = leads.create(conn, business_id=other, channel="web", actor="public:form", first_name="Zoé",
                              phone="+14385550199", need="Fuite au sous-sol")
    return {"bid": bid, "other": other, "owner": owner, "outsider": outsider, "lead": lead, "theirs": theirs}


def _inbox(client, q: str) -> str:
    r = client.get("/fr/app/leads", params={"q": q})
    assert r.status_code == 200
    return r.text


def _dashed(reference: str) -> str:
    return f"{reference[:3]}-{reference[3:]}".lower()


def test_the_reference_finds_the_lead_typed_any_way(client, db, shop):
    signed_in(client, db, shop["owner"], shop["bid"])
    ref, link = shop["lead"]["reference"], f'/fr/app/leads/{shop["lead"]["id"]}"'
    for typed in (ref, ref.lower(), _dashed(ref), f"# {ref[:3]} {ref[3:]}"):
        assert link in _inbox(client, typed), typed
    # Another business's reference finds nothing here.
    page = _inbox(client, shop["theirs"]["reference"])
    assert "Zoé" not in page and link not in page


def test_the_beginning_of_a_word_finds_it_accents_and_phone_too(client, db, shop):
    signed_in(client, db, shop["owner"], shop["bid"])
    link = f'/fr/app/leads/{shop["lead"]["id"]}"'
    for typed in ("fuit", "FUI", "evi", "hel co", "514 555", "0101"):
        assert link in _inbox(client, typed), typed
    page = _inbox(client, "fuit")
    assert "Zoé" not in page  # the other business's «Fuite» stays theirs
    assert link not in _inbox(client, "fuitez")
    # FTS syntax typed in is just words: no 5xx.
    assert client.get("/fr/app/leads", params={"q": 'fuit* OR "x'}).status_code == 200


def test_the_audit_log_names_people_actions_fields_and_links_the_lead(client, db, shop):
    signed_in(client, db, shop["owner"], shop["bid"])
    lead_id, ref = shop["lead"]["id"], shop["lead"]["reference"]
    client.get(f"/fr/app/leads/{lead_id}")
    with db.write() as conn:
        # Someone who is not a member of this business: never named here.
        audit.record(conn, actor=f"user:{shop['outsider']}", action="lead.map.view", entity="lead",
                     entity_id=lead_id, business_id=shop["bid"], fields=["first_name", "postal_code"])
        audit.record(conn, actor="system:retention", action="voicemail.audio.delete", entity="voicemail",
                     entity_id=7, business_id=shop["bid"], fields=["audio"])
        audit.record(conn, actor="pbx", action="business.pbx_token", entity="business",
                     entity_id=shop["bid"], business_id=shop["bid"], fields=["pbx_token"])
    page = html.unescape(client.get("/fr/app/audit").text)
    assert "Marie Gagnon" in page and "Demande consultée" in page and "Demande reçue" in page
    assert "Le client, par le formulaire web" in page
    assert "Une personne qui n'est plus membre" in page and "Paul" not in page and "paul@autre.ca" not in page
    assert "Carte des demandes consultée" in page and "Prénom, Code postal" in page
    assert "Suppression automatique (durée de conservation)" in page and "Enregistrement" in page
    assert "Système téléphonique" in page and "Clé du système téléphonique" in page
    assert f'<a href="/fr/app/leads/{lead_id}">Demande {ref}</a>' in page
    visible = re.sub(r"<[^>]+>", " ", page)  # the codes may stay in attributes, for support
    for code in ("user:", "system:", "first_name", "last_name", "lead.map.view", "pbx_token"):
        assert code not in visible, code
    assert "Hélène" not in page  # names of fields, never values
    english = html.unescape(client.get("/en/app/audit").text)
    assert "Lead viewed" in english and "First name, Postal code" in english and "A former member" in english


def test_the_audit_filter_takes_the_reference_and_a_members_email(client, db, shop):
    signed_in(client, db, shop["owner"], shop["bid"])
    lead_id, ref = shop["lead"]["id"], shop["lead"]["reference"]
    client.get(f"/fr/app/leads/{lead_id}")
    for typed in (_dashed(ref), str(lead_id)):
        page = html.unescape(client.get("/fr/app/audit", params={"lead": typed}).text)
        assert "Demande consultée" in page and "Entreprise créée" not in page, typed
    # Another business's lead is not one of ours, by reference or by number.
    for typed in (shop["theirs"]["reference"], str(shop["theirs"]["id"]), "n'importe quoi"):
        r = client.get("/fr/app/audit", params={"lead": typed})
        assert r.status_code == 200 and "Aucune demande de cette entreprise" in html.unescape(r.text), typed
        assert "Demande reçue" not in html.unescape(r.text)
    page = html.unescape(client.get("/fr/app/audit", params={"actor": "MARIE@gagnon.ca"}).text)
    assert "Demande consultée" in page and "Demande reçue" not in page
    assert "Demande consultée" not in client.get("/fr/app/audit", params={"actor": "paul@autre.ca"}).text


def test_the_timeline_names_the_corrected_fields(client, db, shop):
    token = signed_in(client, db, shop["owner"], shop["bid"])
    lead_id = shop["lead"]["id"]
    client.post(f"/fr/app/leads/{lead_id}/edit", data={"_csrf_token": token, "first_name": "Hélèna",
                                                        "last_name": "Côté-Roy"})
    page = html.unescape(client.get(f"/fr/app/leads/{lead_id}").text)
    assert "Renseignements corrigés : Prénom, Nom de famille" in page
    assert "first_name" not in re.sub(r"<[^>]+>", " ", page)


def test_a_register_day_is_shown_as_that_day_not_the_evening_before(client, db, shop):
    """Bug: received_on "2026-03-02" was read as midnight UTC, shown in Toronto as March 1."""
    token = signed_in(client, db, shop["owner"], shop["bid"])
    received = clock.now().date() - timedelta(days=3)
    r = client.post("/fr/app/privacy/requests", data={"_csrf_token": token, "kind": "access", "person": "Luc",
                                                      "contact": "luc@example.com", "received_on": received.isoformat()})
    assert r.status_code < 400
    page = html.unescape(client.get("/fr/app/privacy").text)
    assert format_date(received, "medium", locale="fr_CA") in page
    assert format_date(received - timedelta(days=1), "medium", locale="fr_CA") not in page
    assert format_date(received + timedelta(days=30), "medium", locale="fr_CA") in page  # due_on
    tomorrow = clock.now().date() + timedelta(days=2)
    r = client.post("/fr/app/privacy/requests", data={"_csrf_token": csrf_token(client), "kind": "access",
                                                      "person": "Ana", "contact": "ana@example.com",
                                                      "received_on": tomorrow.isoformat()})
    assert r.status_code == 422


def _recorded_actions() -> set[str]:
    """Every action the code records: literal ones, custom-field ones, and those built with
    a reason (erasure, withdrawal, retention) expanded with every reason passed."""
    source = "\n".join(p.read_text() for d in ("app", "jobs") for p in (ROOT / d).rglob("*.py"))
    source += (ROOT / "run.py").read_text()
    actions = set(re.findall(r'action="([a-z_]+(?:\.[a-z_]+)+)"', source))
    actions |= set(re.findall(r'"(custom_field\.[a-z_]+)"', source))
    reasons = set(re.findall(r'reason(?:: str)?\s*=\s*"([a-z_]+)"', source))
    reasons |= set(re.findall(r'_erase\([^)]*"([a-z_]+)"\)', source))
    templated = re.findall(r'action=f"([a-z_.]+)\{reason\}"', source)
    assert reasons and templated  # the patterns still match the code
    actions |= {prefix + reason for prefix in templated for reason in reasons}
    assert not re.findall(r'action=f"(?![a-z_.]+\{reason\}")', source), "an action built another way: label it"
    return actions


def test_every_recorded_action_has_a_label_in_both_languages():
    actions = _recorded_actions()
    assert {"lead.view", "lead.map.view", "lead.anonymize.withdrawal", "custom_field.move"} <= actions
    missing = sorted(a for a in actions if a not in audit.ACTION_LABELS)
    assert not missing, f"actions recorded without a label in app/audit.py ACTION_LABELS: {missing}"
    with open(ROOT / "locales/fr/LC_MESSAGES/messages.po", "rb") as f:
        french = {m.id: m.string for m in read_po(f) if m.id and not m.context}
    labels = [*audit.ACTION_LABELS.values(), *audit.ACTOR_LABELS.values(), *audit.ENTITY_LABELS.values(),
              *audit.FIELD_LABELS.values(), audit.SYSTEM_ACTOR, audit.PUBLIC_ACTOR, audit.FORMER_MEMBER]
    untranslated = sorted(m for m in labels if not french.get(m))
    assert not untranslated, f"labels without French: {untranslated}"


def test_the_privacy_tools_find_a_person_by_the_reference_they_quote(client, db):
    from app import businesses, leads
    from tests.support.app import csrf_token
    from tests.support.people import make_business, signed_in

    bid, _ = make_business(db, "quote", "Quote Inc.", custom=False)
    other, _ = make_business(db, "autre2", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="o@quote.test", password="x" * 12)
        first = leads.create(conn, business_id=bid, channel="web", actor="t", phone="+15145550161", need="a")
        second = leads.create(conn, business_id=bid, channel="web", actor="t", phone="+15145550161", need="b")
        elsewhere = leads.create(conn, business_id=other, channel="web", actor="t", phone="+15145550161", need="c")
    signed_in(client, db, owner, bid)
    ref = first["reference"]
    page = client.post("/fr/app/privacy/find", data={"_csrf_token": csrf_token(client),
                                                     "reference": f"{ref[:3]}-{ref[3:].lower()}"}).text
    assert f"/fr/app/leads/{first['id']}" in page and f"/fr/app/leads/{second['id']}" in page
    assert 'value="+15145550161"' in page  # the export and erase forms act on the person found
    stranger = client.post("/fr/app/privacy/find", data={"_csrf_token": csrf_token(client),
                                                         "reference": elsewhere["reference"]}).text
    assert f"/fr/app/leads/{elsewhere['id']}" not in stranger  # another business's reference finds nothing
    assert "Rien trouvé" in html.unescape(stranger)
