"""The site itself: the home page, the bare-URL language chooser, and /healthz."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.response import Template

import jobs
import jobs.system
from app import http
from app.http import DB, Conf
from app.ops import health


@get("/", name="home", sync_to_thread=False)
def home() -> Template:
    return Template("home.html")


@get("/", name="bare_root", sync_to_thread=False, include_in_schema=False)
def bare_root(request: Request) -> Template:
    return http.bare(request)


@get("/healthz", name="healthz", sync_to_thread=True)
def healthz(db: DB, config: Conf) -> Response:
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


routes: http.Routes = [http.localized(home), bare_root, healthz]
