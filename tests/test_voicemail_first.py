"""Issue 12: a voicemail is a lead the moment it arrives ("to listen": the caller id and
the recording), speech model or not; the transcript and the fields fill that same lead in
later, and never over what a person corrected meanwhile."""

from __future__ import annotations

import json
import re

import pytest

from app import clock, leads, voicemail
from app import config as config_mod
from app.privacy import retention
from app.voicemail.engine import ModelEngine
from tests.support.audio import speak
from tests.support.people import phone_shop, signed_in
from tests.support.tiny_models import FAST, install_models, tiny_models_dir

SAID = "Bonjour, c'est Hélène Côté. Rappelez-moi au 514 555 0101. J'ai un dégât d'eau dans le sous-sol."


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return speak(SAID, "fr", tmp_path_factory.mktemp("speech") / "fr.wav").read_bytes()


@pytest.fixture
def shop(db):
    return phone_shop(db)


def _lead_of(db, bid, vm_id):
    return leads.get(db, bid, voicemail.lead_id_of(db, vm_id))


def test_without_a_speech_model_a_voicemail_is_a_lead_at_once_then_filled_in(client, db, config, shop, speech):
    bid, owner = shop
    assert not ModelEngine(config).speech_ready()
    r = client.post("/api/voicemail", files={"audio": ("m.wav", speech, "audio/wav")},
                    data={"caller_id": "438 555-0123"}, headers={"authorization": "Bearer pbx-secret-token"})
    assert r.status_code == 201, r.text
    vm_id = r.json()["voicemail_id"]
    lead = _lead_of(db, bid, vm_id)
    assert lead["channel"] == "phone" and lead["phone"] == "+14385550123" and lead["status"] == "new"
    assert lead["need"] is None and lead["transcript"] is None and json.loads(lead["ai_fields"]) == []
    sms = db.query("SELECT * FROM outbox WHERE lead_id = ?", (lead["id"],))
    assert [m["kind"] for m in sms] == ["owner_new_lead"] and sms[0]["status"] == "pending"
    assert f"/fr/app/leads/{lead['id']}" in sms[0]["body"]

    # The owner sees it at once, "to listen", and can play it; no operator instructions anywhere.
    signed_in(client, db, owner, bid)
    inbox = client.get("/fr/app/leads").text
    assert "À écouter" in inbox and f"/fr/app/leads/{lead['id']}" in inbox
    page = client.get(f"/fr/app/leads/{lead['id']}").text
    assert "À écouter" in page
    src = re.search(r'<audio controls preload="none" src="([^"]+)"', page).group(1)
    played = client.get(src)
    assert played.status_code == 200 and played.content == speech
    assert "To listen" in client.get(f"/en/app/leads/{lead['id']}").text
    for url in ("/fr/app/voicemail", f"/fr/app/voicemail/{vm_id}", "/en/app/voicemail", f"/en/app/voicemail/{vm_id}"):
        shown = client.get(url).text
        assert "run.py" not in shown and "models pull" not in shown
        assert f"/app/leads/{lead['id']}" in shown
    assert "La transcription automatique n'est pas encore disponible" in \
        client.get(f"/fr/app/voicemail/{vm_id}").text.replace("&#39;", "'")

    # The model arrives: the same lead gets the transcript; still one lead, one SMS.
    cfg = config_mod.load(config.path, env=FAST)
    install_models(cfg, tiny_models_dir())
    assert voicemail.process(db, cfg, ModelEngine(cfg), vm_id, "https://x").state == "lead_created"
    vm = voicemail.get(db, bid, vm_id)
    filled = leads.get(db, bid, lead["id"])
    assert vm["lead_id"] == lead["id"] and filled["transcript"] == vm["transcript"] is not None
    assert leads.count(db) == 1
    assert db.one("SELECT count(*) AS n FROM outbox")["n"] == 1
    assert voicemail.process(db, cfg, ModelEngine(cfg), vm_id, "https://x").state == "lead_created"
    assert leads.count(db) == 1
    if filled["transcript"] or filled["need"]:
        assert "À écouter" not in client.get("/fr/app/leads").text


def _transcribed(db, vm_id, transcript):
    """As if the speech model had heard `transcript` (the rules then read it, no LLM)."""
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET state = 'transcribed', transcript = ?, language = 'fr' WHERE id = ?",
                     (transcript, vm_id))


