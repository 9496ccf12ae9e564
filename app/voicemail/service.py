"""The models service: the speech and language models of one GPU box, shared by several
web boxes.

Each web box keeps its own data directory, capteo.db, queues and every step of the
voicemail pipeline (app.voicemail.process: leases, state moves, retries); only the work
of the models is sent here, by the web box's own models' worker, through `RemoteEngine`
(`[models] service_url`). The service is stateless: it keeps nothing between requests
and writes nothing to disk (audio is decoded from memory); a request it cannot answer
is an error the web box records on the voicemail and retries with its back-off.

    run.py models-serve [--host H] [--port P]      on the GPU box (default 127.0.0.1:8100)

Every route needs `Authorization: Bearer <token>`, the GPU box's
`config.secret("models_service")` (CAPTEO_SECRET_MODELS_SERVICE, or generated into
<data dir>/secrets/models_service); each web box is given a copy
(CAPTEO_SECRET_MODELS_SERVICE or its own data/secrets/models_service).

    GET  /v1/health      {"models": models.health() of both models, "served": counts per route}
    POST /v1/transcribe  audio bytes -> {"transcript", "language"}
    POST /v1/extract     {"transcript", "caller_id", "business": {"name"}, "language"} -> ModelEngine.extract()
    POST /v1/chat        {"messages", "language"} -> llama-cpp-python's create_chat_completion() answer,
                         with the chat assistant's own options for that language (none come from the wire)

One request at a time per model: the speech model and the language model each have
their own engine and turn, so a long transcription does not hold up the chat. A request
waits for its model's turn at most `[models] service_timeout_seconds` (the chat: 30 s),
then gets 503. Bodies are limited (`[voicemail] max_bytes` for audio, `[server]
max_body_bytes` for JSON) and must arrive within `[server] request_timeout` (audio:
`[voicemail] upload_timeout`). Errors are JSON `{"error": "plain words"}` with a 4xx or
503. The log has one line per request (method, route, status, time: app.http_limits
AccessLog) and errors by type only: never a transcript, a name, a number or audio.

The GPU box's own `[models]` keys choose the models and what the language model may
change (`llm_fields`); the web boxes' are not used for the work.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from litestar import Litestar, Request, Response, get, post
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from app.config import Config, find_secret
from app.voicemail import models

if TYPE_CHECKING:  # imported where a request is made (app.messaging.client says why)
    import httpx

log = logging.getLogger("capteo.models_service")

SECRET = "models_service"
DEFAULT_PORT = 8100
HEALTH_TTL_S = 5.0  # a web box asks the service's health at most this often
HEALTH_TIMEOUT_S = 5.0  # and waits this long for it at most (/healthz never waits: background)
CONNECT_TIMEOUT_S = 5.0
CHAT_WAIT_S = 30.0  # the chat's visitor waits: the language model's turn no longer than this (app.chat.assistant)
CHAT_TIMEOUT_S = 60.0
KINDS = ("whisper", "llm")

MAX_MESSAGES = 40
MAX_TEXT_CHARS = 50_000
# The most a web box reads of one answer: a transcript, an extraction, a chat answer or the
# health are kilobytes. More is not the service's answer (a wrong address, a broken proxy):
# the read stops there and the step fails as for any error of the service.
MAX_ANSWER_BYTES = 2 << 20


def private_or_tls(url: str) -> bool:
    """https://, or plain http:// to a loopback or private address (a LAN, a VPN): what may carry
    audio and the token. A name is trusted only as "localhost" (it could resolve anywhere)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def safe_url(url: str) -> str:
    """The service's address as shown in messages: scheme, host, port, path (config
    validation already refuses a user, password, query or fragment)."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path.rstrip('/')}"


# =================================================================================================
# The server (the GPU box)
# =================================================================================================

class Refused(HTTPException):
    """A request the service answers with plain words and a 4xx or 503."""


class _InMemory:
    """What app.voicemail.audio.decode reads of a stored file (its bytes), for audio that
    never touches this box's disk."""

    name = "upload"

    def __init__(self, data: bytes):
        self._data = data

    def read_bytes(self) -> bytes:
        return self._data


