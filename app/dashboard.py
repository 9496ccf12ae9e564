"""The subscriber's side: sign-in, the lead inbox, a lead, appointments, calendar, map.

One URL, one handler: an htmx request gets the fragment it swaps in, a plain
request (or a plain form post) the full page or a redirect back to it.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Annotated
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from app import (appointments, audit, auth, businesses, clock, custom_fields, forms, glance, i18n, leads, outbox,
                 voicemail)
from app.appointments import AppointmentError, Slot
from app.auth import require
from app.leads import LeadError
from app.ratelimit import client_ip
from app.web import set_language

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _lang() -> str:
    return i18n.current_language.get()


def _safe_next(value: str | None) -> str:
    """Only a local dashboard path may follow sign-in (no open redirect)."""
    if value and value.startswith(f"/{_lang()}/app/") and "//" not in value and "\\" not in value:
        return value
    return f"/{_lang()}/app/leads"


def _session_cookie(request: Request, value: str, max_age: int) -> Cookie:
    return Cookie(
        key=auth.COOKIE, value=value, path="/", httponly=True, samesite="lax",
        secure=request.app.state.config.secure_cookies, max_age=max_age,
    )


def sign_in_redirect(request: Request) -> Response:
    target = f"/{_lang()}/login?next={quote(request.url.path)}"
    if request.headers.get("hx-request"):
        return Response(None, status_code=204, headers={"HX-Redirect": target})
    return Redirect(target, status_code=303)


# ---- sign-in ---------------------------------------------------------------------------------

@get("/login", name="login", sync_to_thread=True)
def login_page(request: Request, next: FromQuery[str | None] = None) -> Template | Redirect:
    try:
        require(request)
        return Redirect(_safe_next(next), status_code=303)
    except auth.SignInRequired:
        pass
    return Template("login.html", context={"next": _safe_next(next), "email": "", "error": None})


@post("/login", name="login_submit", sync_to_thread=True, status_code=200)
def login_submit(request: Request, data: Form) -> Template | Redirect:
    db = request.app.state.db
    email = (data.get("email") or "").strip()[:254]
    key = (email.lower(), client_ip(request))
    limiter = request.app.state.login_limiter
    context = {"next": _safe_next(data.get("next")), "email": email}
    if not limiter.allowed(*key):
        return Template("login.html", status_code=429, context={
            **context, "error": i18n.gettext("Too many failed attempts. Wait 15 minutes and try again.")})
    user = businesses.authenticate(db, email, (data.get("password") or "")[:1024])
    memberships = businesses.memberships(db, user["id"]) if user else []
    if not user or not memberships:
        limiter.record(*key)
        return Template("login.html", status_code=400, context={
            **context, "error": i18n.gettext("This email and password do not match an account.")})
    # A new token at every sign-in: an id planted before it is worthless (no fixation).
    token = auth.start_session(db, user_id=user["id"], business_id=memberships[0]["id"])
    target = f"/{_lang()}/app/password" if user["must_change_password"] else _safe_next(data.get("next"))
    response = Redirect(target, status_code=303)
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


# ---- inbox -----------------------------------------------------------------------------------

def _inbox_url(**params) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "", 1)}
    return f"/{_lang()}/app/leads" + (f"?{urlencode(clean)}" if clean else "")


@get("/app/leads", name="leads", sync_to_thread=True)
def lead_inbox(
    request: Request,
    status: FromQuery[str | None] = None,
    channel: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    page: FromQuery[int] = 1,
) -> Template:
    session = require(request)
    db = request.app.state.db
    status = status if status in leads.STATUSES else None
    channel = channel if channel in leads.CHANNELS else None
    q = (q or "").strip()[:200]
    page = max(1, min(page, 10_000))
    rows, has_next = leads.inbox(db, session["business_id"], status=status, channel=channel, q=q, page=page)
    with db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.list.view", entity="lead",
                     business_id=session["business_id"],
                     fields=["first_name", "last_name", "phone", "need"] if rows else [])
    context = {
        "session": session, "leads": rows, "counts": leads.counts_by_status(db, session["business_id"]),
        "status": status, "channel": channel, "q": q, "page": page, "has_next": has_next,
        "statuses": leads.STATUSES, "channels": leads.CHANNELS, "url": _inbox_url,
        "latest_id": leads.latest_id(db, session["business_id"]),
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "inbox":
        return Template("leads/_inbox.html", context=context)
    return Template("leads/inbox.html", context=context)


@get("/app/leads/latest", name="leads_latest", sync_to_thread=True)
def leads_latest(request: Request, since: FromQuery[int] = 0) -> Response:
    """Polled by the inbox: tells it to refresh when a newer lead exists. Carries
    only a number, so it is not an access to personal information."""
    session = require(request)
    latest = leads.latest_id(request.app.state.db, session["business_id"])
    if latest > since:
        return Response(None, status_code=204, headers={"HX-Trigger": "new-leads"})
    return Response(None, status_code=204)


# ---- one lead --------------------------------------------------------------------------------

def _lead_or_404(request: Request, session: dict, lead_id: int) -> dict:
    lead = leads.get(request.app.state.db, session["business_id"], lead_id)
    if lead is None:
        raise NotFoundException()
    return lead


def _lead_context(request: Request, session: dict, lead_id: int, **extra) -> dict:
    db = request.app.state.db
    lead = _lead_or_404(request, session, lead_id)
    lang = _lang()
    answers = [custom_fields.display(e, lang, i18n.gettext("Yes"), i18n.gettext("No"))
               for e in json.loads(lead["custom_fields"] or "{}").values()]
    appts = appointments.for_lead(db, session["business_id"], lead_id)
    local_now = clock.now().astimezone(ZoneInfo(session["timezone"]))
    return {
        "session": session, "lead": lead, "answers": answers, "statuses": leads.STATUSES,
        "messages": outbox.for_lead(db, session["business_id"], lead_id),
        "events": leads.timeline(db, session["business_id"], lead_id),
        "appointments": appts, "voicemails": voicemail.for_lead(db, session["business_id"], lead_id),
        "default_day": (local_now + timedelta(days=1)).date().isoformat(),
        "errors": {}, "overlaps": [], "values": {}, "editing": False, **extra,
    }


def _render_lead(request: Request, context: dict, status_code: int = 200) -> Template:
    name = "leads/_lead.html" if request.headers.get("hx-request") else "leads/detail.html"
    return Template(name, context=context, status_code=status_code)


def _after_action(request: Request, session: dict, lead_id: int, **extra) -> Template | Redirect:
    """htmx: the refreshed lead; a plain form post: back to the lead page."""
    if request.headers.get("hx-request"):
        return _render_lead(request, _lead_context(request, session, lead_id, **extra))
    return Redirect(f"/{_lang()}/app/leads/{lead_id}", status_code=303)


@get("/app/leads/{lead_id:int}", name="lead", sync_to_thread=True)
def lead_page(request: Request, lead_id: FromPath[int], edit: FromQuery[str | None] = None) -> Template:
    session = require(request)
    context = _lead_context(request, session, lead_id, editing=edit == "1")
    with request.app.state.db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.view", entity="lead",
                     entity_id=lead_id, business_id=session["business_id"],
                     fields=[f for f in leads.PERSONAL_FIELDS if context["lead"].get(f)])
    return _render_lead(request, context)


def _lead_error(request: Request, session: dict, lead_id: int, error: str, **extra) -> Template:
    return _render_lead(request, _lead_context(request, session, lead_id, errors={"_lead": i18n.gettext(error)},
                                               **extra), status_code=422)


@post("/app/leads/{lead_id:int}/status", name="lead_status", sync_to_thread=True, status_code=200)
def lead_status(request: Request, lead_id: FromPath[int], data: Form) -> Template | Redirect:
    session = require(request)
    _lead_or_404(request, session, lead_id)
    try:
        leads.set_status(request.app.state.db, session["business_id"], lead_id, data.get("status", ""),
                         user_id=session["user_id"])
    except LeadError as e:
        return _lead_error(request, session, lead_id, str(e))
    return _after_action(request, session, lead_id)


@post("/app/leads/{lead_id:int}/notes", name="lead_note", sync_to_thread=True, status_code=200)
def lead_note(request: Request, lead_id: FromPath[int], data: Form) -> Template | Redirect:
    session = require(request)
    _lead_or_404(request, session, lead_id)
    try:
        leads.add_note(request.app.state.db, session["business_id"], lead_id, forms.clean(
            data.get("note", ""), multiline=True), user_id=session["user_id"])
    except LeadError as e:
        return _lead_error(request, session, lead_id, str(e))
    return _after_action(request, session, lead_id)


@post("/app/leads/{lead_id:int}/edit", name="lead_edit", sync_to_thread=True, status_code=200)
def lead_edit(request: Request, lead_id: FromPath[int], data: Form) -> Template | Redirect:
    """A rectification: the same checks as the public form; the audit keeps field names."""
    session = require(request)
    _lead_or_404(request, session, lead_id)
    changes, errors = {}, {}
    for name in leads.EDITABLE:
        if name in data:
            value, error = forms.validate_field(name, data[name])
            if error:
                errors[name] = i18n.gettext(error)
            else:
                changes[name] = value
    if errors:
        return _render_lead(request, _lead_context(request, session, lead_id, errors=errors, values=data,
                                                   editing=True), status_code=422)
    try:
        leads.rectify(request.app.state.db, session["business_id"], lead_id, changes, user_id=session["user_id"])
    except LeadError as e:
        return _lead_error(request, session, lead_id, str(e))
    _wake_geocoding(request, session, lead_id)
    return _after_action(request, session, lead_id)


def _wake_geocoding(request: Request, session: dict, lead_id: int) -> None:
    import jobs.intake

    lead = leads.get(request.app.state.db, session["business_id"], lead_id)
    if lead and lead["geocode_status"] == "pending":
        jobs.intake.geocode(lead_id)


def _wake_sms(ids: list[int]) -> None:
    import jobs.intake

    for message_id in ids:
        jobs.intake.send_sms(message_id)


def _business(request: Request, session: dict) -> dict:
    return request.app.state.db.query_one("SELECT * FROM businesses WHERE id = ?", (session["business_id"],))


def _slot_action(request: Request, session: dict, lead_id: int, data: dict, appointment_id: int | None,
                 act) -> Template | Redirect:
    """Book or move: read the slot, warn on overlap unless confirmed, act, wake the SMS."""
    try:
        slot = Slot.local(data.get("day", ""), data.get("time", ""), _int(data.get("duration")),
                          session["timezone"])
        overlaps = appointments.overlapping(request.app.state.db, session["business_id"], slot, appointment_id)
        if overlaps and data.get("confirm_overlap") != "yes":
            return _render_lead(request, _lead_context(request, session, lead_id, overlaps=overlaps, values=data),
                                status_code=409)
        sms = act(slot)
    except (AppointmentError, LeadError) as e:
        return _lead_error(request, session, lead_id, str(e), values=data)
    _wake_sms(sms)
    return _after_action(request, session, lead_id)


@post("/app/leads/{lead_id:int}/appointments", name="appointment_book", sync_to_thread=True, status_code=200)
def appointment_book(request: Request, lead_id: FromPath[int], data: Form) -> Template | Redirect:
    session = require(request)
    _lead_or_404(request, session, lead_id)
    return _slot_action(request, session, lead_id, data, None, lambda slot: appointments.book(
        request.app.state.db, _business(request, session), lead_id, slot, user_id=session["user_id"])[1])


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return 0


def _appointment_lead(request: Request, session: dict, appointment_id: int) -> int:
    row = request.app.state.db.query_one(
        "SELECT lead_id FROM appointments WHERE business_id = ? AND id = ?", (session["business_id"], appointment_id))
    if row is None:
        raise NotFoundException()
    return row["lead_id"]


@post("/app/appointments/{appointment_id:int}/move", name="appointment_move", sync_to_thread=True, status_code=200)
def appointment_move(request: Request, appointment_id: FromPath[int], data: Form) -> Template | Redirect:
    session = require(request)
    lead_id = _appointment_lead(request, session, appointment_id)
    return _slot_action(request, session, lead_id, data, appointment_id, lambda slot: appointments.move(
        request.app.state.db, _business(request, session), appointment_id, slot, user_id=session["user_id"]))


@post("/app/appointments/{appointment_id:int}/cancel", name="appointment_cancel", sync_to_thread=True,
      status_code=200)
def appointment_cancel(request: Request, appointment_id: FromPath[int]) -> Template | Redirect:
    session = require(request)
    lead_id = _appointment_lead(request, session, appointment_id)
    try:
        sms = appointments.cancel(request.app.state.db, _business(request, session), appointment_id,
                                  user_id=session["user_id"])
    except LeadError as e:
        return _lead_error(request, session, lead_id, str(e))
    _wake_sms(sms)
    return _after_action(request, session, lead_id)


# ---- calendar, feed, map, overview -----------------------------------------------------------

@get("/app/calendar", name="calendar", sync_to_thread=True)
def calendar(request: Request, week: FromQuery[str | None] = None) -> Template:
    session = require(request)
    tz = ZoneInfo(session["timezone"])
    try:
        day = date.fromisoformat(week) if week else clock.now().astimezone(tz).date()
    except ValueError:
        day = clock.now().astimezone(tz).date()
    monday = day - timedelta(days=day.weekday())
    rows = appointments.week(request.app.state.db, session["business_id"], monday, session["timezone"])
    days = []
    for i in range(7):
        d = monday + timedelta(days=i)
        days.append({"date": d, "appointments": [r for r in rows
                                          if datetime.fromisoformat(r["starts_at"]).astimezone(tz).date() == d]})
    token = appointments.feed_token(request.app.state.db, session["business_id"])
    return Template("calendar.html", context={
        "session": session, "days": days, "monday": monday,
        "prev": (monday - timedelta(days=7)).isoformat(), "next": (monday + timedelta(days=7)).isoformat(),
        "feed_url": f"{request.app.state.config.public_url}/ics/{token}.ics"})


@get("/ics/{token:str}", name="ics_feed", sync_to_thread=True)
def ics_feed(request: Request, token: FromPath[str]) -> Response:
    """The calendar feed the owner's phone subscribes to; the secret URL is the key."""
    token = token.removesuffix(".ics")
    db = request.app.state.db
    business = db.query_one("SELECT * FROM businesses WHERE ics_token = ?", (token,)) if len(token) >= 20 else None
    if business is None:
        raise NotFoundException()
    with db.write() as conn:
        audit.record(conn, actor="calendar-feed", action="appointment.feed", entity="appointment",
                     business_id=business["id"], fields=["first_name"])
    body = appointments.ics(db, business, request.app.state.config.public_url)
    return Response(body, media_type="text/calendar; charset=utf-8",
                    headers={"cache-control": "private, max-age=300"})


