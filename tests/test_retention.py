"""Retention with a clock we set: anonymization 30 days after archiving, audio after 30
days, catch-up after downtime, idempotence, and no trace left in any file."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from app import leads
from app.privacy import retention
from tests.support.app import ROOT
from tests.support.people import make_business

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MARKERS = {"first_name": "Zéphyrinmarker", "last_name": "Quillonmarker", "phone": "+15145559876",
           "email": "zephyrin.marker@example.com", "street_address": "77 rue Markerville",
           "postal_code": "H2X 1Y4"}


def iso(dt):
    return dt.isoformat(timespec="seconds")


def archived_lead(db, config, bid, days_ago, language="fr", **fields):
    values = {**MARKERS, **fields}
    with db.write() as conn:
        lead = leads.create(conn, business_id=bid, channel="phone", actor="t", language=language,
                            need="Fuite Markerneed", custom_fields={"1": {"kind": "short_text", "label_fr": "Q",
                                                                        "label_en": "Q", "value": "Markercustom"}},
                            latitude=45.5, longitude=-73.6, session_id="sess-marker-123", **values)
        conn.execute("UPDATE leads SET status = 'archived', archived_at = ?, notes = 'Markernote' WHERE id = ?",
                     (iso(NOW - timedelta(days=days_ago)), lead["id"]))
        conn.execute("INSERT INTO lead_events (business_id, lead_id, at, kind, body) VALUES (?, ?, ?, 'note', ?)",
                     (bid, lead["id"], iso(NOW), "Markernote"))
        conn.execute("INSERT INTO outbox (business_id, lead_id, kind, to_phone, body, next_attempt_at, created_at)"
                     " VALUES (?, ?, 'client_appointment', ?, 'Markersms', ?, ?)",
                     (bid, lead["id"], values["phone"], iso(NOW), iso(NOW)))
    return lead["id"]


def voicemail(db, config, bid, lead_id, age: timedelta, name="vm.wav"):
    (config.audio_dir / name).write_bytes(b"RIFF-markeraudio")
    with db.write() as conn:
        conn.execute("INSERT INTO voicemails (business_id, lead_id, caller_id, audio_path, transcript, created_at)"
                     " VALUES (?, ?, '+15145559876', ?, 'Bonjour ici Zéphyrinmarker', ?)",
                     (bid, lead_id, name, iso(NOW - age)))
        return conn.last_insert_rowid()


@pytest.fixture
def bid(db):
    return make_business(db, "b", "B", custom=False)[0]


def test_only_leads_archived_more_than_30_days_ago_are_anonymized(db, config, bid):
    young = archived_lead(db, config, bid, 29)
    old_fr = archived_lead(db, config, bid, 31)
    old_en = archived_lead(db, config, bid, 31, language="en")
    report = retention.sweep(db, config, as_of=NOW)
    assert sorted(report.anonymized) == [old_fr, old_en]
    assert leads.get(db, bid, young)["first_name"] == MARKERS["first_name"]
    for lead_id, need in ((old_fr, "Anonymisé (Loi 25)"), (old_en, "Anonymized (Law 25)")):
        lead = leads.get(db, bid, lead_id)
        assert lead["status"] == "anonymized" and lead["need"] == need and lead["anonymized_at"]
        for f in retention.ERASED_FIELDS:
            assert lead[f] is None, f
        assert lead["custom_fields"] == "{}"
        assert lead["session_id"] != "sess-marker-123" and len(lead["session_id"]) == 32
    entry = db.query_one("SELECT * FROM audit_log WHERE action = 'lead.anonymize.retention' AND entity_id = ?",
                         (str(old_fr),))
    assert entry["actor"] == "system:retention" and "phone" in json.loads(entry["fields"])


def test_audio_deleted_after_30_days_transcript_kept(db, config, bid):
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="phone", actor="t", need="x")["id"]
    fresh = voicemail(db, config, bid, lead_id, timedelta(days=29), "fresh.wav")
    due = voicemail(db, config, bid, lead_id, timedelta(days=30, hours=1), "due.wav")
    report = retention.sweep(db, config, as_of=NOW)
    assert report.audio_deleted == [due]
    assert (config.audio_dir / "fresh.wav").exists() and not (config.audio_dir / "due.wav").exists()
    row = db.query_one("SELECT * FROM voicemails WHERE id = ?", (due,))
    assert row["audio_path"] is None and row["audio_deleted_at"] and row["transcript"]
    assert db.query_one("SELECT audio_path FROM voicemails WHERE id = ?", (fresh,))["audio_path"] == "fresh.wav"


def test_a_sweep_after_3_days_down_catches_up_and_a_second_changes_nothing(db, config, bid):
    ids = [archived_lead(db, config, bid, 31 + d) for d in range(4)]
    voicemail(db, config, bid, ids[0], timedelta(days=33), "a.wav")
    report = retention.sweep(db, config, as_of=NOW + timedelta(days=3))
    assert sorted(report.anonymized) == ids and len(report.audio_deleted) == 0  # audio went with its lead
    assert not (config.audio_dir / "a.wav").exists()
    audit_count = db.query_one("SELECT count(*) AS n FROM audit_log")["n"]
    before = db.query("SELECT * FROM leads ORDER BY id")
    again = retention.sweep(db, config, as_of=NOW + timedelta(days=3))
    assert not again.changed
    assert db.query("SELECT * FROM leads ORDER BY id") == before
    assert db.query_one("SELECT count(*) AS n FROM audit_log")["n"] == audit_count


def _raw(config):
    out = {}
    for name in ("capteo.db", "capteo.db-wal", "queue.db", "queue.db-wal"):
        path = config.data_dir / name
        out[name] = path.read_bytes() if path.exists() else b""
    return out


def _assert_no_trace(config):
    files = _raw(config)
    for name, data in files.items():
        for marker in ("Zéphyrinmarker", "Quillonmarker", "5559876", "zephyrin.marker", "Markerville",
                       "Markernote", "Markercustom", "Markersms", "sess-marker-123"):
            assert marker.encode() not in data, f"{marker!r} still in {name}"


def test_no_trace_after_anonymization(db, config, bid):
    import jobs

    jobs.configure(config, db)  # queue.db exists and has seen tasks for this lead
    lead_id = archived_lead(db, config, bid, 31)
    jobs.intake.geocode(lead_id)
    # Search indexed the words; make sure the index has them before.
    assert leads.inbox(db, bid, q="Zéphyrinmarker", status="archived")[0]
    retention.sweep(db, config, as_of=NOW)
    assert leads.inbox(db, bid, q="Zéphyrinmarker")[0] == []
    _assert_no_trace(config)


def test_no_trace_after_erasure_on_request(db, config, bid):
    with db.write() as conn:
        lead_id = leads.create(conn, business_id=bid, channel="web", actor="t", need="Markerneed", **MARKERS)["id"]
    voicemail(db, config, bid, lead_id, timedelta(days=1), "recent.wav")
    assert retention.erase_person(db, config, bid, [lead_id], actor="user:1") == [lead_id]
    assert not (config.audio_dir / "recent.wav").exists()
    _assert_no_trace(config)


def test_retention_cli_as_of(db, config, bid):
    lead_id = archived_lead(db, config, bid, 10)
    db.close()
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path),  # noqa
                                     "retention", "run", *a], capture_output=True, text=True, cwd=ROOT)
    assert "anonymized 0 lead(s)" in run().stdout
    out = run("--as-of", iso(datetime.now(UTC) + timedelta(days=25)))
    assert out.returncode == 0 and "anonymized 1 lead(s)" in out.stdout, out.stderr
    assert run("--as-of", "yesterday").returncode == 2
    assert leads.get(db, bid, lead_id)["status"] == "anonymized"