class Models:
    """The GPU box's models: one engine per model, each with its own turn and its own
    thread, which loads that model and does all of its work.

    One long-lived thread per model, not whichever thread serves the request: measured
    on this project's 2-core CPU box, with both models loaded by one thread that then
    ended, every later transcription (the tiny models, an 8.7 s message) took 52 s instead
    of 0.6 s, from any thread. The cause was not pinned down (the two libraries' OpenMP
    thread pools, most likely); models loaded and used by threads that stay were fast."""

    def __init__(self, config: Config):
        from app.voicemail.engine import ModelEngine

        self.config = config
        self.speech = ModelEngine(config)  # only its speech model is ever loaded
        self.language = ModelEngine(config)  # only its language model is ever loaded
        self._speech_turn = threading.Lock()
        self._language_turn = threading.Lock()
        self._speech_thread = ThreadPoolExecutor(1, thread_name_prefix="capteo-speech")
        self._language_thread = ThreadPoolExecutor(1, thread_name_prefix="capteo-language")
        self._served = dict.fromkeys(("transcribe", "extract", "chat"), 0)
        self._served_lock = threading.Lock()
        self._loading: set[str] = set()  # the kinds whose load is queued or under way on their thread

    def warm(self) -> None:
        """Load both models once at start-up (off the request path), each in its own thread:
        the first request is not the one that waits, and /v1/health says at once whether
        they are usable."""
        for kind in KINDS:
            self._load(kind)

    def _load(self, kind: str) -> None:
        """Load one model on its own thread, unless that is queued or under way already. The
        thread loads through the engine's slot, which keeps what it loaded: a second load of
        the same file never happens, whoever asks."""
        thread, ready = ((self._speech_thread, self.speech.speech_ready) if kind == "whisper"
                         else (self._language_thread, self.language.llm_ready))
        with self._served_lock:
            if kind in self._loading:
                return
            self._loading.add(kind)

        def load() -> None:
            try:
                ready()
            except Exception as e:  # said by health(); never takes the service down
                log.error("loading a model failed: %s", type(e).__name__)
            finally:
                with self._served_lock:
                    self._loading.discard(kind)

        thread.submit(load)

    def health(self) -> dict[str, dict]:
        """models.health() of the two models, from what is known of them: never loads one on
        the caller's thread. models.health() itself would validate a model not known yet in a
        thread of its own: a second load of the speech model beside warm()'s (twice the memory
        of a GPU), a second test answer of the language model. A model not known yet (warm()
        still loading it, its file changed, a passing failure due for another try) is
        "checking", and its own thread loads it, once (`_load`)."""
        out: dict[str, dict] = {}
        for kind, slot in (("whisper", self.speech._speech_slot), ("llm", self.language._llm_slot)):
            path = slot.path
            present = (path / "model.bin").is_file() if kind == "whisper" else path.is_file()
            key = slot._current_key()
            check = models._cached(key)
            if check is None and slot._model is not None and slot._key == key:
                check = models.OK  # loaded, and its result forgotten since (models.forget())
            if check is None and kind == "whisper":
                check = models._whisper_files_check(path)  # cheap: missing files, vocabulary
            elif check is None and not present:
                check = models._gguf_check(path, self.config.models.llm_chat_format)  # "missing", nothing loaded
            if check is None:
                self._load(kind)
            name = models.whisper_model_name(self.config) if kind == "whisper" else path.name
            out[kind] = {"name": name, "path": str(path), "present": present,
                         "usable": None if check is None else check.ok,
                         **(asdict(check) if check else {"ok": None, "code": "checking", "problem": "", "fix": ""})}
        return out

    def served(self) -> dict[str, int]:
        with self._served_lock:
            return dict(self._served)

    def _count(self, route: str) -> None:
        with self._served_lock:
            self._served[route] += 1

    def _turn_wait(self) -> float:
        """How long a request waits for its model's turn: half of `service_timeout_seconds`, which
        is also the clients' whole timeout. Waiting all of it, the work would start for a client
        that has given up (and retries: more work queued for nobody); a busy answer (503) instead
        lets its voicemail wait a minute without spending a try."""
        return self.config.models.service_timeout_seconds / 2

    @contextmanager
    def _turn(self, lock: threading.Lock, what: str, wait: float) -> Iterator[None]:
        if not lock.acquire(timeout=wait):
            raise Refused(status_code=503, detail=f"the {what} stayed busy {wait:.0f} s; try again later")
        try:
            yield
        finally:
            lock.release()

    def transcribe(self, data: bytes) -> dict[str, str]:
        from app.voicemail import audio, models

        try:
            audio.probe(data, self.config.voicemail.max_seconds, self.config.voicemail.max_bytes)
        except audio.AudioRejected as e:
            raise Refused(status_code=422, detail=str(e)) from None
        with self._turn(self._speech_turn, "speech model", self._turn_wait()):
            self._count("transcribe")
            try:
                text, language = self._speech_thread.submit(
                    self.speech.transcribe, cast(Path, _InMemory(data)), {}).result()
            except models.ModelUnusable as e:
                raise Refused(status_code=503, detail=str(e)) from None
            except audio.AudioRejected as e:
                raise Refused(status_code=422, detail=str(e)) from None
        return {"transcript": text, "language": language}

    def extract(self, asked: Any) -> dict:
        if not isinstance(asked, dict):
            raise Refused(status_code=400, detail="expected a JSON object")
        transcript, caller_id = asked.get("transcript"), asked.get("caller_id")
        business, language = asked.get("business") or {}, asked.get("language") or "fr"
        if not isinstance(transcript, str) or len(transcript) > MAX_TEXT_CHARS:
            raise Refused(status_code=400, detail=f"transcript must be a text of at most {MAX_TEXT_CHARS} characters")
        if caller_id is not None and (not isinstance(caller_id, str) or len(caller_id) > 64):
            raise Refused(status_code=400, detail="caller_id must be a short text or null")
        name = business.get("name") if isinstance(business, dict) else None
        if name is not None and (not isinstance(name, str) or len(name) > 500):
            raise Refused(status_code=400, detail="business must be {\"name\": a short text or null}")
        if language not in ("fr", "en"):
            raise Refused(status_code=400, detail="language must be \"fr\" or \"en\"")
        with self._turn(self._language_turn, "language model", self._turn_wait()):
            self._count("extract")
            return self._language_thread.submit(
                self.language.extract, transcript, caller_id, {"name": name or ""}, language).result()

    def chat(self, asked: Any) -> dict:

        if not isinstance(asked, dict):
            raise Refused(status_code=400, detail="expected a JSON object")
        messages, language = asked.get("messages"), asked.get("language")
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES or not all(
                isinstance(m, dict) and set(m) == {"role", "content"} and m["role"] in ("system", "user", "assistant")
                and isinstance(m["content"], str) and len(m["content"]) <= MAX_TEXT_CHARS for m in messages):
            raise Refused(status_code=400, detail=f"messages must be 1 to {MAX_MESSAGES} objects of a role (system, "
                                                  f"user or assistant) and a content text")
        if language not in ("fr", "en"):
            raise Refused(status_code=400, detail="language must be \"fr\" or \"en\"")
        # The completion's options (its JSON schema and grammar among them) are the assistant's own,
        # decided here: a caller's schema would reach llama-cpp's grammar builder (a minLength of a
        # billion is gigabytes of grammar, a remote $ref a fetch from this box).
        from app.chat import assistant

        options = assistant.completion_options(language)
        wait = min(CHAT_WAIT_S, self.config.models.service_timeout_seconds)
        def complete() -> dict:
            with self.language._lock:
                try:
                    llm = self.language._llm_model()
                except models.ModelUnusable as e:
                    raise Refused(status_code=503, detail=str(e)) from None
                return dict(llm.create_chat_completion(messages=messages, **options))

        with self._turn(self._language_turn, "language model", wait):
            self._count("chat")
            return self._language_thread.submit(complete).result()