@get("/app/map", name="map", sync_to_thread=True)
def lead_map(request: Request) -> Template:
    session = require(request)
    config = request.app.state.config
    labels = {s: i18n.pgettext(*leads.STATUS_LABELS[s]) for s in leads.STATUSES}
    # This page alone may load the tile server's images.
    tiles = config.get("map", "tile_url")
    origin = "/".join(tiles.split("/")[:3])
    from app.web import DEFAULT_CSP

    csp = DEFAULT_CSP.replace("img-src 'self' data:", f"img-src 'self' data: {origin}")
    return Template("map.html", headers={"content-security-policy": csp, "x-frame-options": "DENY"}, context={
        "session": session, "tiles": tiles, "attribution": config.get("map", "attribution"),
        "labels": json.dumps(labels, ensure_ascii=False)})


@get("/app/map/points", name="map_points", sync_to_thread=True)
def map_points(request: Request) -> Response:
    session = require(request)
    rows = leads.with_coordinates(request.app.state.db, session["business_id"])
    with request.app.state.db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.map.view", entity="lead",
                     business_id=session["business_id"], fields=["first_name", "last_name", "postal_code"])
    lang = _lang()
    return Response({"points": [
        {"id": r["id"], "lat": r["latitude"], "lng": r["longitude"], "status": r["status"],
         "label": f"{r['first_name'] or ''} {r['last_name'] or ''}".strip() or r["reference"],
         "url": f"/{lang}/app/leads/{r['id']}"} for r in rows]})


@get("/app/overview", name="overview", sync_to_thread=True)
def overview(request: Request) -> Template:
    session = require(request)
    db = request.app.state.db
    now = clock.now()
    weeks = glance.weekly_counts(db, session["business_id"], session["timezone"], now)
    labels = {c: i18n.gettext(leads.CHANNEL_LABELS[c]) for c in leads.CHANNELS}
    chart = glance.svg_chart(weeks, labels, i18n.gettext("Requests per week, last 12 weeks"),
                             lambda d: i18n.format_short_date(d))
    median = glance.median_first_contact(db, session["business_id"])
    return Template("overview.html", context={
        "session": session, "chart": chart, "median": median, "weeks": weeks,
        "total": sum(w["web"] + w["phone"] + w["chat"] for w in weeks), "labels": labels})


routes = [
    Router(
        path="/{lang:str}",
        route_handlers=[login_page, login_submit, logout, app_home, lead_inbox, leads_latest, lead_page,
                        lead_status, lead_note, lead_edit, appointment_book, appointment_move,
                        appointment_cancel, calendar, lead_map, map_points, overview],
        before_request=set_language,
    ),
    ics_feed,
]
