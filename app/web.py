"""The Litestar application: templates, languages, security headers, errors, start-up.

`create_app(config)` builds everything from the configuration; `run.py` serves it
with uvicorn. On start-up it migrates the database, creates the demo business
when the data directory is new, binds the queue to `queue.db` and (unless told
not to) starts the Huey consumer on worker threads inside this process.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import get_day_names
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Litestar, Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.exceptions import HTTPException, NotFoundException
from litestar.plugins.htmx import HTMXPlugin
from litestar.plugins.jinja import JinjaTemplateEngine as _Engine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import Message

import jobs
from app import auth, custom_fields, demo, i18n, leads, migrations, privacy
from app.config import ROOT, Config
from app.db import Database
from app.ratelimit import RateLimiter

log = logging.getLogger("capteo")

# No inline script anywhere: htmx and our own JS are files under /static.
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": DEFAULT_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "cross-origin-opener-policy": "same-origin",
}


# Paths that never carry a language; a bare GET elsewhere is sent to /fr/… or /en/….
NOT_LOCALIZED = ("/static/", "/healthz", "/api/", "/ics/", "/favicon.ico", "/robots.txt")


def language_from_path(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in i18n.LANGUAGES else None


def switch_url(request: Request) -> str:
    """The same page in the other language (query string kept)."""
    path = request.url.path
    lang = language_from_path(path) or i18n.current_language.get()
    rest = path.lstrip("/").split("/", 1)[1] if language_from_path(path) and "/" in path.lstrip("/") else ""
    url = f"/{i18n.other_language(lang)}/{rest}"
    return url + (f"?{request.url.query}" if request.url.query else "")


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(ROOT / "templates"),
        autoescape=select_autoescape(["html", "xml"], default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Installed once for the environment; each callable reads the request's language.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext, npgettext=i18n.npgettext
    )
    env.globals.update(
        lang=lambda: i18n.current_language.get(),
        other_lang=lambda: i18n.other_language(i18n.current_language.get()),
        language_name=i18n.language_name,
        switch_url=switch_url,
        status_label=lambda s: i18n.pgettext(*leads.STATUS_LABELS[s]),
        status_tab=lambda s: i18n.gettext(leads.STATUS_TABS[s]),
        when=i18n.format_when,
        day_name=lambda i: get_day_names("wide", locale=i18n.LOCALES[i18n.current_language.get()])[i].capitalize(),
        kind_label=lambda k: i18n.gettext(custom_fields.KIND_LABELS[k]),
        request_kind=lambda k: i18n.gettext(privacy.KINDS[k]),
        weekday=i18n.format_weekday,
        short_date=i18n.format_short_date,
        duration=i18n.format_duration,
        minutes=lambda a: int((datetime.fromisoformat(a["ends_at"]) - datetime.fromisoformat(a["starts_at"]))
                              .total_seconds() // 60),
        local_parts=lambda iso, tz: (lambda d: (d.date().isoformat(), d.strftime("%H:%M")))(
            datetime.fromisoformat(iso).astimezone(ZoneInfo(tz))),
        channel_label=lambda c: i18n.gettext(leads.CHANNEL_LABELS[c]),
    )
    env.filters["datetime"] = i18n.format_datetime
    env.filters["date"] = i18n.format_date
    env.filters["phone"] = i18n.format_phone
    env.filters["fromjson"] = json.loads
    env.filters["field_label"] = lambda name: i18n.gettext(leads.FIELD_LABELS.get(name, name))
    return env


class UnknownLanguage(NotFoundException):
    """`/de/…`: a 404 page, not the bare-URL language chooser."""


async def set_language(request: Request) -> None:
    """Router hook for every `/{lang}/…` route. `/login` also lands here (as lang
    "login"): a plain 404, which the error handler turns into the language chooser;
    `/de/…` is a language we do not have: a real 404."""
    lang = request.path_params.get("lang")
    if lang not in i18n.LANGUAGES:
        raise UnknownLanguage() if len(lang) == 2 else NotFoundException()
    i18n.current_language.set(lang)


def _error_language(request: Request) -> str:
    return language_from_path(request.url.path) or i18n.best_language(
        request.headers.get("accept-language"), request.app.state.config.get("i18n", "default_language")
    )


def error_page(request: Request, exc: Exception) -> Response:
    """Translated error pages; JSON for the API-style paths."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status >= 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if request.url.path.startswith(("/healthz", "/api/")):
        detail = exc.detail if isinstance(exc, HTTPException) and status < 500 else "Internal Server Error"
        return Response({"status_code": status, "detail": detail}, status_code=status)
    path = request.url.path
    if status == 404 and request.method == "GET" and not language_from_path(path) \
            and not path.startswith(NOT_LOCALIZED) and not isinstance(exc, UnknownLanguage):
        from app.pages import bare

        return bare(request, path)
    i18n.current_language.set(_error_language(request))
    return Template("error.html", context={"status": status}, status_code=status)