def _models(request: Request) -> Models:
    return cast(Models, request.app.state.models)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past Python's limit
        raise Refused(status_code=400, detail="the body is not JSON") from None


@get("/v1/health", sync_to_thread=True)
def health_route(request: Request) -> dict[str, Any]:
    work = _models(request)
    return {"models": work.health(), "served": work.served()}


@post("/v1/transcribe", status_code=200, opt={"large_upload": True})
async def transcribe_route(request: Request) -> dict[str, str]:
    from anyio import to_thread

    data = await request.body()
    return await to_thread.run_sync(_models(request).transcribe, data)


@post("/v1/extract", status_code=200)
async def extract_route(request: Request) -> dict:
    from anyio import to_thread

    asked = await _json(request)
    return await to_thread.run_sync(_models(request).extract, asked)


@post("/v1/chat", status_code=200)
async def chat_route(request: Request) -> dict:
    from anyio import to_thread

    asked = await _json(request)
    return await to_thread.run_sync(_models(request).chat, asked)


_PLAIN = {400: "the request is not what this service expects", 404: "no such route on the models service",
          405: "this route does not take that method", 408: "the request's body arrived too slowly",
          413: "the request's body is larger than the models service accepts"}


def _http_error(request: Request, exc: HTTPException) -> Response:
    said = exc.detail if isinstance(exc, Refused) else _PLAIN.get(exc.status_code, "refused")
    return Response({"error": said}, status_code=exc.status_code, headers={"connection": "close"}
                    if exc.status_code in (408, 413) else None)


