"""From audio to lead with the real faster-whisper and llama-cpp-python code on tiny
generated models; grounding; no models; model download; and crashes at every state."""

from __future__ import annotations

import json
import signal
import time

import httpx
import pytest

from app import config as config_mod
from app import leads, voicemail
from app.db import connect
from app.extraction import grounding
from app.voicemail import models as model_pull
from app.voicemail.engine import ModelEngine, drop_hallucinations
from tests.fakes import FakeHub
from tests.support.app import ServerProcess
from tests.support.audio import speak
from tests.support.people import make_business
from tests.support.tiny_models import FAST, install_models, tiny_models_dir

SAID = "Bonjour, c'est Hélène Côté. Mon numéro c'est le 514 555 0101. J'ai un dégât d'eau dans le sous-sol."


@pytest.fixture(scope="module")
def tiny():
    return tiny_models_dir()


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    return speak(SAID, "fr", tmp_path_factory.mktemp("rec") / "fr.wav").read_bytes()


def fast_config(config):
    return config_mod.load(config.path, env=FAST)


def test_audio_to_one_lead_with_the_real_model_code(db, config, tiny, recording):
    cfg = fast_config(config)
    install_models(cfg, tiny)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    vm_id, _ = voicemail.receive(db, cfg, business_id=bid, data=recording, caller_id="+14385550123",
                                 source="upload", actor="t")
    engine = ModelEngine(cfg)
    assert engine.speech_ready() and engine.llm_ready()
    result = voicemail.process(db, cfg, engine, vm_id, "https://capteo.example")
    assert result.state == "lead_created"
    vm = voicemail.get(db, bid, vm_id)
    assert vm["language"] in ("fr", "en") and vm["transcript"] is not None
    lead = leads.get(db, bid, vm["lead_id"])
    # Random weights say nothing sensible: the callback phone falls back to the caller id,
    # and nothing the tiny LLM invented survives grounding.
    assert lead["channel"] == "phone" and lead["phone"] == "+14385550123"
    assert lead["transcript"] == vm["transcript"]
    assert json.loads(lead["ai_fields"])  # shown as "to verify"
    assert voicemail.process(db, cfg, engine, vm_id, "https://capteo.example").state == "lead_created"
    assert db.query_one("SELECT count(*) AS n FROM leads")["n"] == 1
    assert db.query_one("SELECT count(*) AS n FROM outbox WHERE lead_id = ?", (lead["id"],))["n"] == 1


def test_without_models_the_voicemail_waits_then_goes_on(db, config, tiny, recording):
    cfg = fast_config(config)
    bid, _ = make_business(db, "gagnon", "G", custom=False)
    vm_id, _ = voicemail.receive(db, cfg, business_id=bid, data=recording, caller_id=None, source="upload", actor="t")
    engine = ModelEngine(cfg)
    result = voicemail.process(db, cfg, engine, vm_id, "https://x")
    assert result.state == "received" and result.waiting_for == "speech_model"
    install_models(cfg, tiny)
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "lead_created"


def test_hallucinated_credits_are_dropped():
    assert drop_hallucinations(["Bonjour c'est Luc.", " Sous-titrage Société Radio-Canada", "Merci."]) == \
        "Bonjour c'est Luc. Merci."
    assert drop_hallucinations(["Sous-titres réalisés par la communauté d'Amara.org"]) == ""


def test_an_llm_phone_that_was_never_said_is_dropped():
    transcript = "Bonjour c'est Marc Roy, rappelez-moi au 514 555 0101, merci."
    base = {"first_name": None, "last_name": None, "phone": "+15145550101", "email": None, "postal_code": None,
            "street_address": None, "need": None, "urgent": False, "language": "fr"}
    invented = {"first_name": "Marc", "last_name": "Tremblay", "callback_phone": "438 555 0199",
                "email": "marc@example.com", "postal_code": "H2X 1Y4", "street_address": "12 rue Inventée",
                "need": "Rappel", "urgent": False}
    merged = grounding.merge(base, invented, transcript, caller_id="+15145550177")
    assert merged["phone"] == "+15145550101"  # the invented 438 number lost
    assert merged["first_name"] == "Marc" and merged["last_name"] is None  # Roy was said, Tremblay was not
    assert merged["email"] is None and merged["postal_code"] is None and merged["street_address"] is None
    said = grounding.merge(base, dict(invented, callback_phone="+1 514-555-0177"), transcript, "+15145550177")
    assert said["phone"] == "+15145550177"  # the caller id counts as grounded