def sign_in_required(request: Request, exc: Exception) -> Response:
    from app.dashboard import sign_in_redirect

    if request.app.state.config.get("auth", "mode") == "cloudflare":
        # Cloudflare Access signs people in; a request without a valid token is refused.
        i18n.current_language.set(_error_language(request))
        return Template("error.html", context={"status": 401}, status_code=401)
    return sign_in_redirect(request)


def owners_only(request: Request, exc: Exception) -> Response:
    i18n.current_language.set(_error_language(request))
    return Template("error.html", context={"status": 403, "owners_only": True}, status_code=403)


def _security_headers(message: Message) -> None:
    if message["type"] != "http.response.start":
        return
    present = {k.lower() for k, _ in message.get("headers", [])}
    headers = list(message.get("headers", []))
    for name, value in SECURITY_HEADERS.items():
        # A handler that set its own CSP (an embeddable form) chose its framing too.
        if name == "x-frame-options" and b"content-security-policy" in present:
            continue
        if name.encode() not in present:
            headers.append((name.encode(), value.encode()))
    message["headers"] = headers


async def before_send(message: Message, scope: Any) -> None:
    _security_headers(message)


class InProcessWorker:
    """The Huey consumer running on threads of the web server's process."""

    def __init__(self, config: Config):
        self.consumer = jobs.huey.create_consumer(
            workers=config.get("queue", "workers"),
            worker_type="thread",
            periodic=True,
            # Poll the queue at least every second: an idle worker still picks work up fast.
            initial_delay=0.1,
            backoff=1.15,
            max_delay=1.0,
            shutdown_timeout=config.get("queue", "shutdown_timeout"),
        )

    def start(self) -> None:
        # Huey installs its own SIGINT/SIGTERM/SIGHUP handlers; the web server owns
        # signals here, so put its handlers back once the threads are running.
        on_main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)} if on_main else {}
        try:
            self.consumer.start()
        except ValueError:
            # Off the main thread (a test client) signals cannot be set: the workers run anyway.
            pass
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Let running tasks finish, up to [queue] shutdown_timeout."""
        self.consumer.stop(graceful=True)


def create_app(config: Config, *, run_worker: bool = True) -> Litestar:
    from app import (  # routes import web's helpers: import them late
        dashboard, form_pages, pages, privacy_pages, settings_pages, voicemail_pages)

    config.ensure_dirs()
    i18n.check_catalogs()
    db = Database(config.db_path)

    async def on_startup(app: Litestar) -> None:
        migrations.apply(config.db_path)
        demo.ensure(db, config)
        jobs.configure(config, db)
        if run_worker:
            app.state.worker = InProcessWorker(config)
            app.state.worker.start()
            # Catch up at once on work a crash left behind (the periodic sweeps would
            # only find it at the next minute): tasks are wake-ups, capteo.db is the truth.
            jobs.intake.sweep_outbox()
            jobs.intake.sweep_geocoding()
            jobs.voicemail.sweep_voicemail()

    async def on_shutdown(app: Litestar) -> None:
        worker = app.state.get("worker")
        if worker is not None:
            worker.stop()
        db.close()

    csrf = CSRFConfig(
        secret=config.secret("csrf"),
        cookie_name="capteo_csrf",
        header_name="x-csrftoken",
        cookie_secure=config.secure_cookies,
        cookie_samesite="lax",
        # The token reaches pages through the template (form field, hx-headers): no script reads the cookie.
        cookie_httponly=True,
        # Machine endpoints authenticate otherwise (tokens, signatures), never by cookie.
        # The public form works inside other sites' iframes, where cookies are not sent:
        # its signed one-time token (forms.check_token) is its CSRF protection.
        exclude=["/healthz", "/api/", r"^/(fr|en)/f/"],
    )
    app = Litestar(
        route_handlers=[
            *pages.routes,
            *dashboard.routes,
            *form_pages.routes,
            *settings_pages.routes,
            *privacy_pages.routes,
            *voicemail_pages.routes,
            create_static_files_router(path="/static", directories=[ROOT / "static"], name="static"),
        ],
        template_config=TemplateConfig(engine=_Engine.from_environment(make_environment())),
        plugins=[HTMXPlugin()],
        csrf_config=csrf,
        before_send=[before_send],
        exception_handlers={HTTPException: error_page, auth.SignInRequired: sign_in_required,
                            auth.OwnersOnly: owners_only, Exception: error_page},
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=None,
        # Voicemail uploads are the largest bodies; everything else is far smaller.
        request_max_body_size=config.get("voicemail", "max_bytes") + 1_000_000,
        debug=False,
    )
    app.state.config = config
    app.state.db = db
    app.state.worker = None
    app.state.form_limiter = RateLimiter(config.get("forms", "rate_limit"), config.get("forms", "rate_window"))
    if config.get("auth", "mode") == "cloudflare":
        from app.cloudflare_access import AccessVerifier

        app.state.access_verifier = AccessVerifier(
            config.get("auth", "cloudflare_team_domain"), config.get("auth", "cloudflare_audience"),
            config.get("auth", "cloudflare_certs_url") or None)
    app.state.login_limiter = RateLimiter(config.get("auth", "login_attempts"), config.get("auth", "login_window"))
    return app
