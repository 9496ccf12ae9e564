"""The subscriber's side: sign-in, sign-out and the lead inbox."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from app import audit, auth, businesses, custom_fields, i18n, leads, outbox
from app.web import set_language


def _lang() -> str:
    return i18n.current_language.get()


def _safe_next(value: str | None) -> str:
    """Only a local dashboard path may follow sign-in (no open redirect)."""
    if value and value.startswith(f"/{_lang()}/app/") and "//" not in value and "\\" not in value:
        return value
    return f"/{_lang()}/app/leads"


def current_session(request: Request) -> dict | None:
    return auth.session_for(request.app.state.db, request.cookies.get(auth.COOKIE))


def _session_cookie(request: Request, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=auth.COOKIE, value=value, path="/", httponly=True, samesite="lax",
        secure=request.app.state.config.secure_cookies, max_age=max_age,
    )


def _to_login(request: Request) -> Redirect:
    return Redirect(f"/{_lang()}/login?next={quote(request.url.path)}", status_code=303)


@get("/login", name="login", sync_to_thread=True)
def login_page(request: Request, next: FromQuery[str | None] = None) -> Template | Redirect:
    if current_session(request):
        return Redirect(_safe_next(next), status_code=303)
    return Template("login.html", context={"next": _safe_next(next), "email": "", "error": None})


@post("/login", name="login_submit", sync_to_thread=True, status_code=200)
def login_submit(
    request: Request,
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Template | Redirect:
    db = request.app.state.db
    email = (data.get("email") or "").strip()[:254]
    user = businesses.authenticate(db, email, (data.get("password") or "")[:1024])
    memberships = businesses.memberships(db, user["id"]) if user else []
    if not user or not memberships:
        return Template(
            "login.html",
            context={"next": _safe_next(data.get("next")), "email": email,
                     "error": i18n.gettext("This email and password do not match an account.")},
            status_code=400,
        )
    token = auth.start_session(db, user_id=user["id"], business_id=memberships[0]["id"])
    response = Redirect(_safe_next(data.get("next")), status_code=303)
    response.set_cookie(_session_cookie(request, token, int(auth.LIFETIME.total_seconds())))
    return response


@post("/logout", name="logout", sync_to_thread=True, status_code=303)
def logout(request: Request) -> Redirect:
    auth.end_session(request.app.state.db, request.cookies.get(auth.COOKIE))
    response = Redirect(f"/{_lang()}/login", status_code=303)
    response.set_cookie(_session_cookie(request, "", 0))
    return response


@get("/app", name="app_home", sync_to_thread=False)
def app_home() -> Redirect:
    return Redirect(f"/{_lang()}/app/leads", status_code=303)


@get("/app/leads", name="leads", sync_to_thread=True)
def lead_inbox(request: Request, status: FromQuery[str | None] = None) -> Template | Response:
    session = current_session(request)
    if session is None:
        return _to_login(request)
    db = request.app.state.db
    if status not in leads.STATUSES:
        status = None
    rows = leads.list_for_business(db, session["business_id"], status=status)
    with db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.list.view", entity="lead",
                     business_id=session["business_id"],
                     fields=["first_name", "last_name", "phone", "need"] if rows else [])
    context = {
        "session": session,
        "leads": rows,
        "counts": leads.counts_by_status(db, session["business_id"]),
        "status": status,
        "statuses": leads.STATUSES,
    }
    if request.htmx:  # type: ignore[attr-defined]
        return Template("leads/_rows.html", context=context)
    return Template("leads/inbox.html", context=context)


@get("/app/leads/{lead_id:int}", name="lead", sync_to_thread=True)
def lead_page(request: Request, lead_id: FromPath[int]) -> Template | Response:
    session = current_session(request)
    if session is None:
        return _to_login(request)
    db = request.app.state.db
    lead = leads.get(db, session["business_id"], lead_id)
    if lead is None:
        raise NotFoundException()
    with db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.view", entity="lead",
                     entity_id=lead_id, business_id=session["business_id"],
                     fields=[f for f in leads.PERSONAL_FIELDS if lead.get(f)])
    lang = _lang()
    answers = [custom_fields.display(e, lang, i18n.gettext("Yes"), i18n.gettext("No"))
               for e in json.loads(lead["custom_fields"] or "{}").values()]
    return Template("leads/detail.html", context={
        "session": session, "lead": lead, "answers": answers,
        "messages": outbox.for_lead(db, session["business_id"], lead_id)})


routes = [
    Router(
        path="/{lang:str}",
        route_handlers=[login_page, login_submit, logout, app_home, lead_inbox, lead_page],
        before_request=set_language,
    )
]