def test_models_pull_progress_checksum_and_resume(config, tmp_path):
    with FakeHub() as hub:
        blob = bytes(range(256)) * 40
        hub.repos["Systran/faster-whisper-small"] = {"model.bin": blob, "config.json": b'{"a": 1}',
                                                     "tokenizer.json": b"{}", "vocabulary.json": b"[]",
                                                     "preprocessor_config.json": b"{}", "README.md": b"# no"}
        hub.repos["Qwen/Qwen2.5-3B-Instruct-GGUF"] = {"qwen2.5-3b-instruct-q4_k_m.gguf": blob * 2,
                                                      "other.gguf": b"x" * 2000}
        cfg = config_mod.load(config.path, env={"CAPTEO_MODELS_HUB_URL": hub.url})
        seen = []
        got = model_pull.pull_repo(hub.url, "Systran/faster-whisper-small", tmp_path / "w",
                                   lambda p: p in model_pull.WHISPER_FILES, progress=lambda *a: seen.append(a))
        assert sorted(p.name for p in got) == sorted(model_pull.WHISPER_FILES[:5])
        assert seen[-1][1] == seen[-1][2] and any(name == "model.bin" for name, _, _ in seen)
        # Resume: half a file already there is continued with a Range request.
        gguf = cfg.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf.part"
        gguf.write_bytes((blob * 2)[:3000])
        model_pull.pull(cfg, whisper=True, llm=True)
        assert hub.ranges == ["bytes=3000-"]
        assert (cfg.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf").read_bytes() == blob * 2
        assert (cfg.models_dir / "whisper-small" / "model.bin").read_bytes() == blob
        assert not (cfg.models_dir / "other.gguf").exists()
        # A corrupted download is refused and leaves nothing installed.
        hub.corrupt.add("model.bin")
        with pytest.raises(model_pull.PullError, match="checksum mismatch"):
            model_pull.pull_repo(hub.url, "Systran/faster-whisper-small", tmp_path / "bad",
                                 lambda p: p == "model.bin")
        assert not (tmp_path / "bad" / "model.bin").exists() and not (tmp_path / "bad" / "model.bin.part").exists()


def _state(srv):
    conn = connect(srv.directory / "data" / "capteo.db")
    try:
        vms = list(conn.execute("SELECT id, state, lead_id FROM voicemails ORDER BY id"))
        per_lead = list(conn.execute("SELECT count(*) AS n FROM leads GROUP BY id"))
        return vms, len(per_lead)
    finally:
        conn.close()


@pytest.mark.slow
def test_killed_at_any_state_every_voicemail_ends_as_exactly_one_lead(tmp_path, tiny, recording):
    """SIGKILL the real server with voicemails in every state (and one being
    transcribed), restart it, and count: one lead per voicemail, no more, no less."""
    srv = ServerProcess(tmp_path, demo=False, extra_env=FAST)
    cfg = config_mod.load(srv.config_path, env={})
    cfg.ensure_dirs()
    install_models(cfg, tiny)
    srv.start()
    db_path = tmp_path / "data" / "capteo.db"
    conn = connect(db_path)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO businesses (id, slug, name, timezone, created_at, pbx_token_hash) VALUES "
                 "(1, 'b', 'B', 'America/Toronto', '2026-11-22T00:00:00+00:00', ?)",
                 (__import__("hashlib").sha256(b"tok").hexdigest(),))
    conn.execute("COMMIT")
    conn.close()
    headers = {"authorization": "Bearer tok"}
    ids = []
    for round_ in range(4):
        for _ in range(3):
            r = httpx.post(srv.url + "/api/voicemail", headers=headers, files={"audio": ("a.wav", recording)},
                           data={"caller_id": "5145550101"}, timeout=30)
            assert r.status_code == 201
            ids.append(r.json()["voicemail_id"])
        time.sleep(0.15 * round_)  # 0 s: before transcription ... 0.45 s: mid-pipeline
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        if round_ == 3:
            # As if killed right after a step committed: one voicemail per later state.
            conn = connect(db_path)
            conn.execute("BEGIN IMMEDIATE")
            name = next(iter(conn.execute("SELECT audio_path FROM voicemails LIMIT 1")))["audio_path"]
            extraction = json.dumps({"first_name": "Luc", "phone": "+15145550101", "need": "Fuite", "urgent": True,
                                     "language": "fr"})
            for state, columns in (("transcribed", {"transcript": SAID, "language": "fr"}),
                                   ("extracted", {"transcript": SAID, "language": "fr", "extraction": extraction})):
                conn.execute(
                    f"INSERT INTO voicemails (business_id, audio_path, created_at, updated_at, state, source, "
                    f"{', '.join(columns)}) VALUES (1, ?, '2026-11-22T00:00:00+00:00', '2026-11-22T00:00:00+00:00',"
                    f" ?, 'pbx', {', '.join('?' for _ in columns)})", (name, state, *columns.values()))
                ids.append(conn.last_insert_rowid())
            conn.execute("COMMIT")
            conn.close()
        srv.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        vms, _ = _state(srv)
        if all(v["state"] == "lead_created" for v in vms):
            break
        time.sleep(0.5)
    srv.stop()
    vms, lead_count = _state(srv)
    assert [v["id"] for v in vms] == ids
    assert all(v["state"] == "lead_created" for v in vms), vms
    assert lead_count == len(ids) and len({v["lead_id"] for v in vms}) == len(ids)
