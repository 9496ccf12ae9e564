"""What a web box takes from the models service (app/voicemail/service.py), against a real
local HTTP server standing where the service should be: an answer of any size is read up to
MAX_ANSWER_BYTES and no further, an answer that arrives a byte at a time no longer than the
timeout, an answer of the wrong shape is refused; each is an error of the service, recorded
on the voicemail and tried again. And the service's own /v1/health, asked while the models
load at start-up (the tiny generated models), never loads one a second time."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from app import config as config_mod
from app import voicemail
from app.chat import assistant
from app.voicemail import models, service
from app.voicemail.service import MAX_ANSWER_BYTES, RemoteEngine, ServiceError
from tests.support.people import make_business
from tests.support.tiny_models import FAST, install_models, tiny_models_dir

TOKEN = "models-service-test-token-0123456789"
CALLER = "+14385550123"
SAID = "Bonjour, c'est Luc Roy. Rappelez-moi au 514 555 0101, j'ai une fuite d'eau."
USABLE = {kind: {"name": kind, "path": "x", "present": True, "usable": True, "ok": True, "code": "ok",
                 "problem": "", "fix": ""} for kind in ("whisper", "llm")}
EXTRACTION = {"first_name": "Luc", "last_name": "Roy", "phone": "+15145550101", "email": None, "postal_code": None,
              "street_address": None, "need": "Fuite d'eau", "urgent": False, "language": "fr"}
COMPLETION = {"id": "x", "object": "chat.completion", "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "{}"}, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

Answer = Callable[[BaseHTTPRequestHandler], None]


def send_json(value: Any, status: int = 200) -> Answer:
    def answer(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps(value).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
    return answer


class FakeService:
    """A real HTTP server on loopback where the models service should be: /v1/health says both
    models usable; every other route answers what the test sets in `answers`. `sent` counts
    the bytes of body it managed to write."""

    def __init__(self) -> None:
        self.answers: dict[str, Answer] = {"/v1/health": send_json({"models": USABLE, "served": {}})}
        self.sent = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with contextlib.suppress(OSError):  # the client hung up: what the limits are for
                    fake.answers[self.path](self)

            do_GET = do_POST = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def write(self, h: BaseHTTPRequestHandler, data: bytes) -> None:
        h.wfile.write(data)
        h.wfile.flush()
        self.sent += len(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fake():
    srv = FakeService()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def no_remembered_health():
    service.forget()
    models.forget()
    yield
    service.forget()
    models.forget()


def web_box(config, url: str):
    (config.data_dir / "secrets" / service.SECRET).write_text(TOKEN + "\n")
    return config_mod.load(config.path, env={"CAPTEO_MODELS_SERVICE_URL": url})


def due_now(db, vm_id: int) -> None:
    """The failed try's back-off, skipped."""
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET next_attempt_at = '2000-01-01T00:00:00+00:00' WHERE id = ?", (vm_id,))


def huge(fake: FakeService, total: int = 256 << 20) -> Answer:
    """200, then a JSON text of `total` bytes, without a length (read until the server closes)."""
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.end_headers()
        fake.write(h, b'{"transcript": "')
        chunk = b"a" * (1 << 16)
        while fake.sent < total:
            fake.write(h, chunk)
    return answer


# ---- an answer of any size --------------------------------------------------------------------------

def test_an_answer_larger_than_the_limit_is_not_read_and_is_an_error_of_the_service(config, fake):
    engine = RemoteEngine(web_box(config, fake.url))
    fake.answers["/v1/extract"] = huge(fake)
    t0 = time.monotonic()
    with pytest.raises(ServiceError, match="answered more than 2 MiB") as caught:
        engine.extract(SAID, CALLER, {"name": "Plomberie Roy"}, "fr")
    assert caught.value.code == "service_error" and not caught.value.unavailable
    # The reading stopped at the limit: the server could write little more than the socket buffers hold.
    deadline = time.monotonic() + 5
    while fake.sent < MAX_ANSWER_BYTES and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert MAX_ANSWER_BYTES < fake.sent < 64 << 20, fake.sent
    assert time.monotonic() - t0 < 10

    # A length announced over the limit: refused before any of the body is read, at once.
    def announced(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(10 << 30))
        h.end_headers()
        fake.write(h, b'{"choices": [')
        time.sleep(3)  # the rest never comes: a client that waited for it would wait here

    fake.answers["/v1/chat"] = announced
    t0 = time.monotonic()
    with pytest.raises(ServiceError, match="answered more than 2 MiB"):
        engine._llm_model().create_chat_completion(messages=[{"role": "user", "content": "x"}],
                                                   **assistant.completion_options("fr"))
    assert time.monotonic() - t0 < 2
    # An error answer is held to the same limit (it is read for its plain words).
    fake.answers["/v1/extract"] = huge(fake)
    fake.sent = 0
    with pytest.raises(ServiceError, match="answered more than 2 MiB"):
        engine.extract(SAID, CALLER, {}, "fr")
    engine.close()


