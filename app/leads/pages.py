"""The lead inbox, one lead and what a person does to it, the map and the overview.

One URL, one handler: an htmx request gets the fragment it swaps in, a plain
request (or a plain form post) the full page or a redirect back to it.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

import jobs.intake
from app import appointments, audit, businesses, chat, clock, form, http, i18n, leads, normalize, voicemail
from app.businesses import signup
from app.chat import pages as chat_pages
from app.db import Database
from app.http import DB, Conf, Form, SignedIn, lang
from app.leads import LeadError, custom_fields, glance
from app.leads.fields import LEAD_FIELDS
from app.messaging import geocoding, outbox

# ---- inbox -----------------------------------------------------------------------------------


def _inbox_url(**params: Any) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "", 1)}
    return f"/{lang()}/app/leads" + (f"?{urlencode(clean)}" if clean else "")


@get("/app", name="app_home", sync_to_thread=False)
def app_home() -> Redirect:
    return Redirect(f"/{lang()}/app/leads", status_code=303)


@get("/app/leads", name="leads", sync_to_thread=True)
def lead_inbox(
    request: Request,
    session: SignedIn,
    db: DB,
    config: Conf,
    status: FromQuery[str | None] = None,
    channel: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    assigned: FromQuery[str | None] = None,
    page: FromQuery[int] = 1,
) -> Template:
    status = status if status in leads.STATUSES else None
    channel = channel if channel in leads.CHANNELS else None
    assigned = assigned if assigned in leads.VIEWS else None
    q = (q or "").strip()[:200]
    page = max(1, min(page, 10_000))
    view = {"assigned": assigned, "user_id": session["user_id"]}
    rows, has_next = leads.inbox(db, session["business_id"], status=status, channel=channel, q=q, page=page, **view)
    with db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.list.view", entity="lead",
                     business_id=session["business_id"],
                     fields=[f.name for f in LEAD_FIELDS if f.listed] if rows else [])
    context = {
        "session": session, "leads": rows, "counts": leads.counts_by_status(db, session["business_id"], **view),
        "status": status, "channel": channel, "q": q, "assigned": assigned, "page": page, "has_next": has_next,
        "statuses": leads.STATUSES, "channels": leads.CHANNELS, "views": leads.VIEWS, "url": _inbox_url,
        "latest_id": leads.latest_id(db, session["business_id"]),
    }
    if not http.is_htmx(request):  # the page (not the swapped list): the first-run checklist, the trial's end
        context.update(signup.dashboard_extras(db, session, has_lead=bool(context["latest_id"])),
                       public_url=config.public_url)
    return http.fragment_or_page(request, "leads/_inbox.html", "leads/inbox.html", context, target="inbox")


@get("/app/leads/latest", name="leads_latest", sync_to_thread=True)
def leads_latest(session: SignedIn, db: DB, since: FromQuery[int] = 0) -> Response:
    """Polled by the inbox: tells it to refresh when a newer lead exists. Carries
    only a number, so it is not an access to personal information."""
    if leads.latest_id(db, session["business_id"]) > since:
        return Response(None, status_code=204, headers={"HX-Trigger": "new-leads"})
    return Response(None, status_code=204)


# ---- one lead --------------------------------------------------------------------------------

def lead_or_404(db: Database, session: dict, lead_id: int) -> dict:
    lead = leads.get(db, session["business_id"], lead_id)
    if lead is None:
        raise NotFoundException()
    return lead


def lead_context(db: Database, session: dict, lead_id: int, **extra: Any) -> dict:
    """Everything the lead page shows; `extra` carries errors and the values to refill."""
    lead = lead_or_404(db, session, lead_id)
    answers = [custom_fields.display(e, lang(), i18n.gettext("Yes"), i18n.gettext("No"))
               for e in json.loads(lead["custom_fields"] or "{}").values()]
    local_now = clock.now().astimezone(ZoneInfo(session["timezone"]))
    return {
        "session": session, "lead": lead, "answers": answers, "statuses": leads.STATUSES,
        "messages": outbox.for_lead(db, session["business_id"], lead_id),
        "events": leads.timeline(db, session["business_id"], lead_id),
        "appointments": appointments.for_lead(db, session["business_id"], lead_id),
        "voicemails": voicemail.for_lead(db, session["business_id"], lead_id),
        "chat": _chat_thread(db, session, lead),
        "team": businesses.team(db, session["business_id"]),
        "default_day": (local_now + timedelta(days=1)).date().isoformat(),
        "errors": {}, "overlaps": [], "values": {}, "editing": False, **extra,
    }


def _chat_thread(db: Database, session: dict, lead: dict) -> dict | None:
    """The conversation a chat lead came from, as a readable thread (None once erased)."""
    if lead["channel"] != "chat" or lead["status"] == "anonymized":
        return None
    conversation = chat.for_lead(db, session["business_id"], lead["id"])
    if conversation is None or conversation["state"] == "erased":
        return None
    return {"conversation": conversation,
            "messages": chat_pages.message_views(db, conversation["id"], session["timezone"])}


def render_lead(request: Request, context: dict, status_code: int = 200) -> Template:
    return http.fragment_or_page(request, "leads/_lead.html", "leads/detail.html", context,
                                 status_code=status_code)


def after_action(request: Request, db: Database, session: dict, lead_id: int) -> Template | Redirect:
    """htmx: the refreshed lead; a plain form post: back to the lead page."""
    if http.is_htmx(request):
        # The person sees the lead as their change left it: it does not turn bold for them.
        leads.mark_read(db, session["business_id"], lead_id, user_id=session["user_id"])
        return render_lead(request, lead_context(db, session, lead_id))
    return Redirect(f"/{lang()}/app/leads/{lead_id}", status_code=303, headers=http.VARY_HTMX)


def lead_error(request: Request, db: Database, session: dict, lead_id: int, error: str, **extra: Any) -> Template:
    return render_lead(request, lead_context(db, session, lead_id, errors={"_lead": i18n.gettext(error)}, **extra),
                       status_code=422)


@get("/app/leads/{lead_id:int}", name="lead", sync_to_thread=True)
def lead_page(request: Request, session: SignedIn, db: DB, lead_id: FromPath[int],
              edit: FromQuery[str | None] = None) -> Template:
    context = lead_context(db, session, lead_id, editing=edit == "1")
    with db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.view", entity="lead",
                     entity_id=lead_id, business_id=session["business_id"],
                     fields=[f for f in leads.PERSONAL_FIELDS if context["lead"].get(f)])
    if context["chat"]:
        # The conversation's messages are personal information of their own: their view is audited too.
        chat.record_view(db, session["business_id"], context["chat"]["conversation"]["id"],
                         actor=f"user:{session['user_id']}")
    leads.mark_read(db, session["business_id"], lead_id, user_id=session["user_id"])
    return render_lead(request, context)


@post("/app/leads/{lead_id:int}/assign", name="lead_assign", sync_to_thread=True, status_code=200)
def lead_assign(request: Request, session: SignedIn, db: DB, config: Conf, lead_id: FromPath[int],
                data: Form) -> Template | Redirect:
    """Give the lead to a member of this team, or to nobody (an empty choice)."""
    lead_or_404(db, session, lead_id)
    chosen = data.get("assigned_to", "").strip()
    try:
        if chosen and not chosen.isdecimal():
            raise LeadError(i18n.N_("This person is not on your team."))
        leads.assign(db, session["business_id"], lead_id, int(chosen) if chosen else None,
                     user_id=session["user_id"], public_url=config.public_url)
    except LeadError as e:
        return lead_error(request, db, session, lead_id, str(e))
    return after_action(request, db, session, lead_id)


@post("/app/leads/{lead_id:int}/status", name="lead_status", sync_to_thread=True, status_code=200)
def lead_status(request: Request, session: SignedIn, db: DB, lead_id: FromPath[int],
                data: Form) -> Template | Redirect:
    lead_or_404(db, session, lead_id)
    try:
        leads.set_status(db, session["business_id"], lead_id, data.get("status", ""), user_id=session["user_id"])
    except LeadError as e:
        return lead_error(request, db, session, lead_id, str(e))
    return after_action(request, db, session, lead_id)


@post("/app/leads/{lead_id:int}/notes", name="lead_note", sync_to_thread=True, status_code=200)
def lead_note(request: Request, session: SignedIn, db: DB, lead_id: FromPath[int],
              data: Form) -> Template | Redirect:
    lead_or_404(db, session, lead_id)
    try:
        leads.add_note(db, session["business_id"], lead_id, normalize.clean(data.get("note", ""), multiline=True),
                       user_id=session["user_id"])
    except LeadError as e:
        return lead_error(request, db, session, lead_id, str(e))
    return after_action(request, db, session, lead_id)


@post("/app/leads/{lead_id:int}/edit", name="lead_edit", sync_to_thread=True, status_code=200)
def lead_edit(request: Request, session: SignedIn, db: DB, lead_id: FromPath[int],
              data: Form) -> Template | Redirect:
    """A rectification: the same checks as the public form; the audit keeps field names."""
    lead_or_404(db, session, lead_id)
    changes, errors = {}, {}
    for name in leads.EDITABLE:
        if name in data:
            value, error = form.validate_field(name, data[name])
            if error:
                errors[name] = i18n.gettext(error)
            else:
                changes[name] = value
    if errors:
        return render_lead(request, lead_context(db, session, lead_id, errors=errors, values=data, editing=True),
                           status_code=422)
    try:
        leads.rectify(db, session["business_id"], lead_id, changes, user_id=session["user_id"])
    except LeadError as e:
        return lead_error(request, db, session, lead_id, str(e))
    if geocoding.is_pending(db, lead_id):
        jobs.intake.geocode(lead_id)
    return after_action(request, db, session, lead_id)


@post("/app/leads/{lead_id:int}/confirm", name="lead_confirm", sync_to_thread=True, status_code=303)
def lead_confirm(session: SignedIn, db: DB, lead_id: FromPath[int]) -> Redirect:
    """A person checked what the AI extracted: the fields are no longer "to verify"."""
    if not leads.confirm_ai_fields(db, session["business_id"], lead_id, user_id=session["user_id"]):
        raise NotFoundException()
    return Redirect(f"/{lang()}/app/leads/{lead_id}", status_code=303)


# ---- map, overview ---------------------------------------------------------------------------

@get("/app/map", name="map", sync_to_thread=True)
def lead_map(session: SignedIn, config: Conf, db: DB) -> Template:
    labels = {s: i18n.pgettext(*leads.STATUS_LABELS[s]) for s in leads.STATUSES}
    # This page alone may load the tile server's images.
    tiles = config.map.tile_url
    origin = "/".join(tiles.split("/")[:3])
    return Template("leads/map.html", headers={"content-security-policy": http.csp(img=origin),
                                               "x-frame-options": "DENY"}, context={
        "session": session, "tiles": tiles, "attribution": config.map.attribution,
        "labels": json.dumps(labels, ensure_ascii=False),
        "waiting": geocoding.waiting_count(db, session["business_id"])})


@get("/app/map/points", name="map_points", sync_to_thread=True)
def map_points(session: SignedIn, db: DB) -> Response:
    rows = leads.with_coordinates(db, session["business_id"])
    with db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.map.view", entity="lead",
                     business_id=session["business_id"], fields=["first_name", "last_name", "postal_code"])
    return Response({"points": [
        {"id": r["id"], "lat": r["latitude"], "lng": r["longitude"], "status": r["status"],
         "label": f"{r['first_name'] or ''} {r['last_name'] or ''}".strip() or r["reference"],
         "url": f"/{lang()}/app/leads/{r['id']}"} for r in rows]})


@get("/app/overview", name="overview", sync_to_thread=True)
def overview(session: SignedIn, db: DB) -> Template:
    weeks = glance.weekly_counts(db, session["business_id"], session["timezone"], clock.now())
    labels = {c: i18n.gettext(leads.CHANNEL_LABELS[c]) for c in leads.CHANNELS}
    chart = glance.svg_chart(weeks, labels, i18n.gettext("Requests per week, last 12 weeks"),
                             lambda d: i18n.format_short_date(d))
    return Template("leads/overview.html", context={
        "session": session, "chart": chart, "median": glance.median_first_contact(db, session["business_id"]),
        "weeks": weeks, "total": sum(w["web"] + w["phone"] + w["chat"] for w in weeks), "labels": labels})


routes: http.Routes = [
    http.localized(app_home),
    http.dashboard(lead_inbox, leads_latest, lead_page, lead_status, lead_assign, lead_note, lead_edit, lead_confirm,
                   lead_map, map_points, overview),
]
