"""From audio to lead with the real faster-whisper and llama-cpp-python code on tiny
generated models; grounding; no models; model download; and crashes at every state."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from app import config as config_mod
from app import leads, voicemail
from app.db import connect
from app.extraction import grounding, rules
from app.voicemail import models as model_pull
from app.voicemail.engine import ModelEngine, drop_hallucinations
from tests.support.app import ROOT, ServerProcess
from tests.support.fake_hf_hub import COMMIT, FakeHfHub
from tests.support.people import make_business
from tests.support.tiny_models import FAST, install_models

SAID = "Bonjour, c'est Hélène Côté. Mon numéro c'est le 514 555 0101. J'ai un dégât d'eau dans le sous-sol."


def fast_config(config):
    return config_mod.load(config.path, env=FAST)


EVERY_FIELD_FROM_THE_MODEL = ("first_name:model,last_name:model,phone:model,email:model,postal_code:model,"
                              "street_address:model,need:model,urgent:model")


class AskCounting(ModelEngine):
    asked = 0

    def _ask_llm(self, transcript, business, language):
        self.asked += 1
        return super()._ask_llm(transcript, business, language)


def test_audio_to_one_lead_with_the_real_model_code(db, config, tiny, recording):
    cfg = config_mod.load(config.path, env={**FAST, "CAPTEO_MODELS_LLM_FIELDS": EVERY_FIELD_FROM_THE_MODEL})
    install_models(cfg, tiny)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    vm_id, _ = voicemail.receive(db, cfg, business_id=bid, data=recording, caller_id="+14385550123",
                                 source="upload", actor="t")
    engine = AskCounting(cfg)
    assert engine.speech_ready() and engine.llm_ready()
    result = voicemail.process(db, cfg, engine, vm_id, "https://capteo.example")
    assert result.state == "lead_created"
    assert engine.asked == 1
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


def test_the_model_is_asked_only_for_the_fields_it_may_change(config, tiny):
    """`[models] llm_fields` lists what the model may change; by default nothing (measured:
    the registry's small model improved no field), and then it is not asked at all."""
    transcript = "Bonjour, c'est Luc Roy, j'ai une fuite. Rappelez-moi au 514 555 0101."
    business = {"name": "Plomberie Gagnon"}
    cfg = fast_config(config)
    install_models(cfg, tiny)
    engine = AskCounting(cfg)
    assert engine.extract(transcript, None, business, "fr") == rules.extract(
        transcript, None, business="Plomberie Gagnon").as_dict()
    assert engine.asked == 0
    asking = AskCounting(config_mod.load(config.path, env={**FAST, "CAPTEO_MODELS_LLM_FIELDS": "need:model"}))
    result = asking.extract(transcript, None, business, "fr")
    assert asking.asked == 1 and result["first_name"] == "Luc" and result["phone"] == "+15145550101"
    with pytest.raises(config_mod.ConfigError, match="llm_fields"):
        config_mod.load(config.path, env={"CAPTEO_MODELS_LLM_FIELDS": "phone:always"})
    with pytest.raises(config_mod.ConfigError, match="llm_fields"):
        config_mod.load(config.path, env={"CAPTEO_MODELS_LLM_FIELDS": "password:fill"})


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
    said = grounding.merge(base, dict(invented, callback_phone="+1 514-555-0177"), transcript, "+15145550177",
                           policy={"phone": "model"})
    assert said["phone"] == "+15145550177"  # the caller id counts as grounded
    kept = grounding.merge(base, dict(invented, callback_phone="+1 514-555-0177"), transcript, "+15145550177",
                           policy={"phone": "fill"})
    assert kept["phone"] == "+15145550101"  # "fill": the model only fills what the rules left empty


def _hub_with_tiny_models(hub, tiny):
    hub.repos["Systran/faster-whisper-small"] = {
        **{p.name: p.read_bytes() for p in (tiny / "whisper").iterdir()}, "README.md": b"# no"}
    hub.repos["Qwen/Qwen2.5-3B-Instruct-GGUF"] = {"qwen2.5-3b-instruct-q4_k_m.gguf": (tiny / "tiny.gguf").read_bytes(),
                                                  "other.gguf": b"x" * 2000}


def test_models_pull_installs_validated_models_with_progress(config, tiny):
    """huggingface_hub against a local Hub: progress, checksums, validation, then the final names."""
    with FakeHfHub() as hub:
        _hub_with_tiny_models(hub, tiny)
        cfg = config_mod.load(config.path, env={"CAPTEO_MODELS_HUB_URL": hub.url})
        seen = []
        got = model_pull.pull(cfg, progress=lambda *a: seen.append(a))
        final = cfg.models_dir / "whisper-small"
        assert sorted(p.name for p in got) == sorted([p.name for p in (tiny / "whisper").iterdir()]
                                                     + ["qwen2.5-3b-instruct-q4_k_m.gguf"])
        assert (final / "model.bin").read_bytes() == (tiny / "whisper" / "model.bin").read_bytes()
        assert not (final / "README.md").exists() and not (final / ".cache").exists()
        assert not (cfg.models_dir / "other.gguf").exists()
        assert sorted(p.name for p in cfg.models_dir.iterdir()) == ["qwen2.5-3b-instruct-q4_k_m.gguf", "whisper-small"]
        size = (tiny / "whisper" / "model.bin").stat().st_size
        assert ("model.bin", size, size) in seen  # progress up to the whole file
        assert all(done <= total for _, done, total in seen)
        # Pinned: every file from the commit the revision resolved to.
        assert any(m == "GET" and f"/resolve/{COMMIT}/model.bin" in p for m, p in hub.requests)
        assert model_pull.check_whisper(cfg).ok and model_pull.check_llm(cfg).ok
        # Run again: everything is there and intact, nothing is downloaded.
        before = hub.downloads("model.bin"), hub.downloads("qwen2.5-3b-instruct-q4_k_m.gguf")
        model_pull.pull(cfg)
        assert (hub.downloads("model.bin"), hub.downloads("qwen2.5-3b-instruct-q4_k_m.gguf")) == before


def test_models_pull_resumes_a_dropped_transfer(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 1024)  # real files: 10 MB chunks, same logic
    blob = bytes(range(256)) * 40
    with FakeHfHub() as hub:
        hub.repos["Systran/faster-whisper-small"] = {"model.bin": blob, "config.json": b'{"a": 1}'}
        hub.cut.add("model.bin")  # the connection drops half-way through the first transfer
        got = model_pull.pull_repo(hub.url, "Systran/faster-whisper-small", tmp_path / "w",
                                   lambda p: p in model_pull.WHISPER_FILES, progress=lambda *a: None)
        assert sorted(p.name for p in got) == ["config.json", "model.bin"]
        assert hub.ranges == [f"bytes={len(blob) // 2}-"]  # continued, not started over
        assert (tmp_path / "w" / "model.bin").read_bytes() == blob


def test_models_pull_refuses_a_corrupted_or_short_file(tmp_path):
    blob = bytes(range(256)) * 40
    with FakeHfHub() as hub:
        hub.repos["Systran/faster-whisper-small"] = {"model.bin": blob, "config.json": b'{"a": 1}'}
        hub.corrupt.add("model.bin")
        with pytest.raises(model_pull.PullError, match="checksum mismatch"):
            model_pull.pull_repo(hub.url, "Systran/faster-whisper-small", tmp_path / "bad",
                                 lambda p: p == "model.bin", progress=lambda *a: None)
        assert not (tmp_path / "bad" / "model.bin").exists()
        assert not list((tmp_path / "bad").rglob("*.incomplete"))
        hub.corrupt.clear()
        hub.short.add("config.json")  # fewer bytes than the Hub announced
        hub.short.add("model.bin")
        with pytest.raises(model_pull.PullError, match="discarded"):
            model_pull.pull_repo(hub.url, "Systran/faster-whisper-small", tmp_path / "short",
                                 lambda p: p == "model.bin", progress=lambda *a: None)
        assert not (tmp_path / "short" / "model.bin").exists()
        # Fixed on the Hub: the next pull downloads it again, whole.
        hub.short.clear()
        got = model_pull.pull_repo(hub.url, "Systran/faster-whisper-small", tmp_path / "bad",
                                   lambda p: p == "model.bin", progress=lambda *a: None)
        assert got[0].read_bytes() == blob


def test_the_model_directory_appears_only_once_complete_and_usable(config, tiny):
    with FakeHfHub() as hub:
        _hub_with_tiny_models(hub, tiny)
        cfg = config_mod.load(config.path, env={"CAPTEO_MODELS_HUB_URL": hub.url})
        final = cfg.models_dir / "whisper-small"
        hub.corrupt.add("tokenizer.json")
        with pytest.raises(model_pull.PullError, match="tokenizer.json: checksum mismatch"):
            model_pull.pull(cfg, llm=False, progress=lambda *a: None)
        assert not final.exists()
        # Fixed: the next run fetches what is missing, not what it already has intact.
        hub.corrupt.clear()
        model_bin_downloads = hub.downloads("model.bin")
        model_pull.pull(cfg, llm=False, progress=lambda *a: None)
        assert final.is_dir() and hub.downloads("model.bin") == model_bin_downloads
        # A repository whose model does not load (here: a truncated model.bin that matches its
        # own checksum) is refused after download, and the installed model stays as it was.
        whole = hub.repos["Systran/faster-whisper-small"]["model.bin"]
        hub.repos["Systran/faster-whisper-small"]["model.bin"] = whole[: len(whole) // 2]
        with pytest.raises(model_pull.PullError, match="not usable: model.bin of the speech model is incomplete"):
            model_pull.pull(cfg, llm=False, progress=lambda *a: None)
        assert (final / "model.bin").read_bytes() == whole
        # A GGUF that is not one is refused the same way: no file under the final name.
        hub.repos["Qwen/Qwen2.5-3B-Instruct-GGUF"]["qwen2.5-3b-instruct-q4_k_m.gguf"] = b"not a gguf" * 200
        with pytest.raises(model_pull.PullError, match="not usable"):
            model_pull.pull(cfg, whisper=False, progress=lambda *a: None)
        assert not (cfg.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf").exists()


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


class CountingStandIn:
    """The Engine protocol, counting transcriptions; while one runs, another worker's copy
    of the same task (`during`) is tried."""

    def __init__(self, during=None):
        self.transcribed = 0
        self.during = during

    def speech_ready(self) -> bool:
        return True

    def transcribe(self, path, business):
        self.transcribed += 1
        if self.during:
            self.during()
        return SAID, "fr"

    def extract(self, transcript, caller_id, business, language):
        return rules.extract(transcript, caller_id).as_dict()


def test_a_step_is_leased_a_second_worker_leaves_it_and_the_sweep_waits(db, config, recording, monkeypatch):
    from datetime import timedelta

    from app import clock

    bid, _ = make_business(db, "gagnon", "G", custom=False)
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=recording, caller_id="+14385550123",
                                 source="upload", actor="t")
    second = CountingStandIn()
    seen = {}

    def other_worker_tries():
        seen["result"] = voicemail.process(db, config, second, vm_id, "https://capteo.example")
        seen["due"] = voicemail.due(db)

    first = CountingStandIn(during=other_worker_tries)
    assert voicemail.process(db, config, first, vm_id, "https://capteo.example").state == "lead_created"
    # While the first worker transcribed, the same voicemail was neither transcribed again by
    # a second worker nor handed to the sweep.
    assert seen["result"].waiting_for == "another_worker" and second.transcribed == 0
    assert vm_id not in seen["due"]
    assert first.transcribed == 1 and db.one("SELECT count(*) AS n FROM leads")["n"] == 1

    # A worker killed mid-step: its lease runs out after STUCK_AFTER, then the sweep wakes it.
    vm2, _ = voicemail.receive(db, config, business_id=bid, data=recording, caller_id=None, source="upload",
                               actor="t")
    assert voicemail._lease(db, voicemail.get(db, bid, vm2))  # the killed worker's
    assert vm2 not in voicemail.due(db)
    later = clock.now() + voicemail.STUCK_AFTER + timedelta(seconds=1)
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: later)
    assert vm2 in voicemail.due(db)
    monkeypatch.setattr(clock, "now", real_now)
    # ...or at once when the process that runs the models' work starts again.
    assert voicemail.release_leases(db) == 1 and vm2 in voicemail.due(db)
    third = CountingStandIn()
    assert voicemail.process(db, config, third, vm2, "https://capteo.example").state == "lead_created"
    assert third.transcribed == 1 and db.one("SELECT count(*) AS n FROM leads")["n"] == 2


def test_models_that_cannot_take_work_now_spend_no_try(db, config, recording):
    """A models service down, refusing the token or busy raises an error marked `unavailable`:
    the voicemail waits a minute without spending one of its tries (five of them would make a
    GPU box's reboot fail every voicemail of the hour)."""
    from app import clock
    from app.voicemail.service import ServiceError

    class Busy(CountingStandIn):
        def transcribe(self, path, business):
            raise ServiceError("the models service at http://gpu:8100 is busy", "service_busy")

    bid, _ = make_business(db, "gagnon", "G", custom=False)
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=recording, caller_id=None, source="upload",
                                 actor="t")
    for _ in range(config.voicemail.max_attempts + 1):
        with db.write() as conn:  # the minute has passed
            conn.execute("UPDATE voicemails SET next_attempt_at = NULL WHERE id = ?", (vm_id,))
        result = voicemail.process(db, config, Busy(), vm_id, "https://x")
        assert (result.state, result.waiting_for) == ("received", "models")
    vm = voicemail.get(db, bid, vm_id)
    assert (vm["state"], vm["attempts"], vm["error"]) == ("received", 0, None)
    assert vm["next_attempt_at"] > clock.now_iso()
    # Any other failure still counts.
    broken = CountingStandIn()
    broken.transcribe = lambda path, business: (_ for _ in ()).throw(RuntimeError("boom"))
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET next_attempt_at = NULL WHERE id = ?", (vm_id,))
    voicemail.process(db, config, broken, vm_id, "https://x")
    assert voicemail.get(db, bid, vm_id)["attempts"] == 1


