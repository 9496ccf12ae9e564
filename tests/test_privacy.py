"""A person's rights, the register, the policy, incidents and the audit viewer."""

from __future__ import annotations

import csv
import html
import io
import json
import subprocess
import sys
from datetime import timedelta

import apsw
import pytest

from app import businesses, clock, leads, privacy
from app.privacy import incidents
from tests.support.app import ROOT, csrf_token
from tests.support.people import make_business, signed_in

PASSWORD = "correct horse battery"


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password=PASSWORD)
    return bid, other, owner


def person_data(db, config, bid, other):
    with db.write() as conn:
        mine = leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Hélène", last_name="Côté",
                            phone="+15145550101", email="helene@example.com", need="Fuite",
                            consent_text="J'accepte…", consent_version="web-1", consent_at="2026-11-01T10:00:00+00:00",
                            custom_fields={"1": {"kind": "short_text", "label_fr": "Étage", "label_en": "Floor",
                                                 "value": "2e"}})["id"]
        second = leads.create(conn, business_id=bid, channel="phone", actor="t", first_name="Hélène",
                              phone="+15145550101", need="Chauffe-eau")["id"]
        conn.execute("INSERT INTO lead_events (business_id, lead_id, at, kind, body) VALUES (?, ?, ?, 'note', ?)",
                     (bid, mine, clock.now_iso(), "Rappelée le 2"))
        conn.execute("INSERT INTO appointments (business_id, lead_id, starts_at, ends_at, created_at, updated_at)"
                     " VALUES (?, ?, '2026-12-01T15:00:00+00:00', '2026-12-01T16:00:00+00:00', ?, ?)",
                     (bid, mine, clock.now_iso(), clock.now_iso()))
        conn.execute("INSERT INTO voicemails (business_id, lead_id, caller_id, transcript, created_at) VALUES"
                     " (?, ?, '+15145550101', 'Bonjour ici Hélène', ?)", (bid, second, clock.now_iso()))
        stranger = leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Zoé",
                                phone="+14385550199", email="zoe@example.com", need="Autre chose")["id"]
        elsewhere = leads.create(conn, business_id=other, channel="web", actor="t", first_name="Hélène-Ailleurs",
                                 phone="+15145550101", email="helene@example.com", need="Ailleurs")["id"]
    return mine, second, stranger, elsewhere


def test_export_holds_all_of_the_person_and_nothing_else(client, db, config, shop):
    bid, other, owner = shop
    mine, second, stranger, elsewhere = person_data(db, config, bid, other)
    signed_in(client, db, owner, bid)
    found = client.post("/fr/app/privacy/find", data={"_csrf_token": csrf_token(client), "phone": "514 555-0101"}).text
    assert f"/fr/app/leads/{mine}" in found and f"/fr/app/leads/{second}" in found
    assert "Zoé" not in found and "Hélène-Ailleurs" not in found

    r = client.post("/fr/app/privacy/export", data={"_csrf_token": csrf_token(client), "phone": "(514) 555-0101", "format": "json"})
    data = json.loads(r.text)
    assert data["schema"] == "capteo.person-export/1" and data["business"]["slug"] == "gagnon"
    assert sorted(lead["need"] for lead in data["leads"]) == ["Chauffe-eau", "Fuite"]
    fuite = next(lead for lead in data["leads"] if lead["need"] == "Fuite")
    assert fuite["email"] == "helene@example.com" and fuite["last_name"] == "Côté"
    assert fuite["custom_fields"] == [{"question": "Étage", "answer": "2e"}]
    assert fuite["consent"] == {"given_at": "2026-11-01T10:00:00+00:00", "text": "J'accepte…", "version": "web-1"}
    assert fuite["notes"][0]["text"] == "Rappelée le 2" and fuite["appointments"][0]["status"] == "booked"
    chauffe = next(lead for lead in data["leads"] if lead["need"] == "Chauffe-eau")
    assert chauffe["voicemails"][0]["transcript"] == "Bonjour ici Hélène"
    assert "Zoé" not in r.text and "Ailleurs" not in r.text
    assert r.headers["content-disposition"].startswith("attachment;")

    by_email = json.loads(client.post("/fr/app/privacy/export", data={"_csrf_token": csrf_token(client), "email": "HELENE@example.com"}).text)
    assert [lead["need"] for lead in by_email["leads"]] == ["Fuite"]

    r = client.post("/fr/app/privacy/export", data={"_csrf_token": csrf_token(client), "phone": "5145550101", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))  # a BOM for Excel
    assert len(rows) == 2 and set(rows[0]) == set(privacy.CSV_COLUMNS)
    assert {row["need"] for row in rows} == {"Fuite", "Chauffe-eau"} and "Zoé" not in r.text
    assert db.query("SELECT * FROM audit_log WHERE action = 'person.export'")


