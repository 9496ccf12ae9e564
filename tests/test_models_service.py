"""The models service (app/voicemail/service.py) for real: `run.py models-serve` with the
tiny generated models on a free port (the GPU box), and web boxes with no model of their
own (`[models] service_url`) whose voicemails and chat questions it answers over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import config as config_mod
from app import leads, migrations, voicemail
from app.chat import answers, assistant
from app.chat import flow as flow_mod
from app.db import Database
from app.voicemail import models, service
from app.voicemail.engine import ModelEngine
from app.voicemail.service import RemoteEngine, ServiceError
from tests.support.app import ROOT, ServerProcess, free_port, write_config
from tests.support.people import PBX_TOKEN, make_business, phone_shop
from tests.support.tiny_models import FAST, install_models

TOKEN = "models-service-test-token-0123456789"
MAX_BYTES = 1_000_000  # the service's [voicemail] max_bytes here
CALLER = "+14385550123"
SAID = "Bonjour, c'est Hélène Côté. Rappelez-moi au 514 555 0101. J'ai un dégât d'eau dans le sous-sol."
BUSINESS = flow_mod.Business(name="Plomberie Gagnon", fields=[], facts=answers.Facts(area=["H2X"], callback_hours=4))


class ModelsService:
    """`run.py models-serve` in its own process, with its own data directory (the GPU box's)
    holding the tiny models; the same port across restarts."""

    def __init__(self, directory: Path, tiny: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.config_path = write_config(directory)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTEO_")} | FAST | {
            "CAPTEO_MODELS_WHISPER": "small", "CAPTEO_SECRET_MODELS_SERVICE": TOKEN,
            "CAPTEO_VOICEMAIL_MAX_BYTES": str(MAX_BYTES)}
        config = config_mod.load(self.config_path, env=self.env)
        config.ensure_dirs()
        install_models(config, tiny)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "service.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Start, and wait until both models are loaded and usable; returns the seconds it took."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run.py"), "--config", str(self.config_path), "models-serve",
             "--port", str(self.port)], cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"models-serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                state = self.get("/v1/health").json()["models"]
                if all(state[kind]["usable"] for kind in ("whisper", "llm")):
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"models-serve did not answer within {timeout}s:\n{self.log.read_text()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def get(self, route: str, token: str | None = TOKEN, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + route, headers=headers, timeout=30, **kwargs)

    def post(self, route: str, token: str | None = TOKEN, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.url + route, headers=headers | kwargs.pop("headers", {}), timeout=60, **kwargs)

    def served(self) -> dict[str, int]:
        return self.get("/v1/health").json()["served"]


@pytest.fixture(scope="module")
def gpu(tmp_path_factory, tiny):
    srv = ModelsService(tmp_path_factory.mktemp("gpu-box"), tiny)
    srv.start()
    yield srv
    if srv.proc and srv.proc.poll() is None:
        assert srv.stop() == 0
    # Nothing personal in the service's log: no caller id, no business, nothing that was said.
    logged = srv.log.read_text()
    for said in (CALLER, "514 555", "Gagnon", "Hélène", "fournaise", "Tremblay"):
        assert said not in logged, said


@pytest.fixture(autouse=True)
def no_remembered_health():
    service.forget()
    yield
    service.forget()


def web_box(config, url: str, token: str | None = TOKEN):
    """This data directory as a web box served by the models service at `url`: the token
    copied into its secrets/ (as an operator does), and no model of its own."""
    if token:
        (config.data_dir / "secrets" / service.SECRET).write_text(token + "\n")
    cfg = config_mod.load(config.path, env={"CAPTEO_MODELS_SERVICE_URL": url})
    assert not any(cfg.models_dir.iterdir())
    return cfg


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


# ---- configuration ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url, ok", [
    ("https://gpu-box:8100", True), ("http://10.0.0.5:8100/", True), ("", True),
    ("gpu-box:8100", False), ("ftp://gpu-box", False), ("https://user:secret@gpu-box:8100", False),
    ("https://gpu-box:8100/?token=x", False),
])
def test_the_service_url_must_be_an_http_address_without_credentials(tmp_path, url, ok):
    path = write_config(tmp_path)
    if ok:
        assert config_mod.load(path, env={"CAPTEO_MODELS_SERVICE_URL": url}).models.service_url == url
    else:
        with pytest.raises(config_mod.ConfigError, match=r"\[models\] service_url"):
            config_mod.load(path, env={"CAPTEO_MODELS_SERVICE_URL": url})
    with pytest.raises(config_mod.ConfigError, match="service_timeout_seconds"):
        config_mod.load(path, env={"CAPTEO_MODELS_SERVICE_TIMEOUT_SECONDS": "0"})


# ---- the service's edge -----------------------------------------------------------------------------

@pytest.mark.slow
def test_every_route_needs_the_token_and_nothing_is_computed_without_it(gpu, recording, tmp_path):
    before = gpu.served()
    asks = [("GET", "/v1/health", {}),
            ("POST", "/v1/transcribe", {"content": recording}),
            ("POST", "/v1/extract", {"json": {"transcript": SAID, "caller_id": CALLER, "language": "fr"}}),
            ("POST", "/v1/chat", {"json": {"messages": [{"role": "user", "content": SAID}]}}),
            ("GET", "/nowhere", {})]
    for method, route, body in asks:
        for headers in ({}, {"authorization": "Bearer wrong-token"}, {"authorization": TOKEN},
                        {"authorization": f"bearer {TOKEN}x"}):
            r = httpx.request(method, gpu.url + route, headers=headers, timeout=30, **body)
            assert r.status_code == 401, (route, headers, r.status_code)
            assert "Authorization: Bearer" in r.json()["error"]
    assert gpu.served() == before  # nothing was transcribed, extracted or asked
    # A web box with the wrong token: its step fails in plain words; its health says why.
    wrong = config_mod.load(write_config(tmp_path), env={"CAPTEO_MODELS_SERVICE_URL": gpu.url})
    wrong.ensure_dirs()
    (wrong.data_dir / "secrets" / service.SECRET).write_text("not-the-token")
    with pytest.raises(ServiceError, match="refused this box's token"):
        RemoteEngine(wrong).extract(SAID, None, {"name": "x"}, "fr")
    state = models.health(wrong, wait=True)["whisper"]
    assert (state["usable"], state["code"]) == (False, "service_refused")
    assert "CAPTEO_SECRET_MODELS_SERVICE" in state["fix"]
    assert gpu.served() == before


@pytest.mark.slow
def test_bodies_over_the_limits_and_wrong_requests_get_plain_errors(gpu):
    before = gpu.served()
    big = gpu.post("/v1/transcribe", content=b"RIFF" + b"\0" * (MAX_BYTES + 1))
    assert big.status_code == 413 and "larger than the models service accepts" in big.json()["error"]
    big_json = gpu.post("/v1/extract", json={"transcript": "x" * 70_000, "caller_id": None, "language": "fr"})
    assert big_json.status_code == 413  # JSON routes take [server] max_body_bytes (64 KiB)
    not_audio = gpu.post("/v1/transcribe", content=b"hello, this is not audio at all" * 10)
    assert not_audio.status_code == 422 and not_audio.json()["error"]
    for route, body, said in [
        ("/v1/extract", b"{not json", "not JSON"),
        ("/v1/extract", json.dumps({"transcript": 12}).encode(), "transcript must be a text"),
        ("/v1/chat", json.dumps({"messages": []}).encode(), "messages must be"),
        ("/v1/chat", json.dumps({"messages": [{"role": "user", "content": "x"}], "language": "de"}).encode(),
         "language must be"),
        # The attack of a review: a schema of a billion characters for llama-cpp's grammar builder. No
        # option is taken from the wire: the language is missing, so it is refused before any model.
        ("/v1/chat", json.dumps({"messages": [{"role": "user", "content": "x"}], "options": {
            "response_format": {"type": "json_object", "schema": {"type": "string", "minLength": 10**9}}}}).encode(),
         "language must be"),
    ]:
        r = gpu.post(route, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and said in r.json()["error"], (route, r.text)
    assert gpu.get("/v1/nowhere").status_code == 404
    assert gpu.served() == before


# ---- a web box without models -----------------------------------------------------------------------

@pytest.mark.slow
def test_a_voicemail_left_on_a_web_box_without_models_becomes_one_lead_through_the_service(gpu, recording,
                                                                                            tmp_path):
    """A real web box (`run.py`, its own capteo.db, queue and models' worker) with
    `service_url` set and no model on disk: the phone system posts a voicemail; it is
    transcribed and extracted by the service; exactly one lead; /healthz reports the service."""
    web = ServerProcess(tmp_path, demo=False, extra_env={"CAPTEO_MODELS_SERVICE_URL": gpu.url})
    data = tmp_path / "data"
    (data / "secrets").mkdir(parents=True)
    (data / "secrets" / service.SECRET).write_text(TOKEN + "\n")
    migrations.apply(data / "capteo.db")
    db = Database(data / "capteo.db")
    try:
        phone_shop(db)
        web.start()
        before = gpu.served()
        t0 = time.monotonic()
        r = httpx.post(web.url + "/api/voicemail", files={"audio": ("message.wav", recording, "audio/wav")},
                       data={"caller_id": CALLER}, headers={"authorization": f"Bearer {PBX_TOKEN}"}, timeout=30)
        assert r.status_code == 201, r.text
        vm_id = r.json()["voicemail_id"]
        vm = wait_for(lambda: (row := db.one("SELECT * FROM voicemails WHERE id = ?", (vm_id,)))["state"]
                      in ("lead_created", "failed") and row, timeout=40)
        took = time.monotonic() - t0
        assert vm and vm["state"] == "lead_created", db.one("SELECT state, error FROM voicemails WHERE id = ?",
                                                            (vm_id,))
        print(f"\nupload -> lead through the models service: {took:.2f} s")
        assert vm["transcript"] is not None and vm["language"] in ("fr", "en")
        assert db.one("SELECT count(*) AS n FROM leads")["n"] == 1
        lead = db.one("SELECT * FROM leads WHERE id = ?", (vm["lead_id"],))
        assert lead["transcript"] == vm["transcript"] and lead["phone"] == CALLER
        assert json.loads(vm["extraction"])["language"] in ("fr", "en")
        after = gpu.served()
        assert after["transcribe"] == before["transcribe"] + 1 and after["extract"] == before["extract"] + 1
        assert not any((data / "models").iterdir())  # the web box never had a model
        # /healthz reports the service's answer (both usable), never this box's empty models directory.
        health = wait_for(lambda: (h := httpx.get(web.url + "/healthz", timeout=10).json())["models"]["whisper"]
                          ["usable"] is not None and h)
        assert health["models"]["whisper"]["usable"] is True and health["models"]["llm"]["usable"] is True
        assert 'capteo_model_usable{model="whisper"} 1.0' in httpx.get(web.url + "/metrics", timeout=10).text
    finally:
        assert web.stop() == 0
        db.close()
    # Nothing of the caller in the web box's log either.
    assert CALLER not in web.log.read_text()


@pytest.mark.slow
def test_while_the_service_is_down_the_voicemail_waits_then_ends_in_one_lead(gpu, db, config, recording):
    cfg = web_box(config, gpu.url)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    vm_id, _ = voicemail.receive(db, cfg, business_id=bid, data=recording, caller_id=CALLER, source="upload",
                                 actor="t")
    engine = RemoteEngine(cfg)
    assert gpu.stop() == 0
    try:
        # It waits as for a speech model not installed yet: no try spent, nothing failed.
        result = voicemail.process(db, cfg, engine, vm_id, "https://x")
        vm = db.one("SELECT * FROM voicemails WHERE id = ?", (vm_id,))
        assert (result.state, result.waiting_for) == ("received", "speech_model")
        assert (vm["state"], vm["attempts"], vm["error"]) == ("received", 0, None)
        # Health says so, in plain words, and `run.py check` too (exit 1).
        state = models.health(cfg, wait=True)
        assert {v["code"] for v in state.values()} == {"service_down"}
        assert state["whisper"]["problem"] == f"the models service at {gpu.url} does not answer"
        check = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(cfg.path), "check"], cwd=ROOT,
                               env={**{k: v for k, v in os.environ.items() if not k.startswith("CAPTEO_")},
                                    "CAPTEO_MODELS_SERVICE_URL": gpu.url}, capture_output=True, text=True,
                               timeout=120)
        assert check.returncode == 1, check.stdout
        assert f"models service: {gpu.url} NOT USABLE: the models service at {gpu.url} does not answer" \
            in check.stdout
    finally:
        gpu.start()
    # Once the service answers again (its health is asked again after a few seconds), on.
    deadline = time.monotonic() + 20
    while not engine.speech_ready() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "lead_created"
    vm = db.one("SELECT * FROM voicemails WHERE id = ?", (vm_id,))
    assert vm["transcript"] is not None and vm["attempts"] == 0 and vm["error"] is None
    assert db.one("SELECT count(*) AS n FROM leads")["n"] == 1
    assert leads.get(db, bid, vm["lead_id"])["transcript"] == vm["transcript"]
    assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "lead_created"
    assert db.one("SELECT count(*) AS n FROM leads")["n"] == 1


@pytest.mark.slow
def test_the_service_gives_what_the_engine_gives_in_process(gpu, config, tiny, recording, tmp_path):
    """The same tiny models, in this process and through the service: the same transcript
    and language, the same extraction. Timed, for the README."""
    cfg = web_box(config, gpu.url)
    remote = RemoteEngine(cfg)
    (tmp_path / "local").mkdir()
    local_cfg = config_mod.load(write_config(tmp_path / "local"), env={**FAST, "CAPTEO_MODELS_WHISPER": "small"})
    local_cfg.ensure_dirs()
    install_models(local_cfg, tiny)
    local = ModelEngine(local_cfg)
    path = tmp_path / "message.wav"
    path.write_bytes(recording)
    assert remote.speech_ready() and local.speech_ready()
    local.transcribe(path, {})  # both warm: the service loaded its models at start-up
    timings, heard = {}, {}
    for name, engine in (("in process", local), ("through the service", remote)):
        t0 = time.perf_counter()
        heard[name] = engine.transcribe(path, {"name": "Plomberie Gagnon"})
        timings[name] = time.perf_counter() - t0
    assert heard["through the service"] == heard["in process"]
    said = "Bonjour, c'est Luc Roy. Rappelez-moi au 514 555 0101, j'ai une fuite d'eau urgente."
    assert remote.extract(said, CALLER, {"name": "Plomberie Gagnon"}, "fr") == \
        local.extract(said, CALLER, {"name": "Plomberie Gagnon"}, "fr")
    print("\ntranscription of a 7 s message with the tiny models: "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))


# ---- the chat assistant -----------------------------------------------------------------------------

@pytest.mark.slow
def test_the_chat_assistant_asks_through_the_service_or_gives_the_guided_reply(gpu, config):
    text = "Bonjour, ma fournaise est brisée, je m'appelle Luc Tremblay"
    guided_flow = flow_mod.Flow()
    guided = flow_mod.turn(guided_flow, text, BUSINESS, "fr")

    engine = RemoteEngine(web_box(config, gpu.url))
    assert engine.llm_ready()
    before = gpu.served()["chat"]
    flow = flow_mod.Flow()
    said = assistant.reply(engine, flow, text, BUSINESS, "fr")
    assert gpu.served()["chat"] == before + 1
    # The tiny model's gibberish never gets through: the guided reply, or a fixed lead-in before it.
    assert said.text == guided.text or said.text.partition("\n")[2] == guided.text
    answer = engine._llm_model().create_chat_completion(
        messages=assistant.messages(flow_mod.Flow(), text, BUSINESS, "fr"), **assistant.completion_options("fr"))
    assert answer["choices"][0]["finish_reason"] in ("stop", "length")
    # Only the assistant's own options: anything else is not even sent.
    with pytest.raises(ServiceError, match="own completions only"):
        engine._llm_model().create_chat_completion(messages=[{"role": "user", "content": "x"}], max_tokens=10**6)
    assert gpu.served()["chat"] == before + 2

    # Nothing listens at the address: the guided reply, the model not asked, no error.
    down = RemoteEngine(config_mod.load(config.path, env={"CAPTEO_MODELS_SERVICE_URL":
                                                          f"http://127.0.0.1:{free_port()}"}))
    assert not down.llm_ready()
    flow = flow_mod.Flow()
    assert assistant.reply(down, flow, text, BUSINESS, "fr") == guided
    assert flow.dump() == guided_flow.dump()
    with pytest.raises(ServiceError, match="does not answer"):
        down._llm_model().create_chat_completion(messages=[{"role": "user", "content": "x"}],
                                                 **assistant.completion_options("en"))


# ---- health never waits -----------------------------------------------------------------------------

def test_health_never_waits_for_a_service_that_does_not_answer(config, monkeypatch):
    """/healthz, /metrics and the pages ask models.health(): with a service that takes the
    connection and never answers, they get "checking" at once, then "down" once the
    background question gave up; a worker's RemoteEngine waits HEALTH_TIMEOUT_S at most."""
    monkeypatch.setattr(service, "HEALTH_TIMEOUT_S", 1.0)
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # the kernel accepts connections; nobody ever reads or answers
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        cfg = web_box(config, url)
        t0 = time.perf_counter()
        state = models.health(cfg)
        assert time.perf_counter() - t0 < 0.2
        assert {(v["usable"], v["code"]) for v in state.values()} == {(None, "checking")}
        down = wait_for(lambda: models.health(cfg)["whisper"]["usable"] is False,
                        timeout=service.HEALTH_TIMEOUT_S + 5)
        assert down and models.health(cfg)["llm"]["code"] == "service_down"
        assert models.health(cfg)["llm"]["problem"] == f"the models service at {url} does not answer"
        service.forget()
        t0 = time.perf_counter()
        assert not RemoteEngine(cfg).speech_ready()  # down: voicemails wait for it, no try spent
        assert time.perf_counter() - t0 < service.HEALTH_TIMEOUT_S + 1
    assert not any(cfg.models_dir.iterdir())


def test_only_tls_or_a_private_network_may_carry_the_audio():
    from app.voicemail.service import private_or_tls

    assert private_or_tls("https://gpu.example.ca:8100")
    assert private_or_tls("http://127.0.0.1:8100") and private_or_tls("http://localhost:8100")
    assert private_or_tls("http://10.0.0.5:8100") and private_or_tls("http://192.168.1.20:8100")
    assert not private_or_tls("http://gpu.example.ca:8100")  # a name may resolve anywhere
    assert not private_or_tls("http://8.8.8.8:8100")