def _internal_error(request: Request, exc: Exception) -> Response:
    # The type only: an exception's message may quote what it was working on.
    log.error("%s %s failed: %s", request.method, request.scope.get("path_template") or "?", type(exc).__name__)
    return Response({"error": "the models service failed on this request"}, status_code=500)


class BearerAuth:
    """Around the whole app: a request without the service's token is answered 401 before
    anything of it is read or routed (and its connection closed)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "this service needs Authorization: Bearer <token>, the GPU box's "
                                    "CAPTEO_SECRET_MODELS_SERVICE (or data/secrets/models_service)"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"www-authenticate", b"Bearer"), (b"connection", b"close")]
        start: HTTPResponseStartEvent = {"type": "http.response.start", "status": 401, "headers": headers}
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})


def create_app(config: Config, token: str, *, warm: bool = True) -> ASGIApp:
    """The service as an ASGI app: token, then body limits and deadlines, then the routes."""
    from app.http_limits import AccessLog, RequestLimits, size_uploads

    work = Models(config)

    def start() -> None:
        if warm:
            threading.Thread(target=work.warm, name="capteo-models-warm", daemon=True).start()

    app = Litestar(
        route_handlers=[health_route, transcribe_route, extract_route, chat_route],
        on_startup=[start],
        request_max_body_size=config.server.max_body_bytes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        openapi_config=None,
        logging_config=None,
    )
    app.state.models = work
    size_uploads(app, config.voicemail.max_bytes)
    return AccessLog(BearerAuth(RequestLimits(app, config), token))


def serve(config: Config, host: str, port: int) -> int:
    """`run.py models-serve`: until SIGTERM or SIGINT (requests under way finish first)."""
    import signal

    import uvicorn

    from app.http_limits import h11_with_header_timeout

    if config.models.service_url:
        print("models-serve: [models] service_url is set in this box's configuration: the GPU box runs the "
              "models itself; leave it empty here", flush=True)
        return 2
    config.ensure_dirs()  # the models' directory and secrets/; nothing else is written here
    token = config.secret(SECRET)
    server = uvicorn.Server(uvicorn.Config(
        create_app(config, token), host=host, port=port, log_level="info", access_log=False,
        proxy_headers=False, server_header=False, http=h11_with_header_timeout(config.server.request_timeout),
        timeout_graceful_shutdown=10))
    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises the stop signal: exit 0, not "killed"
        signal.signal(sig, lambda signum, frame: None)
    where = "CAPTEO_SECRET_MODELS_SERVICE" if config.provider_secret(SECRET) else \
        str(config.data_dir / "secrets" / SECRET)
    print(f"models service listening on http://{host}:{port}/ (models: {config.models_dir}; token: {where}, "
          f"to copy to each web box)", flush=True)
    server.run()
    return 0


# =================================================================================================
# The client (each web box)
# =================================================================================================

class ServiceError(RuntimeError):
    """The models service could not do the work; the message is plain words, never what was
    sent. `code`: service_down (no answer in time), service_refused (the token),
    service_error (an answer that is an error, or not the service's)."""

    def __init__(self, message: str, code: str = "service_error"):
        super().__init__(message)
        self.code = code
        # Down, refused or busy: the voicemail pipeline waits without spending a try.
        self.unavailable = code in ("service_down", "service_refused", "service_busy")


def _token(config: Config) -> str:
    token = find_secret(config.data_dir, SECRET)  # never generated here: it is the GPU box's
    if not token:
        raise ServiceError(f"no token for the models service at {safe_url(config.models.service_url)}: set "
                           f"CAPTEO_SECRET_MODELS_SERVICE (a copy of the GPU box's data/secrets/{SECRET})",
                           "service_refused")
    return token


def _said(status: int, body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, RecursionError):
        error = None
    return str(error)[:200] if error else f"status {status}"


def _read(response: httpx.Response, where: str, timeout: float, deadline: float) -> bytes:
    """The answer's body, read as it arrives: MAX_ANSWER_BYTES at most, all of it by `deadline`
    (httpx's timeouts are per read: an answer dripping a byte at a time would hold the worker
    for ever). As sent: an encoding would be decompressed past the limit before it is counted."""
    too_long = ServiceError(f"the models service at {where} answered more than {MAX_ANSWER_BYTES >> 20} MiB: "
                            f"not an answer of the models service")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise too_long
    if response.headers.get("content-encoding", "identity").strip().lower() not in ("identity", ""):
        raise ServiceError(f"the models service at {where} answered in an encoding it was not asked for")
    body = bytearray()
    # Each read waits at most the timeout; the whole answer, until the deadline: then the
    # answer is closed under the read that waits (it ends with an error, said as a timeout).
    late = threading.Event()

    def cut() -> None:
        late.set()
        # A read that waits is woken by shutting the socket down under it (closing the
        # response from this thread would not wake it, and is not this thread's to do).
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        for chunk in response.iter_raw():
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise too_long
    except Exception:
        if late.is_set():
            raise ServiceError(f"the models service at {where} did not answer within {timeout:g} s",
                               "service_down") from None
        raise
    finally:
        watchdog.cancel()
    return bytes(body)


def _call(client: httpx.Client, config: Config, method: str, route: str, timeout: float, **kwargs: Any) -> Any:
    """One request to the service; its JSON answer, or ServiceError in plain words."""
    import httpx

    where = safe_url(config.models.service_url)
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {_token(config)}", "Accept-Encoding": "identity",
               **kwargs.pop("headers", {})}
    try:
        with client.stream(method, config.models.service_url.rstrip("/") + route, headers=headers,
                           timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)),
                           **kwargs) as response:
            status = response.status_code
            body = b"" if status == 401 else _read(response, where, timeout, deadline)
    except httpx.TimeoutException:
        raise ServiceError(f"the models service at {where} did not answer within {timeout:g} s",
                           "service_down") from None
    except httpx.HTTPError as e:
        raise ServiceError(f"the models service at {where} does not answer ({type(e).__name__})",
                           "service_down") from None
    if status == 401:
        raise ServiceError(f"the models service at {where} refused this box's token", "service_refused")
    if status == 503:
        raise ServiceError(f"the models service at {where} is busy or its model unusable: {_said(status, body)}",
                           "service_busy")
    if status != 200:
        raise ServiceError(f"the models service at {where} answered {status}: {_said(status, body)}")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: "[[[[…" nested past Python's limit
        raise ServiceError(f"the models service at {where} answered something that is not JSON") from None


