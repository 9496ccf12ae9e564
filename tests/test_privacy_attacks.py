"""Issue 10, holes 3, 9 and 12: personal data a person's erasure or the retention sweep
left behind, audio files deleted inside a transaction (or never), members erasing and
exporting anyone's file without a second look, spreadsheet formulas in CSV exports,
and the operator's key in an address. Each test performs what once worked."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from app import businesses, clock, leads, voicemail
from app.privacy import incidents, retention
from tests.support.app import ROOT, csrf_token
from tests.support.audio import tone_wav
from tests.support.people import make_business, signed_in

PASSWORD = "correct horse battery"
CALLER = "+15145550177"


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password=PASSWORD)
        member = businesses.add_user(conn, business_id=bid, email="member@gagnon.ca", password=PASSWORD,
                                     role="member")
    return bid, other, owner, member


def received(db, config, bid, caller=CALLER, transcript="Bonjour ici Zéphyrinvocal, rappelez-moi"):
    """A voicemail from before leads were made at arrival, taken as far as a transcript and
    an extraction but never made into a lead (the lead step failed): such rows are still in
    data directories that upgraded."""
    name = f"legacy-{secrets.token_hex(6)}.wav"
    (config.audio_dir / name).write_bytes(tone_wav(1.0))
    now = clock.now_iso()
    with db.write() as conn:
        conn.execute("INSERT INTO voicemails (business_id, caller_id, audio_path, duration_s, created_at, updated_at,"
                     " source, transcript, extraction, state) VALUES (?, ?, ?, 1.0, ?, ?, 'upload', ?, ?, 'failed')",
                     (bid, caller, name, now, now, transcript,
                      json.dumps({"first_name": "Zéphyrinvocal", "phone": caller})))
        return conn.last_insert_rowid()


def pending_without_lead(db, config, bid, caller=CALLER):
    """The same, still waiting for its transcript."""
    vm_id = received(db, config, bid, caller=caller, transcript=None)
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET extraction = NULL, state = 'received' WHERE id = ?", (vm_id,))
    return vm_id


def audio_of(db, config, vm_id):
    return config.audio_dir / db.one("SELECT audio_path FROM voicemails WHERE id = ?", (vm_id,))["audio_path"]


def raw_files(config) -> bytes:
    return b"".join((config.data_dir / n).read_bytes() for n in ("capteo.db", "capteo.db-wal")
                    if (config.data_dir / n).exists())


# ---- hole 3: erasure by phone, and the retention sweep -----------------------------------------------

def test_erasure_by_phone_erases_voicemails_that_never_became_a_lead(client, db, config, shop):
    bid, other, owner, _ = shop
    done = received(db, config, bid)
    pending = pending_without_lead(db, config, bid)  # not transcribed yet
    elsewhere = received(db, config, other)
    files = {vm: audio_of(db, config, vm) for vm in (done, pending, elsewhere)}
    token = signed_in(client, db, owner, bid)

    page = client.post("/fr/app/privacy/find", data={"_csrf_token": csrf_token(client), "phone": "514 555-0177"}).text
    assert f"/fr/app/voicemail/{done}" in page and f"/fr/app/voicemail/{elsewhere}" not in page
    r = client.post("/fr/app/privacy/erase", data={"_csrf_token": token, "phone": "514 555-0177", "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303

    for vm_id in (done, pending):
        row = voicemail.get(db, bid, vm_id)
        assert (row["caller_id"], row["transcript"], row["extraction"], row["audio_path"]) == (None,) * 4
        assert row["audio_deleted_at"] and not files[vm_id].exists()
        assert row["state"] == "failed"  # the pipeline never makes a lead out of what was erased
    assert voicemail.get(db, other, elsewhere)["caller_id"] == CALLER and files[elsewhere].exists()
    assert db.query("SELECT * FROM audit_log WHERE action = 'voicemail.erase.erasure'")
    with db.write() as conn:  # the other business's copy goes too, to check the file for this one's bytes
        retention.erase_voicemail(conn, config, voicemail.get(db, other, elsewhere), actor="t", reason="t",
                                  now=clock.now_iso())
    retention.checkpoint(db, config)
    data = raw_files(config)
    assert b"5550177" not in data and "Zéphyrinvocal".encode() not in data


def test_retention_sweep_erases_the_caller_id_with_the_audio_of_a_voicemail_without_lead(db, config, shop):
    bid, *_ = shop
    lone = received(db, config, bid)
    leftover = received(db, config, bid, caller="+15145550178")  # its audio deleted by an older sweep
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="phone", actor="t", phone=CALLER, need="x")["id"]
    with_lead = received(db, config, bid)
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET lead_id = ?, state = 'lead_created' WHERE id = ?", (lead_id, with_lead))
        conn.execute("UPDATE voicemails SET audio_path = NULL, audio_deleted_at = created_at WHERE id = ?",
                     (leftover,))
    lone_file = audio_of(db, config, lone)

    report = retention.sweep(db, config, as_of=clock.now() + timedelta(days=31))

    for vm_id in (lone, leftover):
        row = voicemail.get(db, bid, vm_id)
        assert (row["caller_id"], row["transcript"], row["extraction"], row["audio_path"]) == (None,) * 4
    assert sorted(report.voicemails_erased) == [lone, leftover]
    assert not lone_file.exists()
    kept = voicemail.get(db, bid, with_lead)  # a lead's transcript stays with the lead (Law 25 table)
    assert kept["audio_path"] is None and kept["transcript"] and kept["caller_id"] == CALLER
    assert not retention.sweep(db, config, as_of=clock.now() + timedelta(days=31)).changed


def test_audio_no_voicemail_names_is_swept_once_an_hour_old(db, config, shop):
    bid, *_ = shop
    named = audio_of(db, config, received(db, config, bid))
    crashed = config.audio_dir / "vm-0123456789abcdef01234567.wav"  # written, then the process died
    partial = config.audio_dir / ".vm-89abcdef0123456789abcdef.wav.part"
    being_written = config.audio_dir / "vm-fedcba9876543210fedcba98.wav"  # its row is about to be committed
    for path in (crashed, partial, being_written):
        path.write_bytes(b"RIFF-orphan")
    two_hours_ago = time.time() - 7200
    for path in (named, crashed, partial):
        os.utime(path, (two_hours_ago, two_hours_ago))

    report = retention.sweep(db, config)

    assert not crashed.exists() and not partial.exists()
    assert sorted(report.orphan_files_deleted) == sorted([crashed.name, partial.name])
    assert named.exists() and being_written.exists()


# ---- hole 12: files deleted inside a transaction -------------------------------------------------

def test_a_rolled_back_anonymization_leaves_the_audio_its_row_names(db, config, shop):
    bid, *_ = shop
    vm_id = received(db, config, bid)
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="phone", actor="t", phone=CALLER, need="x")["id"]
        conn.execute("UPDATE voicemails SET lead_id = ?, state = 'lead_created' WHERE id = ?", (lead_id, vm_id))
    lead = leads.get(db, bid, lead_id)
    path = audio_of(db, config, vm_id)

    with pytest.raises(RuntimeError), db.write() as conn:
        retention.anonymize(conn, config, lead, actor="t", reason="erasure")
        raise RuntimeError("the commit never happens")

    assert path.exists() and audio_of(db, config, vm_id) == path  # the row and its file still agree
    retention.erase_person(db, config, bid, [lead["id"]], actor="t")
    assert not path.exists() and voicemail.get(db, bid, vm_id)["audio_path"] is None


# ---- hole 12: who may export and erase, and a confirmation first ----------------------------------

def test_a_member_can_neither_export_nor_erase(client, db, config, shop):
    bid, _other, _owner, member = shop
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Hélène", phone=CALLER,
                               need="Fuite")["id"]
    token = signed_in(client, db, member, bid)
    for fmt in ("json", "csv"):
        r = client.post("/fr/app/privacy/export", data={"_csrf_token": csrf_token(client), "phone": CALLER, "format": fmt})
        assert r.status_code == 403 and "Hélène" not in r.text
    for route in ("erase", "withdraw"):
        r = client.post(f"/fr/app/privacy/{route}", data={"_csrf_token": token, "phone": CALLER, "confirm": "yes"},
                        follow_redirects=False)
        assert r.status_code == 403 and "Réservé au propriétaire" in r.text
    assert leads.get(db, bid, lead_id)["first_name"] == "Hélène"
    assert not db.query("SELECT * FROM audit_log WHERE action = 'person.export'")
    page = client.post("/fr/app/privacy/find", data={"_csrf_token": csrf_token(client), "phone": CALLER}).text  # members still find and contest
    assert f"/fr/app/leads/{lead_id}" in page and "/app/privacy/erase" not in page and "/app/privacy/contest" in page
    assert "Seul un propriétaire peut exporter ou effacer" in page


@pytest.mark.parametrize("route", ["erase", "withdraw"])
def test_erasing_first_says_what_will_be_lost(client, db, config, shop, route):
    bid, _other, owner, _ = shop
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Hélène", phone=CALLER,
                               need="Fuite")["id"]
    received(db, config, bid)
    received(db, config, bid)
    token = signed_in(client, db, owner, bid)

    r = client.post(f"/fr/app/privacy/{route}", data={"_csrf_token": token, "phone": CALLER}, follow_redirects=False)
    assert r.status_code == 200 and "C'est irréversible" in r.text
    assert "1 demande :" in r.text and "2 messages vocaux" in r.text and "2 enregistrements" in r.text
    assert 'name="confirm" value="yes"' in r.text and f'action="/fr/app/privacy/{route}"' in r.text
    assert leads.get(db, bid, lead_id)["first_name"] == "Hélène"  # nothing erased yet
    assert db.one("SELECT count(*) AS n FROM voicemails WHERE caller_id = ?", (CALLER,))["n"] == 2

    en = client.post(f"/en/app/privacy/{route}", data={"_csrf_token": token, "phone": CALLER}).text
    assert "This cannot be undone" in en and "1 lead:" in en and "2 voicemails that never became a lead" in en
    nothing = client.post(f"/fr/app/privacy/{route}", data={"_csrf_token": token})
    assert nothing.status_code == 422 and "Indiquez le téléphone ou le courriel" in nothing.text

    client.post(f"/fr/app/privacy/{route}", data={"_csrf_token": token, "phone": CALLER, "confirm": "yes"})
    assert leads.get(db, bid, lead_id)["status"] == "anonymized"
    assert db.one("SELECT count(*) AS n FROM voicemails WHERE caller_id = ?", (CALLER,))["n"] == 0


# ---- hole 9: CSV formulas ------------------------------------------------------------------------

def test_csv_export_neutralizes_formulas_and_keeps_accents(client, db, config, shop):
    bid, _other, owner, _ = shop
    need = '=HYPERLINK("http://x","y")'
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="t", first_name="@SUM(1+1)",
                               last_name="Côté", phone=CALLER, need=need)["id"]
        conn.execute("INSERT INTO lead_events (business_id, lead_id, at, kind, body) VALUES (?, ?, ?, 'note', ?)",
                     (bid, lead_id, clock.now_iso(), "-2+3"))
    received(db, config, bid, transcript="+1 cmd|' /C calc'!A0")
    signed_in(client, db, owner, bid)

    r = client.post("/fr/app/privacy/export", data={"_csrf_token": csrf_token(client), "phone": CALLER, "format": "csv"})
    assert r.content.startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 (the accents) only after a BOM
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    lead, lone = rows
    assert lead["need"] == "'" + need and lead["first_name"] == "'@SUM(1+1)" and lead["notes"] == "'-2+3"
    assert lead["last_name"] == "Côté" and lead["phone"] == "'" + CALLER
    assert lone["channel"] == "voicemail" and lone["voicemail_transcripts"] == "'+1 cmd|' /C calc'!A0"
    for row in rows:
        assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values())

    data = json.loads(client.post("/fr/app/privacy/export", data={"_csrf_token": csrf_token(client), "phone": CALLER}).text)
    assert data["leads"][0]["need"] == need and data["leads"][0]["first_name"] == "@SUM(1+1)"  # JSON exact
    assert data["voicemails"][0]["transcript"] == "+1 cmd|' /C calc'!A0" and data["voicemails"][0]["caller_id"] == CALLER


# ---- hole 3: the operator's key in an address ------------------------------------------------------

INCIDENT = {"information_involved": "Courriels", "circumstances": "Markerincident envoi", "occurred": "2026-11-01",
            "learned_on": "2026-11-01", "persons_concerned": "1", "risk_assessment": "Faible",
            "serious_injury_risk": "no", "measures": "Rappel"}


def test_the_operator_key_never_travels_in_an_address(client, db, config, shop):
    incidents.add(db, INCIDENT)
    key = config.secret("operator")
    in_url = client.get(f"/fr/operator/incidents?key={key}")
    assert in_url.status_code == 200 and "Markerincident" not in in_url.text  # the old address shows nothing
    assert 'type="password"' in in_url.text and 'method="post"' in in_url.text

    token = csrf_token(client)
    r = client.post("/fr/operator/incidents", data={"_csrf_token": token, "key": key})
    assert r.status_code == 200 and "Markerincident" in r.text and r.headers["cache-control"] == "no-store"
    wrong = client.post("/en/operator/incidents", data={"_csrf_token": token, "key": key[:-1]})
    assert wrong.status_code == 403 and "This is not the operator key." in wrong.text
    assert "Markerincident" not in wrong.text

    bearer = client.get("/fr/operator/incidents", headers={"authorization": f"Bearer {key}"})
    assert bearer.status_code == 200 and "Markerincident" in bearer.text
    assert client.get("/fr/operator/incidents", headers={"authorization": "Bearer nope"}).status_code == 403

    listing = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "incident", "list"],
                             capture_output=True, text=True, cwd=ROOT).stdout
    assert "/fr/operator/incidents " in listing and "?key=" not in listing and key in listing