def _slow(config, fake, body: Callable[[BaseHTTPRequestHandler], None], timeout: float) -> float:
    """Seconds until the client gave up an answer whose headers come at once and whose
    1,000-byte body `body` writes (as the service not answering: service_down)."""
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", "1000")
        h.end_headers()
        body(h)

    fake.answers["/v1/extract"] = answer
    t0 = time.monotonic()
    with pytest.raises(ServiceError, match=f"did not answer within {timeout:g} s") as caught, \
            httpx.Client(trust_env=False) as client:
        service._call(client, web_box(config, fake.url), "POST", "/v1/extract", timeout, json={})
    assert caught.value.code == "service_down"
    return time.monotonic() - t0


def test_an_answer_that_drips_is_given_up_at_the_timeout(config, fake):
    """httpx's timeout is per read: a byte every 0.2 s never trips it. The whole answer must
    arrive within the timeout; past it, the service counts as not answering."""
    def drip(h: BaseHTTPRequestHandler) -> None:
        for _ in range(1000):
            fake.write(h, b" ")
            time.sleep(0.2)

    assert _slow(config, fake, drip, 1.0) < 3


def test_an_answer_that_stalls_is_given_up_at_the_timeout_not_a_read_later(config, fake):
    """Its first byte just before the timeout, then nothing: the read that waits is cut at the
    deadline, not a whole read timeout later (with the default 300 s, the voicemail's lease of
    10 minutes would run out meanwhile)."""
    def stall(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.8)
        fake.write(h, b" ")
        time.sleep(5)

    assert _slow(config, fake, stall, 1.5) < 2.2  # 0.8 + 1.5 = 2.3 s if the read were left to its own timeout


def test_an_answer_in_an_encoding_not_asked_for_is_refused(config, fake):
    """The client asks for the answer as is: a compressed one would be inflated past the limit
    before it could be counted (a few KiB of gzip make gigabytes)."""
    import gzip

    def zipped(h: BaseHTTPRequestHandler) -> None:
        body = gzip.compress(json.dumps(EXTRACTION).encode())
        h.send_response(200)
        h.send_header("content-type", "application/json")
        h.send_header("content-encoding", "gzip")
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    fake.answers["/v1/extract"] = zipped
    with pytest.raises(ServiceError, match="encoding it was not asked for"):
        RemoteEngine(web_box(config, fake.url)).extract(SAID, CALLER, {}, "fr")


def _received(db, cfg, recording) -> int:
    """A voicemail of a new business, received and not transcribed yet."""
    bid, _ = make_business(db, "roy", "Plomberie Roy", custom=False)
    vm_id, _ = voicemail.receive(db, cfg, business_id=bid, data=recording, caller_id=CALLER, source="upload",
                                 actor="t")
    return vm_id


def test_a_voicemail_whose_transcription_answer_is_too_large_spends_a_try_and_is_tried_again(config, db, fake,
                                                                                              recording):
    cfg = web_box(config, fake.url)
    vm_id = _received(db, cfg, recording)
    fake.answers["/v1/transcribe"] = huge(fake)
    engine = RemoteEngine(cfg)
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "received"
    vm = db.one("SELECT * FROM voicemails WHERE id = ?", (vm_id,))
    assert (vm["state"], vm["attempts"], vm["transcript"]) == ("received", 1, None)
    assert vm["error"].startswith("ServiceError: the models service at") and "more than 2 MiB" in vm["error"]
    # The service answers properly again: the next try goes through to one lead.
    fake.answers["/v1/transcribe"] = send_json({"transcript": SAID, "language": "fr"})
    fake.answers["/v1/extract"] = send_json(EXTRACTION)
    due_now(db, vm_id)
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "lead_created"
    assert db.one("SELECT count(*) AS n FROM leads")["n"] == 1
    engine.close()


# ---- an answer of the wrong shape -------------------------------------------------------------------