# ---- the answers' shapes ----------------------------------------------------------------------------
# What the local engine returns, checked field by field before the pipeline stores it or the
# assistant reads it; anything else is an error of the service (the step is tried again later).

def _wrong_shape(what: str) -> ServiceError:
    return ServiceError(f"the models service answered {what} of the wrong shape")


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def transcription(answer: Any) -> tuple[str, str]:
    """ModelEngine.transcribe()'s (text, "fr" | "en"), from {"transcript", "language"}: a text
    that /v1/extract accepts in turn."""
    if not isinstance(answer, dict) or not isinstance(answer.get("transcript"), str) \
            or len(answer["transcript"]) > MAX_TEXT_CHARS or answer.get("language") not in ("fr", "en"):
        raise _wrong_shape("a transcription")
    return answer["transcript"], answer["language"]


def extraction(answer: Any) -> dict:
    """ModelEngine.extract()'s dict: every field of rules.Extracted, texts or null, `urgent` a
    boolean, `language` "fr" or "en". Only those fields are kept."""
    from app.extraction.rules import Extracted

    names = [f.name for f in fields(Extracted)]
    if not isinstance(answer, dict) or not all(name in answer for name in names):
        raise _wrong_shape("an extraction")
    out = {name: answer[name] for name in names}
    if not isinstance(out["urgent"], bool) or out["language"] not in ("fr", "en") or not all(
            _text_or_none(v) for k, v in out.items() if k not in ("urgent", "language")):
        raise _wrong_shape("an extraction")
    return out


