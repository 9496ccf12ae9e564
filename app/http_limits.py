"""The server's edge: how much a request may send, how slowly, and what the access log
keeps of it, so that one hostile stranger cannot stall the server for everyone.

- Size: every route takes a small body (`[server] max_body_bytes`, Litestar's own
  `request_max_body_size`); only the two voicemail uploads, marked `LARGE_UPLOAD`,
  take `[voicemail] max_bytes`. A posted form carries at most `MAX_FORM_FIELDS`
  fields. Litestar parses URL-encoded forms on the event loop: a 25 MB form of two
  million fields stalled every other request for seconds, a small one cannot.
- Time: a client has `[server] request_timeout` seconds to send its headers
  (`h11_with_header_timeout`, in uvicorn's protocol: the app never sees a request
  whose headers have not arrived), then as long again for its body
  (`[voicemail] upload_timeout` for uploads). A trickling client gets a translated
  408 and its connection is closed; reading the body is asynchronous, so a slow
  client never holds a worker thread.
- Any answer sent before the request's body has been read in full (a 413, a 408, a
  404) closes the connection, so the rest of the body cannot keep it open.
- The access log (`AccessLog`) keeps the method, the route (its template: no
  query string, no token, no id), the status and the duration; never the client's
  address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import h11
from anyio import fail_after
from litestar import Litestar
from litestar._parsers import parse_url_encoded_form_data
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.config import Config

# Opt of a route handler that takes a voicemail upload: the large body limit and time.
LARGE_UPLOAD = {"large_upload": True}

# More than any real form (the settings page has about 30, the public form 10 plus its own
# questions); parsing is then a fraction of a millisecond.
MAX_FORM_FIELDS = 1000

access_log = logging.getLogger("capteo.access")


def size_uploads(app: Litestar, max_bytes: int) -> None:
    """Give the handlers marked `LARGE_UPLOAD` their own body limit. It comes from the
    configuration, which the route modules do not have when their handlers are declared;
    these are the app's own copies of the handlers, so another app keeps its own."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if handler.opt.get("large_upload"):
                handler.request_max_body_size = max_bytes


class BodyTimeout(HTTPException):
    status_code = 408


class TooManyFields(HTTPException):
    status_code = 413


class ClientGone(HTTPException):
    """The client hung up before its body arrived: nobody to answer, nothing to log as a
    server error (Litestar would raise a 500, and a traceback per hostile hang-up)."""

    status_code = 400


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope["headers"] if k == name), None)


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    return _header(scope, b"transfer-encoding") is not None or (length is not None and length.strip() != b"0")


class RequestLimits:
    """Around the whole Litestar app (all routes, and the error pages of unmatched ones):
    the body's deadline and field count, and `connection: close` on an answer sent
    before the body was read. Errors raised while the app reads the body reach the app's
    exception handlers: the client gets the usual translated error page."""

    def __init__(self, app: ASGIApp, config: Config):
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = not _has_body(scope)
        is_form = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower() \
            == b"application/x-www-form-urlencoded"
        separators = 0
        started = time.monotonic()

        async def limited_receive() -> ReceiveMessage:
            nonlocal body_done, separators
            if body_done:
                return await receive()
            handler = scope.get("route_handler")
            upload = handler is not None and handler.opt.get("large_upload")
            allowed = self.config.voicemail.upload_timeout if upload else self.config.server.request_timeout
            try:
                with fail_after(max(0.0, started + allowed - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.disconnect":
                raise ClientGone()
            if message["type"] == "http.request":
                if is_form:
                    separators += message.get("body", b"").count(b"&")
                    if separators >= MAX_FORM_FIELDS:
                        raise TooManyFields()
                body_done = not message.get("more_body", False)
            return message

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not body_done:
                # The client may still be sending: do not let the rest of its body keep the connection.
                message["headers"] = [*message.get("headers", []), (b"connection", b"close")]
            await send(message)

        try:
            await self.app(scope, limited_receive, closing_send)
        finally:
            if is_form:
                # Litestar memoizes parsed form bodies (1,024 of them): sign-in passwords and
                # the personal data of requests would stay in memory long after use, and after
                # a person's erasure. Nothing here posts the same body twice on purpose.
                parse_url_encoded_form_data.cache_clear()


def _route(scope: Scope) -> str:
    template = scope.get("path_template")
    if not template:
        return "(no route)"
    lang = scope.get("path_params", {}).get("lang")
    return template.replace("{lang}", lang) if lang in ("fr", "en") else template


class Timed:
    """Around an ASGI app: `done(scope, status, seconds)` once each HTTP request has been
    answered (status 500 if the app raised before answering). The access log and the
    metrics (app/ops/metrics.py) are both this."""

    def __init__(self, app: ASGIApp, done: Callable[[Scope, int, float], None]):
        self.app = app
        self.done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.done(scope, status, time.perf_counter() - started)


def _log_line(scope: Scope, status: int, seconds: float) -> None:
    access_log.info("%s %s %d %.0f ms", scope.get("method"), _route(scope), status, seconds * 1000)


class AccessLog(Timed):
    """One line per request: method, route template, status, milliseconds. Never the
    query string (search words, phone numbers, keys), never a path parameter (ICS
    tokens, ids), never the client's address."""

    def __init__(self, app: ASGIApp):
        super().__init__(app, _log_line)


class _HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline on each request's headers: uvicorn times out
    an idle kept-alive connection, but not one that trickles a request's first lines."""

    header_timeout = 20.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._await_headers()  # bytes of the next request's headers are arriving
        else:
            self._headers_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_done()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _headers_done(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # No request yet, so no language to answer in: a bare 408, then close.
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
            self.transport.close()


def h11_with_header_timeout(seconds: float) -> type[asyncio.Protocol]:
    """The protocol class for `uvicorn.Config(http=...)`."""
    return type("H11WithHeaderTimeout", (_HeaderTimeoutH11,), {"header_timeout": seconds})