@pytest.mark.parametrize("answer", [
    [], "text", {"transcript": 12, "language": "fr"}, {"transcript": "x", "language": "de"},
    {"transcript": ["x"], "language": "fr"}, {"language": "fr"}, {"transcript": "x" * 50_001, "language": "fr"},
])
def test_a_transcription_of_the_wrong_shape_is_an_error_of_the_service(config, fake, tmp_path, answer):
    fake.answers["/v1/transcribe"] = send_json(answer)
    path = tmp_path / "m.wav"
    path.write_bytes(b"RIFF")
    with pytest.raises(ServiceError, match="a transcription of the wrong shape") as caught:
        RemoteEngine(web_box(config, fake.url)).transcribe(path, {})
    assert caught.value.code == "service_error"


@pytest.mark.parametrize("answer", [
    [], None, {}, {k: v for k, v in EXTRACTION.items() if k != "phone"},
    EXTRACTION | {"first_name": 5}, EXTRACTION | {"phone": ["+15145550101"]}, EXTRACTION | {"need": {"x": 1}},
    EXTRACTION | {"urgent": "yes"}, EXTRACTION | {"urgent": None}, EXTRACTION | {"language": "de"},
])
def test_an_extraction_of_the_wrong_shape_is_an_error_of_the_service(config, fake, answer):
    fake.answers["/v1/extract"] = send_json(answer)
    with pytest.raises(ServiceError, match="an extraction of the wrong shape") as caught:
        RemoteEngine(web_box(config, fake.url)).extract(SAID, CALLER, {}, "fr")
    assert caught.value.code == "service_error"


@pytest.mark.parametrize("answer", [
    {}, [], {"choices": []}, {"choices": {"0": {}}}, {"choices": ["x"]}, {"choices": [{"message": "x"}]},
    {"choices": [{"message": {"content": 3}, "finish_reason": "stop"}]},
    {"choices": [{"message": {"content": "{}"}, "finish_reason": 1}]},
])
def test_a_chat_answer_of_the_wrong_shape_is_an_error_of_the_service(config, fake, answer):
    fake.answers["/v1/chat"] = send_json(answer)
    with pytest.raises(ServiceError, match="a chat completion of the wrong shape"):
        RemoteEngine(web_box(config, fake.url))._llm_model().create_chat_completion(
            messages=[{"role": "user", "content": "x"}], **assistant.completion_options("en"))


def test_answers_of_the_right_shape_are_kept_to_what_was_checked(config, fake, tmp_path):
    engine = RemoteEngine(web_box(config, fake.url))
    fake.answers["/v1/extract"] = send_json(EXTRACTION | {"extra": "x" * 1000})
    assert engine.extract(SAID, CALLER, {}, "fr") == EXTRACTION
    fake.answers["/v1/chat"] = send_json(COMPLETION)
    answer = engine._llm_model().create_chat_completion(messages=[{"role": "user", "content": "x"}],
                                                        **assistant.completion_options("fr"))
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "{}"},
                                  "finish_reason": "stop"}]
    fake.answers["/v1/transcribe"] = send_json({"transcript": SAID, "language": "fr"})
    path = tmp_path / "m.wav"
    path.write_bytes(b"RIFF")
    assert engine.transcribe(path, {}) == (SAID, "fr")
    engine.close()


def test_a_voicemail_whose_extraction_answer_is_malformed_stores_nothing_and_is_tried_again(config, db, fake,
                                                                                             recording):
    cfg = web_box(config, fake.url)
    vm_id = _received(db, cfg, recording)
    fake.answers["/v1/transcribe"] = send_json({"transcript": SAID, "language": "fr"})
    fake.answers["/v1/extract"] = send_json(EXTRACTION | {"phone": {"$gt": ""}, "urgent": "yes"})
    engine = RemoteEngine(cfg)
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "transcribed"
    vm = db.one("SELECT * FROM voicemails WHERE id = ?", (vm_id,))
    assert (vm["state"], vm["attempts"], vm["extraction"], vm["transcript"]) == ("transcribed", 1, None, SAID)
    assert "an extraction of the wrong shape" in vm["error"]
    fake.answers["/v1/extract"] = send_json(EXTRACTION | {"extra": True})
    due_now(db, vm_id)
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "lead_created"
    stored = db.one("SELECT extraction FROM voicemails WHERE id = ?", (vm_id,))["extraction"]
    assert json.loads(stored) == EXTRACTION
    engine.close()