def completion(answer: Any) -> dict:
    """What the chat assistant reads of llama-cpp-python's create_chat_completion() answer:
    choices, each a message whose content is a text (or null) and a finish_reason. Only those
    are kept."""
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices:
        raise _wrong_shape("a chat completion")
    kept = []
    for index, choice in enumerate(choices):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or not _text_or_none(message.get("content")) \
                or not _text_or_none(choice.get("finish_reason")):
            raise _wrong_shape("a chat completion")
        kept.append({"index": index, "message": {"role": "assistant", "content": message.get("content")},
                     "finish_reason": choice.get("finish_reason")})
    return {"object": "chat.completion", "choices": kept}


# ---- health, cached ---------------------------------------------------------------------------------

_health: dict[tuple[str, str], tuple[float, dict[str, dict]]] = {}
_refreshing: dict[tuple[str, str], threading.Thread] = {}
_health_lock = threading.Lock()


def _key(config: Config) -> tuple[str, str]:
    return config.models.service_url, str(config.data_dir)


def _every(config: Config, *, usable: bool | None, code: str, problem: str = "", fix: str = "") -> dict[str, dict]:
    where = safe_url(config.models.service_url)
    names = {"whisper": config.models.whisper, "llm": config.models.llm_file}
    return {kind: {"name": names[kind], "path": where, "present": False, "usable": usable, "ok": usable,
                   "code": code, "problem": problem, "fix": fix, "service": where} for kind in KINDS}


def _ask_health(config: Config, timeout: float) -> dict[str, dict]:
    """The service's own answer, per model; a service that does not answer (or refuses)
    is both models unusable, with the reason in plain words."""
    import httpx

    where = safe_url(config.models.service_url)
    try:
        with httpx.Client(trust_env=False) as client:
            answer = _call(client, config, "GET", "/v1/health", timeout)
        state = answer["models"]
        out = {kind: {**state[kind], "service": where} for kind in KINDS}
        if not all({"usable", "code", "problem", "fix", "name"} <= set(v) for v in out.values()):
            raise KeyError("models")
    except ServiceError as e:
        fix = {"service_down": "start `run.py models-serve` on the GPU box, or check [models] service_url and "
                               "the network between the boxes",
               "service_refused": f"copy the GPU box's data/secrets/{SECRET} into CAPTEO_SECRET_MODELS_SERVICE "
                                  "on this box"}.get(e.code, "see the models service's log on the GPU box")
        problem = f"the models service at {where} does not answer" if e.code == "service_down" else str(e)
        return _every(config, usable=False, code=e.code, problem=problem, fix=fix)
    except (KeyError, TypeError, AttributeError):
        return _every(config, usable=False, code="service_error",
                      problem=f"what answers at {where} is not Capteo's models service",
                      fix="check [models] service_url: `run.py models-serve` on the GPU box")
    return out


def _remember(config: Config, state: dict[str, dict]) -> dict[str, dict]:
    with _health_lock:
        _health[_key(config)] = (time.monotonic(), state)
    return state


def fresh_health(config: Config) -> dict[str, dict]:
    """The service's health, asked now unless known within HEALTH_TTL_S (waits HEALTH_TIMEOUT_S at most)."""
    with _health_lock:
        known = _health.get(_key(config))
    if known is not None and time.monotonic() - known[0] < HEALTH_TTL_S:
        return known[1]
    return _remember(config, _ask_health(config, HEALTH_TIMEOUT_S))


def remote_health(config: Config, *, wait: bool = False) -> dict[str, dict]:
    """models.health() where `[models] service_url` is set: the service's answer. Without
    `wait`, never waits: the last answer (asked again in the background once older than
    HEALTH_TTL_S), or "checking" (usable None) before the first one arrives."""
    if wait:
        return _remember(config, _ask_health(config, min(config.models.service_timeout_seconds, 10.0)))
    key = _key(config)
    with _health_lock:
        known = _health.get(key)
        if known is None or time.monotonic() - known[0] >= HEALTH_TTL_S:
            running = _refreshing.get(key)
            if running is None or not running.is_alive():
                thread = threading.Thread(target=lambda: _remember(config, _ask_health(config, HEALTH_TIMEOUT_S)),
                                          name="capteo-models-service-health", daemon=True)
                _refreshing[key] = thread
                thread.start()
    return known[1] if known is not None else _every(config, usable=None, code="checking")