def test_a_correction_made_before_the_transcript_is_never_overwritten(client, db, config, shop, speech):
    bid, owner = shop
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=speech, caller_id="+14385550123",
                                 source="pbx", actor="pbx")
    lead = _lead_of(db, bid, vm_id)
    # The owner listened and wrote down the name and the need, through the correction form.
    token = signed_in(client, db, owner, bid)
    r = client.post(f"/fr/app/leads/{lead['id']}/edit", follow_redirects=False, data={
        "_csrf_token": token, "first_name": "Hélène", "last_name": "", "phone": "438 555-0123", "email": "",
        "street_address": "", "postal_code": "", "callback_time": "", "need": "Dégât d'eau, rappeler ce soir"})
    assert r.status_code in (200, 303), r.text
    assert leads.get(db, bid, lead["id"])["first_name"] == "Hélène"
    _transcribed(db, vm_id, "Bonjour, c'est Marc Roy, rappelez-moi au 514 555 0101. Mon code postal "
                            "c'est H2X 1Y4. J'ai une fuite sous l'évier, c'est urgent.")
    assert voicemail.process(db, config, ModelEngine(config), vm_id, "https://x").state == "lead_created"
    filled = leads.get(db, bid, lead["id"])
    assert filled["first_name"] == "Hélène" and filled["need"] == "Dégât d'eau, rappeler ce soir"
    # What nobody corrected is filled in and shown "to verify": the number said replaces the caller id.
    assert filled["phone"] == "+15145550101" and filled["postal_code"] == "H2X 1Y4"
    ai = json.loads(filled["ai_fields"])
    assert "phone" in ai and "postal_code" in ai and "first_name" not in ai and "need" not in ai
    assert filled["transcript"].startswith("Bonjour, c'est Marc Roy") and filled["geocode_status"] == "pending"
    assert leads.count(db) == 1


def test_a_phone_the_person_corrected_stays(db, config, shop, speech):
    bid, owner = shop
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=speech, caller_id="+14385550123",
                                 source="pbx", actor="pbx")
    lead = _lead_of(db, bid, vm_id)
    assert leads.rectify(db, bid, lead["id"], {"phone": "+14505550199"}, user_id=owner) == ["phone"]
    _transcribed(db, vm_id, "Bonjour, c'est Marc Roy, rappelez-moi au 514 555 0101, j'ai une fuite.")
    assert voicemail.process(db, config, ModelEngine(config), vm_id, "https://x").state == "lead_created"
    filled = leads.get(db, bid, lead["id"])
    assert filled["phone"] == "+14505550199" and "phone" not in json.loads(filled["ai_fields"])
    assert filled["first_name"] == "Marc" and filled["need"]


def test_a_lead_anonymized_before_the_transcript_gets_nothing_back(db, config, shop, speech):
    bid, _ = shop
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=speech, caller_id="+14385550123",
                                 source="pbx", actor="pbx")
    lead = _lead_of(db, bid, vm_id)
    with db.write() as conn:
        retention.anonymize(conn, config, lead, actor="t", reason="request")
    _transcribed(db, vm_id, "Bonjour, c'est Marc Roy, rappelez-moi au 514 555 0101.")
    voicemail.process(db, config, ModelEngine(config), vm_id, "https://x")
    after = leads.get(db, bid, lead["id"])
    assert after["status"] == "anonymized" and after["phone"] is None and after["transcript"] is None
    assert after["first_name"] is None and leads.count(db) == 1


def test_a_voicemail_in_flight_from_before_still_gets_its_one_lead_at_the_end(db, config, shop):
    """Rows received before leads were made at once have no lead yet: the last step makes it."""
    bid, _ = shop
    now = clock.now_iso()
    extraction = json.dumps({"first_name": "Luc", "phone": "+15145550101", "need": "Fuite", "urgent": True,
                             "language": "fr"})
    with db.write() as conn:
        conn.execute("INSERT INTO voicemails (business_id, caller_id, created_at, updated_at, state, source, "
                     "transcript, language, extraction) VALUES (?, '+14385550123', ?, ?, 'extracted', 'pbx', "
                     "'Bonjour, c''est Luc.', 'fr', ?)", (bid, now, now, extraction))
        vm_id = conn.last_insert_rowid()
    assert voicemail.process(db, config, ModelEngine(config), vm_id, "https://x").state == "lead_created"
    assert voicemail.process(db, config, ModelEngine(config), vm_id, "https://x").state == "lead_created"
    lead = _lead_of(db, bid, vm_id)
    assert lead["first_name"] == "Luc" and lead["urgent"] == 1 and leads.count(db) == 1
    assert db.one("SELECT count(*) AS n FROM outbox WHERE lead_id = ?", (lead["id"],))["n"] == 1


def test_a_refused_recording_makes_no_lead_and_no_sms(db, config, shop):
    from app.voicemail import audio

    with pytest.raises(audio.AudioRejected):
        voicemail.receive(db, config, business_id=shop[0], data=b"not audio" * 100, caller_id="+14385550123",
                          source="pbx", actor="pbx")
    assert leads.count(db) == 0 and db.one("SELECT count(*) AS n FROM outbox")["n"] == 0