def test_a_lease_holds_on_a_voicemail_untouched_for_long(db, config, recording):
    """The attack of a review: a voicemail whose last change is older than STUCK_AFTER (a backlog,
    the models service down a while) was leased again by a second worker and handed to the
    sweep every minute, through a clause on `updated_at`; the lease alone decides now."""
    bid, _ = make_business(db, "gagnon", "G", custom=False)
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=recording, caller_id=None, source="upload",
                                 actor="t")
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET updated_at = '2026-01-01T00:00:00+00:00' WHERE id = ?", (vm_id,))
    assert voicemail._lease(db, voicemail.get(db, bid, vm_id))  # worker A
    assert not voicemail._lease(db, voicemail.get(db, bid, vm_id))  # worker B leaves it
    assert vm_id not in voicemail.due(db)
    second = CountingStandIn()
    assert voicemail.process(db, config, second, vm_id, "https://x").waiting_for == "another_worker"
    assert second.transcribed == 0


def test_a_starting_worker_leaves_the_leases_of_a_living_one(db, config, recording):
    """The attack of a review: the process that runs the models' work let every lease go when it
    started, also those of a `run.py worker --models` at work on the same data directory (a
    second transcription of its voicemail). Now only when no other such process lives."""
    import jobs

    bid, _ = make_business(db, "gagnon", "G", custom=False)
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=recording, caller_id=None, source="upload",
                                 actor="t")
    jobs.configure(config, db)
    living = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "worker",
                               "--models"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _lock_held_elsewhere(config) and time.monotonic() < deadline:
            assert living.poll() is None, "the worker ended"
            time.sleep(0.1)
        assert voicemail._lease(db, voicemail.get(db, bid, vm_id))  # the living worker's step
        assert jobs.claim_models_work(config) is False
        assert vm_id not in voicemail.due(db)  # still its own
        living.send_signal(signal.SIGKILL)
        living.wait(10)
        # Killed: this process is the only one left, and the lease is let go at once.
        assert jobs.claim_models_work(config) is True
        assert vm_id in voicemail.due(db)
        assert _lock_held_elsewhere(config)  # by this process now, until its worker stops
        jobs._release_models_work(config)
        assert not _lock_held_elsewhere(config)
    finally:
        if living.poll() is None:
            living.kill()
            living.wait(10)
    # The lock file says who runs the models' work now: a backup leaves it out.
    assert (config.data_dir / jobs.MODELS_LOCK).exists()
    from app.ops import backup

    backup.backup(config.data_dir, config.data_dir.parent / "copy")
    assert not (config.data_dir.parent / "copy" / jobs.MODELS_LOCK).exists()


def _lock_held_elsewhere(config) -> bool:
    import fcntl
    import os

    path = config.data_dir / "models-worker.lock"
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
