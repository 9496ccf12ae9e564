"""Model health made for real: the tiny generated models, damaged, cut short, English-only,
without a chat template, or with a bad compute type; what the engine, the pipeline,
`run.py check`, /healthz and the owner's pages make of each."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time

import pytest

from app import config as config_mod
from app import voicemail
from app.voicemail import models
from app.voicemail.engine import ModelEngine
from tests.support.app import ROOT, write_config
from tests.support.people import phone_shop, signed_in
from tests.support.tiny_models import (
    FAST,
    install_models,
    make_tiny_gguf_without_chat_template,
    make_tiny_whisper_english_only,
    tiny_models_dir,
)

SAID = "Bonjour, c'est Luc, rappelez-moi."  # the `recording` fixture's words (conftest)


@pytest.fixture(autouse=True)
def fresh_results():
    models.forget()
    yield
    models.forget()


@pytest.fixture
def cfg(config, tiny):
    c = config_mod.load(config.path, env={**FAST, "CAPTEO_MODELS_WHISPER": "small"})
    install_models(c, tiny)
    return c


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_the_tiny_models_are_usable(cfg):
    assert models.check_whisper(cfg) == models.OK and models.check_llm(cfg) == models.OK
    engine = ModelEngine(cfg)
    assert engine.speech_ready() and engine.llm_ready()


def test_a_truncated_model_bin_is_unusable_and_the_voicemail_waits(cfg, db, recording):
    _truncate(models.whisper_dir(cfg) / "model.bin")
    check = models.check_whisper(cfg)
    assert (check.ok, check.code) == (False, "damaged")
    assert "model.bin" in check.problem and "incomplete or damaged" in check.problem
    assert "python run.py models pull` again" in check.fix
    bid, _ = phone_shop(db)
    vm_id, _ = voicemail.receive(db, cfg, business_id=bid, data=recording, caller_id=None, source="upload",
                                 actor="t")
    engine = ModelEngine(cfg)
    assert not engine.speech_ready()
    for _ in range(3):  # waits like a voicemail with no model: no attempt spent, no failure
        result = voicemail.process(db, cfg, engine, vm_id, "https://x")
        assert result.state == "received" and result.waiting_for == "speech_model"
    vm = db.query_one("SELECT state, attempts FROM voicemails WHERE id = ?", (vm_id,))
    assert vm["state"] == "received" and not vm["attempts"]
    # Repaired (the file changes): checked again, and the voicemail goes on.
    shutil.copy(tiny_models_dir() / "whisper" / "model.bin", models.whisper_dir(cfg) / "model.bin")
    assert engine.speech_ready()
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state != "received"
    assert voicemail.get(db, bid, vm_id)["transcript"] is not None  # transcribed with the repaired model


def test_a_missing_tokenizer_fails_fast_without_the_network(cfg, monkeypatch):
    (models.whisper_dir(cfg) / "tokenizer.json").unlink()
    tried = []

    def no_network(self, address):
        tried.append(address)
        raise OSError("no network in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    started = time.monotonic()
    engine = ModelEngine(cfg)
    assert not engine.speech_ready()
    check = models.check_whisper(cfg)
    assert time.monotonic() - started < 2 and tried == []
    assert (check.code, check.problem) == ("missing_file", "the speech model is incomplete: tokenizer.json is missing")


def test_an_english_only_whisper_is_refused(cfg, tmp_path):
    english = make_tiny_whisper_english_only(tmp_path / "en")
    shutil.rmtree(models.whisper_dir(cfg))
    shutil.copytree(english, models.whisper_dir(cfg))
    check = models.check_whisper(cfg)
    assert check.code == "english_only" and "French and English" in check.problem
    assert not ModelEngine(cfg).speech_ready()


def test_mel_bins_that_do_not_match_the_model_are_refused(cfg):
    (models.whisper_dir(cfg) / "preprocessor_config.json").write_text('{"feature_size": 128}')
    check = models.check_whisper(cfg)
    assert check.code == "mel_mismatch" and "128 mel bins" in check.problem and "expects 80" in check.problem


def test_a_compute_type_the_device_cannot_run_is_refused(config, tiny):
    if models.has_gpu():
        pytest.skip("float16 runs on a GPU")
    c = config_mod.load(config.path, env={**FAST, "CAPTEO_MODELS_WHISPER": "small",
                                          "CAPTEO_MODELS_WHISPER_COMPUTE_TYPE": "float16"})
    install_models(c, tiny)
    check = models.check_whisper(c)
    assert check.code == "compute_type" and '"float16" is not supported on the CPU' in check.problem
    assert "whisper_compute_type" in check.fix
    assert not ModelEngine(c).speech_ready()


def test_a_garbage_gguf_is_checked_once_not_for_every_voicemail(cfg, monkeypatch, tiny):
    import llama_cpp

    gguf = models.llm_path(cfg)
    gguf.write_bytes(b"GGUF" + b"\0" * 4000)
    loads = []
    real = llama_cpp.Llama

    def counting(*args, **kwargs):
        loads.append(kwargs.get("vocab_only", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", counting)
    engine = ModelEngine(cfg)
    business = {"name": "Plomberie Gagnon"}
    for _ in range(5):
        assert not engine.llm_ready()
        result = engine.extract("Bonjour c'est Luc Roy, rappelez-moi au 514 555 0101.", None, business, "fr")
        assert result["phone"] == "+15145550101"  # the rules alone
    assert len(loads) == 1
    check = models.check_llm(cfg)
    assert check.code == "damaged" and "not a GGUF" in check.problem
    # Replaced by a good file: checked again, usable.
    shutil.copy(tiny / "tiny.gguf", gguf)
    assert engine.llm_ready() and models.check_llm(cfg).ok


def test_a_gguf_without_a_chat_template_is_refused_unless_a_chat_format_is_named(config, cfg, tmp_path):
    make_tiny_gguf_without_chat_template(models.llm_path(cfg))
    check = models.check_llm(cfg)
    assert check.code == "no_chat_template" and "llm_chat_format" in check.fix
    assert not ModelEngine(cfg).llm_ready()
    named = config_mod.load(config.path, env={**FAST, "CAPTEO_MODELS_WHISPER": "small",
                                              "CAPTEO_MODELS_LLM_CHAT_FORMAT": "chatml"})
    assert models.check_llm(named).ok
    engine = ModelEngine(named)
    assert engine.llm_ready() and engine._llm_model().chat_format == "chatml"


def test_validation_in_the_background_then_health(cfg):
    first = models.health(cfg)  # nothing known yet: the cheap checks pass, the load is in the background
    assert first["whisper"]["present"] and first["whisper"]["usable"] in (None, True)
    models.validate_in_background(cfg).join(timeout=60)
    known = models.health(cfg)
    assert known["whisper"]["usable"] is True and known["llm"]["usable"] is True
    assert known["whisper"]["code"] == "ok"


def test_where_the_models_run_elsewhere_this_process_checks_files_and_loads_nothing(cfg, monkeypatch):
    elsewhere = config_mod.load(cfg.path, env={**FAST, "CAPTEO_MODELS_WHISPER": "small",
                                                "CAPTEO_QUEUE_MODELS_IN_PROCESS": "false"})
    loaded = []
    real_load = models._load_whisper
    monkeypatch.setattr(models, "_load_whisper", lambda *a: loaded.append(a) or real_load(*a))
    models.validate_in_background(elsewhere).join(timeout=60)
    known = models.health(elsewhere)
    assert loaded == [] and known["whisper"]["usable"] is True and known["llm"]["usable"] is True
    # Incomplete files are still said to be so.
    models.forget()
    (models.whisper_dir(elsewhere) / "tokenizer.json").unlink()
    models.validate_in_background(elsewhere).join(timeout=60)
    broken = models.health(elsewhere)["whisper"]
    assert loaded == [] and broken["usable"] is False and broken["code"] == "missing_file"


def _check(config_path):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config_path), "check"],
                          capture_output=True, text=True, cwd=ROOT)


def test_run_check_says_what_is_wrong_in_plain_words(tmp_path, tiny):
    path = write_config(tmp_path)
    c = config_mod.load(path, env={})
    c.ensure_dirs()
    install_models(c, tiny)
    good = _check(path)
    assert good.returncode == 0, good.stdout
    assert "model whisper: small usable" in good.stdout and "model llm: qwen2.5-3b-instruct-q4_k_m.gguf usable" \
        in good.stdout
    _truncate(c.models_dir / "whisper-small" / "model.bin")
    make_tiny_gguf_without_chat_template(c.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf.new")
    (c.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf.new").replace(c.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf")
    bad = _check(path)
    assert bad.returncode == 1
    assert "model whisper: small UNUSABLE" in bad.stdout
    assert "model.bin of the speech model is incomplete or damaged (it does not load) — run `python run.py models " \
           "pull` again" in bad.stdout
    assert "voicemails wait for their transcript" in bad.stdout
    assert "has no chat template" in bad.stdout and "[models] llm_chat_format" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr


def test_healthz_reports_present_usable_and_the_problem(client, config, tiny):
    install_models(config, tiny)
    _truncate(config.models_dir / "whisper-small" / "model.bin")
    body = client.get("/healthz").json()["models"]
    assert set(body["whisper"]) == {"name", "present", "usable", "problem"}
    models.validate_in_background(config).join(timeout=60)
    body = client.get("/healthz").json()["models"]
    assert body["whisper"] == {"name": "small", "present": True, "usable": False, "problem": "damaged"}
    assert body["llm"] == {"name": "qwen2.5-3b-instruct-q4_k_m.gguf", "present": True, "usable": True,
                           "problem": None}
    (config.models_dir / "whisper-small" / "tokenizer.json").unlink()  # said without loading anything
    assert client.get("/healthz").json()["models"]["whisper"]["problem"] == "missing_file"


def test_the_owner_is_told_in_plain_words_in_french_and_english(client, db, config, tiny, recording):
    install_models(config, tiny)
    _truncate(config.models_dir / "whisper-small" / "model.bin")
    (config.models_dir / "qwen2.5-3b-instruct-q4_k_m.gguf").write_bytes(b"GGUF" + b"\0" * 100)
    models.validate_in_background(config).join(timeout=60)
    bid, owner = phone_shop(db)
    vm_id, _ = voicemail.receive(db, config, business_id=bid, data=recording, caller_id=None, source="upload",
                                 actor="t")
    signed_in(client, db, owner, bid)
    fr = client.get("/fr/app/voicemail").text.replace("&#39;", "'")
    assert "La transcription automatique est en panne" in fr and "répare le modèle" in fr
    assert "La lecture automatique des messages est limitée" in fr
    en = client.get("/en/app/voicemail").text.replace("&#39;", "'")
    assert "Automatic transcription is out of order" in en and "server's administrator repairs" in en
    assert "Automatic reading of messages is limited" in en
    progress_fr = client.get(f"/fr/app/voicemail/{vm_id}").text.replace("&#39;", "'")
    progress_en = client.get(f"/en/app/voicemail/{vm_id}").text.replace("&#39;", "'")
    assert "sa transcription attend" in progress_fr and "its transcript waits" in progress_en
    for page in (fr, en, progress_fr, progress_en):
        assert "model.bin" not in page and "Traceback" not in page and str(config.models_dir) not in page
        assert "run.py" not in page


def test_a_gguf_that_crashes_when_it_answers_is_unusable_not_a_crash_of_the_service(cfg, monkeypatch):
    """A model that loads but takes llama.cpp down when it answers (seen here: AMX kernels
    the OS does not grant) is found by a first answer in a child process: unusable, said
    in plain words, checked once, and the voicemails are read by the rules meanwhile."""
    import signal

    children = []
    real_run = subprocess.run

    def crashing_child(args, **kwargs):
        children.append(args)
        crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
        return real_run([sys.executable, "-c", crash], **kwargs)

    monkeypatch.setattr(subprocess, "run", crashing_child)
    check = models.check_llm(cfg)
    assert check.code == "crashes" and f"signal {int(signal.SIGSEGV)}" in check.problem
    engine = ModelEngine(cfg)
    business = {"name": "Plomberie Gagnon"}
    for _ in range(3):
        assert not engine.llm_ready()
        assert engine.extract("Bonjour c'est Luc Roy, rappelez-moi au 514 555 0101.", None, business,
                              "fr")["phone"] == "+15145550101"
    assert len(children) == 1  # checked once for this file, not per voicemail
    monkeypatch.setattr(subprocess, "run", real_run)
    models.forget()
    assert models.check_llm(cfg).ok  # the real child answers with the tiny model


def test_a_failure_that_may_pass_is_checked_again_later(cfg, monkeypatch):
    """A GPU out of memory while two loads overlap is not a damaged file forever."""
    import faster_whisper

    real = faster_whisper.WhisperModel
    calls = []

    def once_out_of_memory(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA failed with error out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(faster_whisper, "WhisperModel", once_out_of_memory)
    assert models.check_whisper(cfg).code == "damaged"
    assert models.check_whisper(cfg).code == "damaged"  # remembered for a while: not reloaded per voicemail
    monkeypatch.setattr(models, "RECHECK_AFTER_S", 0.0)
    assert models.check_whisper(cfg).ok
    assert len(calls) == 2