def test_what_the_service_extracts_is_grounded_again_on_the_web_box(config, db, fake, recording):
    """The attack of a review: any text of the right type was stored as the service answered it
    (a phone that is no phone, which also links the lead to another client's record; a name of
    a megabyte; a postal code geocoder.ca would be asked twelve times). The web box grounds the
    answer as the local engine grounds its model's: only values the transcript holds are kept."""
    cfg = web_box(config, fake.url)
    vm_id = _received(db, cfg, recording)
    fake.answers["/v1/transcribe"] = send_json({"transcript": SAID, "language": "fr"})
    fake.answers["/v1/extract"] = send_json(EXTRACTION | {
        "first_name": "Z" * 1_000_000, "last_name": "Gagnon", "phone": "not a phone; +15145550199",
        "postal_code": "H" * 5001, "email": "boss@example.com", "need": "N" * 100_000, "urgent": True})
    engine = RemoteEngine(cfg)
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "lead_created"
    lead = db.one("SELECT l.* FROM leads l JOIN voicemails v ON v.lead_id = l.id WHERE v.id = ?", (vm_id,))
    assert (lead["first_name"], lead["last_name"], lead["phone"]) == ("Luc", "Roy", "+15145550101")
    assert lead["email"] is None and lead["postal_code"] is None
    assert len(lead["need"]) <= 200
    engine.close()


# ---- the service's health while its models load ----------------------------------------------------

def test_health_asked_while_the_models_load_at_start_up_never_loads_one_again(config, monkeypatch):
    """/v1/health is asked from the first second (web boxes, `run.py check`): while warm()
    loads the models it says "checking", and loads nothing itself. The loads are counted
    where every path to them goes, and made a second longer, as a real model's is."""
    from litestar.testing import TestClient

    cfg = config_mod.load(config.path, env={**FAST, "CAPTEO_MODELS_WHISPER": "small"})
    install_models(cfg, tiny_models_dir())
    loads = {"whisper": 0, "llm_check": 0, "llm": 0}
    lock = threading.Lock()

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def load(*args: Any, **kwargs: Any) -> Any:
            with lock:
                loads[name] += 1
            time.sleep(1.0)
            return real(*args, **kwargs)
        return load

    monkeypatch.setattr(models, "_load_whisper", counted("whisper", models._load_whisper))
    monkeypatch.setattr(models, "_gguf_check", counted("llm_check", models._gguf_check))
    monkeypatch.setattr(models, "load_llm", counted("llm", models.load_llm))
    auth = {"authorization": f"Bearer {TOKEN}"}
    answers = []
    with TestClient(service.create_app(cfg, TOKEN), base_url="http://127.0.0.1") as client:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = client.get("/v1/health", headers=auth).json()["models"]
            answers.append({kind: (v["usable"], v["code"]) for kind, v in state.items()})
            if all(v["usable"] for v in state.values()):
                break
            time.sleep(0.02)
        time.sleep(0.5)  # a load started late by a health answer would have begun by now
        final = client.get("/v1/health", headers=auth).json()["models"]
    assert answers[0]["whisper"] == (None, "checking")  # asked while warm() loads it
    # Asked again and again while it loaded (how many times depends on the machine's load).
    assert sum(1 for a in answers if a["whisper"] == (None, "checking")) >= 3
    assert {kind: (v["usable"], v["code"]) for kind, v in final.items()} == {"whisper": (True, "ok"),
                                                                             "llm": (True, "ok")}
    assert loads == {"whisper": 1, "llm_check": 1, "llm": 1}


def test_health_loads_a_model_not_known_on_its_own_thread_once(config, monkeypatch):
    """A model the service no longer knows (its file replaced, a passing failure due for another
    try) is loaded again by its own thread, once, however often health is asked meanwhile."""
    cfg = config_mod.load(config.path, env={**FAST, "CAPTEO_MODELS_WHISPER": "small"})
    install_models(cfg, tiny_models_dir())
    work = service.Models(cfg)
    work.warm()
    deadline = time.monotonic() + 120
    while not all(v["usable"] for v in work.health().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    loaded = []
    real = models._load_whisper
    monkeypatch.setattr(models, "_load_whisper",
                        lambda *a: loaded.append(threading.current_thread().name) or time.sleep(0.5) or real(*a))
    # The speech model's file changes (a `models pull`): what is known of it no longer holds.
    model_bin = models.whisper_dir(cfg) / "model.bin"
    model_bin.write_bytes(model_bin.read_bytes())
    states = []
    while time.monotonic() < deadline:
        states.append(work.health()["whisper"]["usable"])
        if states[-1] is True:
            break
        time.sleep(0.01)
    assert states[0] is None and states[-1] is True and len(states) > 5
    assert len(loaded) == 1 and loaded[0].startswith("capteo-speech")  # the thread that serves the model
