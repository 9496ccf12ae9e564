"""Public pages: the home page, the bare-URL language chooser, and /healthz."""

from __future__ import annotations

from litestar import Request, Response, Router, get
from litestar.response import Template

import jobs
from app import health, i18n
from app.web import set_language



@get("/", name="home", sync_to_thread=False)
def home(request: Request) -> Template:
    return Template("home.html")


def bare(request: Request, path: str = "") -> Template:
    """A URL without a language: the browser's saved choice (localStorage, read by
    lang.js) wins, then Accept-Language, then French. Without JavaScript the
    page links to the suggested language."""
    suggested = i18n.best_language(
        request.headers.get("accept-language"), request.app.state.config.get("i18n", "default_language")
    )
    i18n.current_language.set(suggested)
    target = "/" + path.lstrip("/")
    if request.url.query:
        target += "?" + request.url.query
    return Template("bare.html", context={"suggested": suggested, "target": target})


@get("/", name="bare_root", sync_to_thread=False, include_in_schema=False)
def bare_root(request: Request) -> Template:
    return bare(request)


@get("/healthz", name="healthz", sync_to_thread=True)
def healthz(request: Request) -> Response:
    db = request.app.state.db
    config = request.app.state.config
    try:
        depth = jobs.queue_depth()
    except Exception:  # queue file unreadable: report it rather than fail the probe
        depth = None
    # A round trip through the queue proves a worker is taking work, wherever it runs.
    requested = None
    if depth == 0 and health.should_ask_for_beat():
        requested = jobs.system.heartbeat().id
    body = health.status(db, config, depth)
    body["heartbeat_requested"] = requested
    return Response(body, status_code=200 if body["ok"] else 503)


localized = Router(path="/{lang:str}", route_handlers=[home], before_request=set_language)
routes = [localized, bare_root, healthz]
