"""Booking, moving and cancelling a lead's appointments; the week's calendar; the ICS feed.

Actions are posted from the lead page, and answer with it (the refreshed fragment
for htmx, a redirect for a plain post, the page with the problem otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

import jobs.intake
from app import appointments, audit, businesses, clock, http, i18n
from app.appointments import AppointmentError, Slot
from app.db import Database
from app.http import DB, Conf, Form, SignedIn
from app.leads import LeadError
from app.leads.pages import after_action, lead_context, lead_error, lead_or_404, render_lead


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        return 0


def _wake_sms(ids: list[int]) -> None:
    for message_id in ids:
        jobs.intake.send_sms(message_id)


def _slot_action(request: Request, db: Database, session: dict, lead_id: int, data: dict,
                 appointment_id: int | None, act: Callable[[Slot], list[int]]) -> Template | Redirect:
    """Book or move: read the slot, warn on overlap unless confirmed, act, wake the SMS."""
    try:
        slot = Slot.local(data.get("day", ""), data.get("time", ""), _int(data.get("duration")),
                          session["timezone"])
        appointments.refuse_past(slot)  # before the overlap warning: a past slot is never booked
        overlaps = appointments.overlapping(db, session["business_id"], slot, appointment_id)
        if overlaps and data.get("confirm_overlap") != "yes":
            return render_lead(request, lead_context(db, session, lead_id, overlaps=overlaps, values=data,
                                                     slot_form=appointment_id or "b"), status_code=409)
        sms = act(slot)
    except AppointmentError as e:
        # Shown in the appointments section, by the form the person just used.
        return render_lead(request, lead_context(db, session, lead_id, values=data, slot_form=appointment_id or "b",
                                                 errors={"appointment": i18n.gettext(str(e))}), status_code=422)
    except LeadError as e:
        return lead_error(request, db, session, lead_id, str(e), values=data)
    _wake_sms(sms)
    return after_action(request, db, session, lead_id)


def _lead_of(db: Database, session: dict, appointment_id: int) -> int:
    lead_id = appointments.lead_id_of(db, session["business_id"], appointment_id)
    if lead_id is None:
        raise NotFoundException()
    return lead_id


@post("/app/leads/{lead_id:int}/appointments", name="appointment_book", sync_to_thread=True, status_code=200)
def appointment_book(request: Request, session: SignedIn, db: DB, lead_id: FromPath[int],
                     data: Form) -> Template | Redirect:
    lead_or_404(db, session, lead_id)
    business = businesses.get(db, session["business_id"])
    return _slot_action(request, db, session, lead_id, data, None, lambda slot: appointments.book(
        db, business, lead_id, slot, user_id=session["user_id"])[1])


@post("/app/appointments/{appointment_id:int}/move", name="appointment_move", sync_to_thread=True, status_code=200)
def appointment_move(request: Request, session: SignedIn, db: DB, appointment_id: FromPath[int],
                     data: Form) -> Template | Redirect:
    lead_id = _lead_of(db, session, appointment_id)
    business = businesses.get(db, session["business_id"])
    return _slot_action(request, db, session, lead_id, data, appointment_id, lambda slot: appointments.move(
        db, business, appointment_id, slot, user_id=session["user_id"]))


@post("/app/appointments/{appointment_id:int}/cancel", name="appointment_cancel", sync_to_thread=True,
      status_code=200)
def appointment_cancel(request: Request, session: SignedIn, db: DB, appointment_id: FromPath[int],
                       data: Form) -> Template | Redirect:
    """Two steps: without confirm=yes, the lead with a confirmation naming the appointment (the
    client gets an SMS); with it, the cancellation."""
    lead_id = _lead_of(db, session, appointment_id)
    if data.get("confirm") != "yes":
        appointment = appointments.get(db, session["business_id"], appointment_id)
        if appointment is None or appointment["status"] != "booked":
            return after_action(request, db, session, lead_id)
        return render_lead(request, lead_context(db, session, lead_id, cancelling=appointment))
    try:
        sms = appointments.cancel(db, businesses.get(db, session["business_id"]), appointment_id,
                                  user_id=session["user_id"])
    except LeadError as e:
        return lead_error(request, db, session, lead_id, str(e))
    _wake_sms(sms)
    return after_action(request, db, session, lead_id)


@get("/app/calendar", name="calendar", sync_to_thread=True)
def calendar(session: SignedIn, db: DB, config: Conf, week: FromQuery[str | None] = None) -> Template:
    tz = ZoneInfo(session["timezone"])
    today = clock.now().astimezone(tz).date()
    try:
        day = date.fromisoformat(week) if week else today
    except ValueError:
        day = today
    if not appointments.FIRST_YEAR <= day.year <= appointments.LAST_YEAR:
        day = today
    monday = day - timedelta(days=day.weekday())
    rows = appointments.week(db, session["business_id"], monday, session["timezone"])
    days = []
    for i in range(7):
        d = monday + timedelta(days=i)
        days.append({"date": d, "appointments": [r for r in rows
                                                 if datetime.fromisoformat(r["starts_at"]).astimezone(tz).date() == d]})
    token = businesses.feed_token(db, session["business_id"])
    return Template("appointments/calendar.html", context={
        "session": session, "days": days, "monday": monday,
        "prev": (monday - timedelta(days=7)).isoformat(), "next": (monday + timedelta(days=7)).isoformat(),
        "feed_url": f"{config.public_url}/ics/{token}.ics"})


@get("/ics/{token:str}", name="ics_feed", sync_to_thread=True)
def ics_feed(db: DB, config: Conf, token: FromPath[str]) -> Response:
    """The calendar feed the owner's phone subscribes to; the secret URL is the key."""
    business = businesses.by_feed_token(db, token.removesuffix(".ics"))
    if business is None:
        raise NotFoundException()
    with db.write() as conn:
        audit.record(conn, actor="calendar-feed", action="appointment.feed", entity="appointment",
                     business_id=business["id"], fields=["first_name"])
    return Response(appointments.ics(db, business, config.public_url), media_type="text/calendar; charset=utf-8",
                    headers={"cache-control": "private, max-age=300"})


routes: http.Routes = [
    http.dashboard(appointment_book, appointment_move, appointment_cancel, calendar),
    ics_feed,
]
