"""What every route module needs: the language guard, sign-in and owner guards,
the injected database, configuration and session, fragment-or-page, CSP, error pages.

Route modules import this module, never `app.web` (which assembles the app from
each area's `routes`). A dashboard router is built with `dashboard(...)`: the
language, then the signed-in person, are checked by Litestar guards before any
handler runs, and a handler asks for what it needs by name (`session`, `db`,
`config`) instead of reading `request.app.state`.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote

from anyio import to_thread
from litestar import Request, Response, Router
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, HTTPException, NotFoundException
from litestar.handlers import BaseRouteHandler
from litestar.params import Body
from litestar.response import Redirect, Template
from litestar.types import ControllerRouterHandler, ExceptionHandlersMap, Message

from app import billing, clock, i18n
from app.businesses import auth
from app.businesses.ratelimit import Limits
from app.config import Config
from app.db import Database

log = logging.getLogger("capteo")

# A URL-encoded form post, as a plain dict (last value wins; the public form reads multi-items itself).
Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]

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
NOT_LOCALIZED = ("/static/", "/healthz", "/metrics", "/api/", "/ics/", "/favicon.ico", "/robots.txt")


def lang() -> str:
    """The language of the request being answered."""
    return i18n.current_language.get()


def language_from_path(path: str) -> str | None:
    first = path.lstrip("/").split("/", 1)[0]
    return first if first in i18n.LANGUAGES else None


def switch_url(request: Request) -> str:
    """The same page in the other language (query string kept)."""
    path = request.url.path
    current = language_from_path(path) or lang()
    rest = path.lstrip("/").split("/", 1)[1] if language_from_path(path) and "/" in path.lstrip("/") else ""
    url = f"/{i18n.other_language(current)}/{rest}"
    return url + (f"?{request.url.query}" if request.url.query else "")


def csp(*, img: str | None = None, frame_ancestors: list[str] | None = None) -> str:
    """The default policy, widened for one page: an image origin (the map's tiles) or
    the sites allowed to frame it (an embedded form)."""
    policy = DEFAULT_CSP
    if img:
        policy = policy.replace("img-src 'self' data:", f"img-src 'self' data: {img}")
    if frame_ancestors is not None:
        allowed = " ".join(frame_ancestors) or "'none'"
        policy = policy.replace("frame-ancestors 'none'", f"frame-ancestors {allowed}")
    return policy


def is_htmx(request: Request) -> bool:
    return bool(request.headers.get("hx-request"))


# A route that answers htmx with a fragment and a browser with a page (or a redirect)
# says so, so that no cache serves one for the other.
VARY_HTMX = {"vary": "HX-Request, HX-Target"}


def fragment_or_page(request: Request, fragment: str, page: str, context: dict[str, Any], *,
                     status_code: int = 200, target: str | None = None, headers: dict | None = None) -> Template:
    """One URL, one handler: htmx gets the fragment it swaps in (only when it targets
    `target`, if given), a plain request the page that includes the same fragment.
    Both vary on HX-Request, so no cache serves one for the other."""
    wants_fragment = is_htmx(request) and (target is None or request.headers.get("hx-target") == target)
    return Template(fragment if wants_fragment else page, context=context, status_code=status_code,
                    headers={**VARY_HTMX, **(headers or {})})


# ---- guards ------------------------------------------------------------------------------------

class UnknownLanguage(NotFoundException):
    """`/de/…`: a 404 page, not the bare-URL language chooser."""


async def language(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Every `/{lang}/…` route. `/login` also lands here (as lang "login"): a plain
    404, which the error handler turns into the language chooser; `/de/…` is a
    language we do not have: a real 404."""
    value = connection.path_params.get("lang")
    if value not in i18n.LANGUAGES:
        raise UnknownLanguage() if value and len(value) == 2 else NotFoundException()
    i18n.current_language.set(value)


# SQLite's integers: a larger id in a URL names nothing (and would overflow the driver).
MAX_ID = 2**63 - 1


async def ids_in_range(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """An id in the path that no row can have answers 404, like any id that is not yours."""
    for value in connection.path_params.values():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise NotFoundException()


def _resolve_session(connection: ASGIConnection) -> dict:
    state = connection.app.state
    if state.config.auth.mode == "cloudflare":
        from app.businesses.cloudflare_access import HEADER, AccessDenied

        try:
            email = state.access_verifier.email_for(connection.headers.get(HEADER))
        except AccessDenied:
            raise auth.SignInRequired() from None
        session = auth.session_for_email(state.db, email)
    else:
        session = auth.session_for(state.db, connection.cookies.get(auth.COOKIE))
    if session is None:
        raise auth.SignInRequired()
    return session


async def signed_in(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """The signed-in person (user, business, role), found once per request and
    injected into handlers as `session`. OPTIONS (which only lists the methods) needs none."""
    if connection.scope.get("method") == "OPTIONS":
        return
    connection.state.session = await to_thread.run_sync(_resolve_session, connection)


# Handlers a person may reach while their one-time password must still be changed.
WHILE_PASSWORD_DUE = {"while_password_due": True}


async def password_current(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """Someone signed in with a one-time password goes to the password page first,
    whatever dashboard address they open."""
    if connection.app.state.config.auth.mode == "cloudflare" or connection.scope.get("method") == "OPTIONS":
        return  # Cloudflare Access signs people in: there is no password to change
    if connection.state.session.get("must_change_password") and not handler.opt.get("while_password_due"):
        raise auth.PasswordChangeDue()


async def owner(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Settings, team, audit: owners only; a member gets a translated 403."""
    if connection.scope.get("method") != "OPTIONS" and connection.state.session["role"] != "owner":
        raise auth.OwnersOnly()


# Dashboard POSTs a business made read-only by billing may still make (opt on a handler, or its
# name here): leave, switch business, one's own account, answer an invitation, pay, export.
WHILE_READ_ONLY = {"while_read_only": True}
ALLOWED_WHILE_READ_ONLY = {"logout", "switch_business", "password_save", "account_phone", "invitation_accept",
                           "invitation_decline", "privacy_export", "billing_portal", "policy_notice_dismiss"}


async def billing_writable(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """A business whose subscription lapsed (app.billing) keeps its dashboard to read: every
    other dashboard POST gets a page saying why, with the way to pay. GETs always work."""
    state = connection.app.state
    if connection.scope.get("method") == "OPTIONS" or not billing.configured(state.config):
        return
    business = await to_thread.run_sync(billing.state_for, state.db, connection.state.session["business_id"])
    now = clock.now()
    connection.state.billing_banner = billing.banner(state.config, business, now)  # app_base.html shows it
    if connection.scope.get("method") in ("GET", "HEAD") or handler.opt.get("while_read_only") \
            or handler.name in ALLOWED_WHILE_READ_ONLY:
        return
    if billing.dashboard_read_only(state.config, business, now):
        raise billing.ReadOnly()


# Dashboard pages that answer while the business is closed (app.businesses.closing): its
# export, the reopen page, and leaving (sign-out, another business, one's own account).
WHILE_CLOSED = {"while_closed": True, "while_read_only": True}
ALLOWED_WHILE_CLOSED = {"logout", "switch_business", "password", "password_save", "account_phone", "invitations",
                        "invitation_accept", "invitation_decline"}


async def business_open(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """A closed business's dashboard is its reopen page (owners) or a page saying so (members)."""
    session = connection.state.session if connection.scope.get("method") != "OPTIONS" else None
    if session and session.get("business_closed_at") and not handler.opt.get("while_closed") \
            and handler.name not in ALLOWED_WHILE_CLOSED:
        raise auth.BusinessClosed()


# ---- dependencies ------------------------------------------------------------------------------

def _db(state: State) -> Database:
    return state.db


def _config(state: State) -> Config:
    return state.config


def _session(request: Request) -> dict:
    return request.state.session


def _limits(state: State) -> Limits:
    return state.limits


# What a handler asks for by name: `session: SignedIn` (dashboard routes only, after
# the `signed_in` guard), `db: DB`, `config: Conf`.
SignedIn = NamedDependency[dict]
DB = NamedDependency[Database]
Conf = NamedDependency[Config]
RateLimits = NamedDependency[Limits]

DEPENDENCIES = {
    "db": Provide(_db, sync_to_thread=False),
    "config": Provide(_config, sync_to_thread=False),
    "session": Provide(_session, sync_to_thread=False),
    "limits": Provide(_limits, sync_to_thread=False),
}


Routes = list[ControllerRouterHandler]


def localized(*handlers: Any, guards: list | None = None) -> Router:
    """Routes under `/{lang}/…` (public pages)."""
    return Router(path="/{lang:str}", route_handlers=list(handlers),
                  guards=[language, ids_in_range, *(guards or [])])


def dashboard(*handlers: Any) -> Router:
    """Routes under `/{lang}/…` that need a signed-in person (owner-only ones add `owner`)."""
    return localized(*handlers, guards=[signed_in, password_current, business_open, billing_writable])


async def refuse_control_characters(request: Request) -> None:
    """Every route: a path carrying a NUL or another control character names no page
    and no file (and would reach the file system as an error): a 400."""
    if any(ord(c) < 32 or ord(c) == 127 for c in request.url.path):
        raise ClientException(status_code=400)


# ---- error pages -------------------------------------------------------------------------------

def bare(request: Request, path: str = "") -> Template:
    """A URL without a language: the browser's saved choice (localStorage, read by
    lang.js) wins, then Accept-Language, then French. Without JavaScript the
    page links to the suggested language."""
    suggested = i18n.best_language(
        request.headers.get("accept-language"), request.app.state.config.i18n.default_language
    )
    i18n.current_language.set(suggested)
    target = "/" + path.lstrip("/")
    if request.url.query:
        target += "?" + request.url.query
    return Template("bare.html", context={"suggested": suggested, "target": target})


def _error_language(request: Request) -> str:
    return language_from_path(request.url.path) or i18n.best_language(
        request.headers.get("accept-language"), request.app.state.config.i18n.default_language
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
        return bare(request, path)
    i18n.current_language.set(_error_language(request))
    # An embeddable page's error keeps the framing it chose (exc.headers: its CSP), so the
    # business's site shows the error, not a blocked frame.
    headers = exc.headers if isinstance(exc, HTTPException) and status < 500 else None
    return Template("error.html", context={"status": status}, status_code=status, headers=headers)


def sign_in_redirect(request: Request) -> Response:
    """To the sign-in page, which comes back to the page asked for, its query string too
    (a search, a filter); businesses.pages._safe_next checks it is a dashboard page."""
    asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"/{_error_language(request)}/login?next={quote(asked)}"
    if is_htmx(request):
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def sign_in_required(request: Request, exc: Exception) -> Response:
    if request.app.state.config.auth.mode == "cloudflare":
        # Cloudflare Access signs people in; a request without a valid token is refused.
        i18n.current_language.set(_error_language(request))
        return Template("error.html", context={"status": 401}, status_code=401)
    return sign_in_redirect(request)


def password_change_due(request: Request, exc: Exception) -> Response:
    target = f"/{_error_language(request)}/app/password"
    if is_htmx(request):
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


def owners_only(request: Request, exc: Exception) -> Response:
    i18n.current_language.set(_error_language(request))
    return Template("error.html", context={"status": 403, "owners_only": True}, status_code=403)


def billing_read_only(request: Request, exc: Exception) -> Response:
    """A change refused because billing made the dashboard read-only: the way to pay (htmx,
    which would swap nothing on a 403, is sent to the billing page, which says the same)."""
    target = f"/{_error_language(request)}/app/billing"
    if is_htmx(request):
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    i18n.current_language.set(_error_language(request))
    return Template("billing/read_only.html", context={"billing_url": target}, status_code=403)


def business_closed(request: Request, exc: Exception) -> Response:
    """The owner goes to the page that reopens the business; a member is told it is closed."""
    language = _error_language(request)
    session = getattr(request.state, "session", None) or {}
    if session.get("role") == "owner":
        target = f"/{language}/app/settings/close"
        if is_htmx(request):
            return Response(None, status_code=204, headers={"HX-Redirect": target})
        return Redirect(target, status_code=303)
    i18n.current_language.set(language)
    return Template("error.html", context={"status": 410, "business_closed": True}, status_code=410)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {auth.BusinessClosed: business_closed,
                      HTTPException: error_page, auth.SignInRequired: sign_in_required,
                      auth.OwnersOnly: owners_only, auth.PasswordChangeDue: password_change_due,
                      billing.ReadOnly: billing_read_only, Exception: error_page}


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


def find_session(connection: ASGIConnection) -> dict | None:
    """The signed-in person, or None (the sign-in page uses it to skip itself)."""
    try:
        return _resolve_session(connection)
    except auth.SignInRequired:
        return None