def forget() -> None:
    """Drop every remembered answer (tests)."""
    with _health_lock:
        _health.clear()


# ---- the engine -------------------------------------------------------------------------------------

class RemoteLLM:
    """The part of llama_cpp.Llama the chat assistant calls, answered by the service."""

    def __init__(self, engine: RemoteEngine):
        self.engine = engine

    def create_chat_completion(self, messages: list[dict[str, str]], **options: Any) -> dict:
        """The assistant's options are one of its two (French, English): the service applies its own
        copy of them, so only the language travels."""
        from app.chat import assistant

        language = next((lang for lang in ("fr", "en") if options == assistant.completion_options(lang)), None)
        if language is None:
            raise ServiceError("the models service answers the chat assistant's own completions only")
        timeout = min(self.engine.config.models.service_timeout_seconds, CHAT_TIMEOUT_S)
        return completion(self.engine._call("POST", "/v1/chat", timeout,
                                            json={"messages": messages, "language": language}))


class RemoteEngine:
    """What the voicemail pipeline and the chat assistant use of ModelEngine, done by the
    models service. Any failure to reach it raises ServiceError: the pipeline records a
    failed try and retries with its back-off; the assistant sends the guided reply."""

    def __init__(self, config: Config):
        import httpx

        self.config = config
        # The assistant's turn in this process (app.chat.assistant.ask takes it); the
        # service keeps its own, per model, for all the web boxes.
        self._lock = threading.Lock()
        # Not the environment's proxies: audio and the token go to the service and nowhere else.
        self._http = httpx.Client(trust_env=False)
        self._llm = RemoteLLM(self)

    def _call(self, method: str, route: str, timeout: float, **kwargs: Any) -> Any:
        return _call(self._http, self.config, method, route, timeout, **kwargs)

    def _state(self, kind: str) -> dict:
        return fresh_health(self.config)[kind]

    def speech_ready(self) -> bool:
        """The service's speech model is usable. While the service does not answer (or refuses
        the token), voicemails wait for it as for a speech model not installed yet: no try is
        spent, and the sweep wakes them once it answers (a GPU box's reboot must not turn every
        voicemail of the hour into a failed one)."""
        return self._state("whisper")["usable"] is True

    def transcribe(self, path: Path, business: dict) -> tuple[str, str]:
        timeout = self.config.models.service_timeout_seconds
        return transcription(self._call("POST", "/v1/transcribe", timeout, content=path.read_bytes(),
                                        headers={"content-type": "application/octet-stream"}))

    def extract(self, transcript: str, caller_id: str | None, business: dict, language: str) -> dict:
        """The service's extraction, grounded again here as the local engine grounds its model's
        answer: a value the transcript (or the caller id) does not hold, a phone or a postal code
        that is not one, a need past its length, is not taken from the service, whatever it
        answers (a wrong address, a service of another version, a compromised box)."""
        from app.extraction import grounding, rules
        from app.voicemail.engine import not_the_business

        answer = extraction(self._call("POST", "/v1/extract", self.config.models.service_timeout_seconds,
                                       json={"transcript": transcript, "caller_id": caller_id,
                                             "business": {"name": business.get("name") or ""}, "language": language}))
        name = business.get("name") or None
        base = rules.extract(transcript, caller_id, business=name).as_dict()
        # The service applied its own llm_fields; here each of its values only has to be grounded.
        merged = grounding.merge(base, answer, transcript, caller_id,
                                 policy=dict.fromkeys(grounding.MODEL_FIELDS, "model"))
        return not_the_business(merged, base, name)

    def llm_ready(self) -> bool:
        """The service's language model is usable (a service that does not answer: not)."""
        return self._state("llm")["usable"] is True

    def _llm_model(self) -> RemoteLLM:
        return self._llm

    def close(self) -> None:
        self._http.close()


models.REMOTE_HEALTH = remote_health