def test_erase_now_anonymizes_the_person_only(client, db, config, shop):
    bid, other, owner = shop
    mine, second, stranger, elsewhere = person_data(db, config, bid, other)
    token = signed_in(client, db, owner, bid)
    r = client.post("/fr/app/privacy/erase", data={"_csrf_token": token, "phone": "514 555 0101", "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert {leads.get(db, bid, i)["status"] for i in (mine, second)} == {"anonymized"}
    assert leads.get(db, bid, stranger)["first_name"] == "Zoé"
    assert leads.get(db, other, elsewhere)["first_name"] == "Hélène-Ailleurs"
    assert db.query_one("SELECT transcript FROM voicemails WHERE lead_id = ?", (second,))["transcript"] is None
    assert db.query("SELECT * FROM audit_log WHERE action = 'lead.anonymize.erasure'")


def test_withdrawal_anonymizes_unless_kept_with_a_reason(client, db, config, shop):
    bid, other, owner = shop
    mine, *_ = person_data(db, config, bid, other)
    token = signed_in(client, db, owner, bid)
    r = client.post("/fr/app/privacy/withdraw", data={"_csrf_token": token, "email": "helene@example.com",
                                                      "keep": "yes"})
    assert r.status_code == 422 and "Indiquez pourquoi" in r.text
    client.post("/fr/app/privacy/withdraw", data={"_csrf_token": token, "email": "helene@example.com",
                                                  "keep": "yes", "reason": "Facture à conserver 6 ans (impôts)"})
    assert leads.get(db, bid, mine)["status"] == "new"
    kept = db.query_one("SELECT * FROM privacy_requests WHERE kind = 'withdrawal'")
    assert kept["status"] == "answered" and "impôts" in kept["answer"]
    client.post("/fr/app/privacy/withdraw", data={"_csrf_token": token, "email": "helene@example.com",
                                                  "confirm": "yes"})
    assert leads.get(db, bid, mine)["status"] == "anonymized"


def test_contest_flags_for_human_review(client, db, config, shop):
    bid, other, owner = shop
    mine, second, *_ = person_data(db, config, bid, other)
    token = signed_in(client, db, owner, bid)
    client.post("/fr/app/privacy/contest", data={"_csrf_token": token, "phone": "5145550101"})
    assert leads.get(db, bid, second)["review_requested_at"]


def test_register_due_dates_and_overdue(client, db, shop):
    bid, other, owner = shop
    token = signed_in(client, db, owner, bid)
    old = (clock.now() - timedelta(days=40)).date().isoformat()
    client.post("/fr/app/privacy/requests", data={"_csrf_token": token, "kind": "access", "person": "Luc",
                                                  "contact": "luc@example.com", "received_on": old})
    client.post("/fr/app/privacy/requests", data={"_csrf_token": token, "kind": "erasure", "person": "Ana",
                                                  "contact": "ana@example.com"})
    rows = privacy.requests(db, bid)
    assert [r["person"] for r in rows] == ["Luc", "Ana"] and rows[0]["overdue"] == 1 and rows[1]["overdue"] == 0
    today = clock.now().date()
    assert rows[1]["due_on"] == (today + timedelta(days=30)).isoformat()
    page = client.get("/fr/app/privacy").text
    assert page.count('class="overdue"') == 1 and "en retard" in page
    client.post(f"/fr/app/privacy/requests/{rows[0]['id']}/answer", data={"_csrf_token": token,
                                                                         "answer": "Copie envoyée par courriel"})
    assert privacy.requests(db, bid)[1]["status"] == "answered"
    bad = client.post("/fr/app/privacy/requests", data={"_csrf_token": token, "kind": "nope", "person": "X",
                                                        "contact": "x"})
    assert bad.status_code == 422 and "Choisissez le type de demande." in bad.text


def test_public_request_lands_in_that_business_only(client, db, shop):
    bid, other, owner = shop
    page = client.get("/en/privacy/request?b=gagnon")
    token = csrf_token(client)
    assert page.status_code == 200 and 'name="business" value="gagnon"' in page.text
    r = client.post("/en/privacy/request", data={"_csrf_token": token, "business": "gagnon", "kind": "erasure",
                                                 "person": "Marc", "contact": "marc@example.com",
                                                 "details": "Effacez tout"})
    assert r.status_code == 200 and "Your request was sent to Plomberie Gagnon." in r.text
    assert [(x["person"], x["source"]) for x in privacy.requests(db, bid)] == [("Marc", "public")]
    assert privacy.requests(db, other) == []
    unknown = client.post("/fr/privacy/request", data={"_csrf_token": token, "business": "nobody",
                                                       "kind": "access", "person": "M", "contact": "m"})
    assert unknown.status_code == 422 and "Nous n'avons pas trouvé cette entreprise" in html.unescape(unknown.text)
    bot = client.post("/fr/privacy/request", data={"_csrf_token": token, "business": "gagnon", "kind": "access",
                                                   "person": "Bot", "contact": "b", "website": "x"})
    assert bot.status_code == 200 and len(privacy.requests(db, bid)) == 1
    assert client.post("/fr/privacy/request", data={"business": "gagnon"}).status_code == 403  # CSRF


def test_public_request_is_rate_limited(client, db, shop):
    token = csrf_token(client)
    codes = [client.post("/fr/privacy/request", data={"_csrf_token": token, "business": "gagnon", "kind": "access",
                                                      "person": f"P{i}", "contact": "p@example.com"}).status_code
             for i in range(7)]
    assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]


def test_policy_default_override_and_no_raw_html(client, config, shop):
    fr = client.get("/fr/privacy").text
    assert "<h1>Politique de confidentialité</h1>" in fr and "serveur au Canada" in fr
    assert "<h1>Privacy policy</h1>" in client.get("/en/privacy").text
    (config.data_dir / "privacy").mkdir()
    (config.data_dir / "privacy" / "policy.fr.md").write_text("# Ma politique\n\n<script>alert(1)</script>\n")
    page = client.get("/fr/privacy").text
    assert "<h1>Ma politique</h1>" in page and "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_incidents_all_fields_required_append_only_and_exported(db, config, shop):
    base = {"information_involved": "Noms et téléphones de 3 clients", "circumstances": "Ordinateur perdu",
            "occurred": "2026-11-01", "learned_on": "2026-11-02", "persons_concerned": "3",
            "risk_assessment": "Faible: disque chiffré", "serious_injury_risk": "no", "measures": "Mot de passe changé"}
    for missing in ("information_involved", "circumstances", "occurred", "learned_on", "persons_concerned",
                    "risk_assessment", "measures"):
        with pytest.raises(incidents.IncidentError, match=missing):
            incidents.add(db, {**base, missing: " "})
    with pytest.raises(incidents.IncidentError, match="commission-notified-on"):
        incidents.add(db, {**base, "serious_injury_risk": "yes"})
    incident_id = incidents.add(db, base)
    with pytest.raises(apsw.ConstraintError, match="append-only"), db.write() as conn:
        conn.execute("UPDATE incidents SET measures = 'rien' WHERE id = ?", (incident_id,))
    with pytest.raises(apsw.ConstraintError, match="append-only"), db.write() as conn:
        conn.execute("DELETE FROM incidents")
    rows = list(csv.DictReader(io.StringIO(incidents.csv_export(db))))
    assert rows[0]["circumstances"] == "Ordinateur perdu" and rows[0]["serious_injury_risk"] == "0"


def test_incident_cli_refuses_a_missing_field(config, shop):
    def run(*args):
        return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "incident", *args],
                              capture_output=True, text=True, cwd=ROOT)
    r = run("add", "--information-involved", "x", "--occurred", "2026-11-01")
    assert r.returncode == 2 and "required" in r.stderr
    r = run("add", "--information-involved", "Courriels", "--circumstances", "Erreur d'envoi", "--occurred",
            "2026-11-01", "--learned-on", "2026-11-01", "--persons-concerned", "1", "--risk-assessment", "Faible",
            "--serious", "no", "--measures", "Excuses et rappel de la procédure")
    assert r.returncode == 0 and "incident 1 recorded" in r.stdout
    listing = run("list").stdout
    assert "#1" in listing and "/fr/operator/incidents " in listing and "?key=" not in listing
    assert "Erreur d'envoi" in run("export").stdout


def test_operator_incident_page_needs_its_key(client, config, db, shop):
    token = csrf_token(client)
    assert client.post("/fr/operator/incidents", data={"_csrf_token": token, "key": "wrong"}).status_code == 403
    r = client.post("/fr/operator/incidents", data={"_csrf_token": token, "key": config.secret("operator")})
    assert r.status_code == 200 and "Aucun incident consigné" in r.text


def test_audit_viewer_filters_and_shows_the_chain(client, db, config, shop):
    bid, other, owner = shop
    mine, *_ = person_data(db, config, bid, other)
    signed_in(client, db, owner, bid)
    client.get(f"/fr/app/leads/{mine}")
    page = client.get(f"/fr/app/audit?lead={mine}").text
    assert "Chaîne vérifiée" in page and "lead.view" in page and "lead.create" in page
    assert "business.create" not in page  # filtered to this lead
    assert "Hélène" not in page  # names of fields, never values
