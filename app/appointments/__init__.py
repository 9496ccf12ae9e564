"""Appointments with a lead: book, move, cancel; the week calendar; the ICS feed.

Times are entered and shown in the business's time zone and stored in UTC. Each
change sends the client a confirmation SMS (through the outbox) in the client's
language, and lands on the lead's timeline and in the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from app import audit, clock, i18n, leads
from app.db import Database
from app.messaging import outbox

MIN_DURATION, MAX_DURATION = 15, 8 * 60
# The years a booking or a calendar page may be in: wide enough for any business, far from datetime's limits.
FIRST_YEAR, LAST_YEAR = 2000, 2100


class AppointmentError(ValueError):
    """The message is a msgid for the person."""


@dataclass
class Slot:
    starts_at: datetime  # UTC
    ends_at: datetime

    @classmethod
    def local(cls, day: str, at: str, minutes: int, tz: str) -> Slot:
        """From the form's date, time and duration, in the business's time zone."""
        try:
            start = datetime.fromisoformat(f"{day}T{at}").replace(tzinfo=ZoneInfo(tz))
        except ValueError:
            raise AppointmentError(i18n.N_("Enter a date and a time.")) from None
        if not FIRST_YEAR <= start.year <= LAST_YEAR:  # 9999-12-31 23:59 + 1 h overflows
            raise AppointmentError(i18n.N_("Enter a date and a time."))
        if not MIN_DURATION <= minutes <= MAX_DURATION:
            raise AppointmentError(i18n.N_("The duration must be between 15 minutes and 8 hours."))
        start = start.astimezone(UTC)
        return cls(start, start + timedelta(minutes=minutes))


def refuse_past(slot: Slot) -> None:
    """A slot that has already started is refused: the client would get an SMS for a time gone by."""
    if slot.starts_at < clock.now():
        raise AppointmentError(i18n.N_("This time has already passed: choose a time to come."))


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds")


def overlapping(db: Database, business_id: int, slot: Slot, exclude_id: int | None = None) -> list[dict]:
    """Booked appointments of the business that overlap the slot (a warning, not a refusal)."""
    return db.query(
        """SELECT a.*, l.first_name, l.last_name FROM appointments a JOIN leads l ON l.id = a.lead_id
           WHERE a.business_id = ? AND a.status = 'booked' AND a.starts_at < ? AND a.ends_at > ?
             AND a.id != coalesce(?, -1) ORDER BY a.starts_at""",
        (business_id, _iso(slot.ends_at), _iso(slot.starts_at), exclude_id),
    )


def _confirmation(business: dict, lead: dict, slot: Slot | None, msgid: str) -> str:
    lang = lead["language"]
    text = i18n.gettext_in(lang, msgid)
    when = i18n.format_when(slot.starts_at, business["timezone"], lang) if slot else ""
    return text % {"business": business["name"], "when": when}


def _notify_client(conn, business: dict, lead: dict, slot: Slot | None, msgid: str) -> int | None:
    if not lead["phone"]:
        return None
    return outbox.queue(conn, business_id=business["id"], lead_id=lead["id"], kind="client_appointment",
                        to=lead["phone"], body=_confirmation(business, lead, slot, msgid))


def book(db: Database, business: dict, lead_id: int, slot: Slot, *, user_id: int) -> tuple[int, list[int]]:
    """Returns (appointment id, outbox ids to wake). LookupError: not this business's lead."""
    refuse_past(slot)
    now = clock.now_iso()
    with db.write() as conn:
        lead = leads._locked(conn, business["id"], lead_id)
        conn.execute(
            "INSERT INTO appointments (business_id, lead_id, starts_at, ends_at, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (business["id"], lead_id, _iso(slot.starts_at), _iso(slot.ends_at), user_id, now, now),
        )
        appointment_id = conn.last_insert_rowid()
        leads._event(conn, business_id=business["id"], lead_id=lead_id, user_id=user_id, kind="appointment",
                     data={"action": "booked", "appointment_id": appointment_id, "starts_at": _iso(slot.starts_at)})
        audit.record(conn, actor=f"user:{user_id}", action="appointment.book", entity="appointment",
                     entity_id=appointment_id, business_id=business["id"], fields=["starts_at", "ends_at"])
        sms = _notify_client(conn, business, lead, slot, i18n.N_(
            "%(business)s: your appointment is confirmed for %(when)s — reply or call us to change it."))
    if lead["status"] in ("new", "contacted"):
        leads.set_status(db, business["id"], lead_id, "scheduled", user_id=user_id)
    return appointment_id, [sms] if sms else []


def _appointment(conn, business_id: int, appointment_id: int) -> dict:
    rows = list(conn.execute("SELECT * FROM appointments WHERE business_id = ? AND id = ?",
                             (business_id, appointment_id)))
    if not rows:
        raise LookupError(appointment_id)
    return rows[0]


def move(db: Database, business: dict, appointment_id: int, slot: Slot, *, user_id: int) -> list[int]:
    refuse_past(slot)
    with db.write() as conn:
        appt = _appointment(conn, business["id"], appointment_id)
        if appt["status"] != "booked":
            raise AppointmentError(i18n.N_("This appointment was cancelled."))
        lead = leads._locked(conn, business["id"], appt["lead_id"])
        conn.execute("UPDATE appointments SET starts_at = ?, ends_at = ?, updated_at = ? WHERE id = ?",
                     (_iso(slot.starts_at), _iso(slot.ends_at), clock.now_iso(), appointment_id))
        leads._event(conn, business_id=business["id"], lead_id=lead["id"], user_id=user_id, kind="appointment",
                     data={"action": "moved", "appointment_id": appointment_id, "starts_at": _iso(slot.starts_at)})
        audit.record(conn, actor=f"user:{user_id}", action="appointment.move", entity="appointment",
                     entity_id=appointment_id, business_id=business["id"], fields=["starts_at", "ends_at"])
        sms = _notify_client(conn, business, lead, slot, i18n.N_(
            "%(business)s: your appointment was moved — new time: %(when)s"))
    return [sms] if sms else []


def get(db: Database, business_id: int, appointment_id: int) -> dict | None:
    """One appointment of the business, with its client's name and phone (for the confirmation step)."""
    return db.query_one(
        """SELECT a.*, l.first_name, l.last_name, l.phone FROM appointments a JOIN leads l ON l.id = a.lead_id
           WHERE a.business_id = ? AND a.id = ?""", (business_id, appointment_id))


def _status_before_booking(db: Database, business_id: int, lead_id: int) -> str:
    """The status the lead had when a booking made it "scheduled": the `from` of the latest
    status change to "scheduled" on its timeline. Booking only moves a new or contacted lead,
    so anything else (or no such change) gives "new"."""
    for event in reversed(leads.timeline(db, business_id, lead_id)):
        data = json.loads(event["data"] or "{}")
        if event["kind"] == "status" and data.get("to") == "scheduled":
            return data["from"] if data.get("from") in ("new", "contacted") else "new"
    return "new"


def cancel(db: Database, business: dict, appointment_id: int, *, user_id: int) -> list[int]:
    """Cancel, text the client, and put a lead that this left "scheduled" with nothing booked
    back to the status it had before booking (a status change on its timeline)."""
    with db.write() as conn:
        appt = _appointment(conn, business["id"], appointment_id)
        if appt["status"] == "cancelled":
            return []
        lead = leads._locked(conn, business["id"], appt["lead_id"])
        conn.execute("UPDATE appointments SET status = 'cancelled', updated_at = ? WHERE id = ?",
                     (clock.now_iso(), appointment_id))
        leads._event(conn, business_id=business["id"], lead_id=lead["id"], user_id=user_id, kind="appointment",
                     data={"action": "cancelled", "appointment_id": appointment_id})
        audit.record(conn, actor=f"user:{user_id}", action="appointment.cancel", entity="appointment",
                     entity_id=appointment_id, business_id=business["id"], fields=["status"])
        slot = Slot(datetime.fromisoformat(appt["starts_at"]), datetime.fromisoformat(appt["ends_at"]))
        sms = _notify_client(conn, business, lead, slot, i18n.N_(
            "%(business)s: your appointment of %(when)s is cancelled. We will contact you."))
        still_booked = list(conn.execute(
            "SELECT 1 FROM appointments WHERE business_id = ? AND lead_id = ? AND status = 'booked'",
            (business["id"], lead["id"])))
    if lead["status"] == "scheduled" and not still_booked:
        leads.set_status(db, business["id"], lead["id"], _status_before_booking(db, business["id"], lead["id"]),
                         user_id=user_id)
    return [sms] if sms else []


def lead_id_of(db: Database, business_id: int, appointment_id: int) -> int | None:
    row = db.query_one("SELECT lead_id FROM appointments WHERE business_id = ? AND id = ?",
                       (business_id, appointment_id))
    return row["lead_id"] if row else None


def for_lead(db: Database, business_id: int, lead_id: int) -> list[dict]:
    return db.query("SELECT * FROM appointments WHERE business_id = ? AND lead_id = ? ORDER BY starts_at",
                    (business_id, lead_id))


def week(db: Database, business_id: int, monday: date, tz: str) -> list[dict]:
    """Booked appointments from Monday 00:00 to the next Monday, local time."""
    start = datetime.combine(monday, datetime.min.time(), ZoneInfo(tz))
    end = start + timedelta(days=7)
    return db.query(
        """SELECT a.*, l.first_name, l.last_name, l.reference FROM appointments a JOIN leads l ON l.id = a.lead_id
           WHERE a.business_id = ? AND a.status = 'booked' AND a.starts_at >= ? AND a.starts_at < ?
           ORDER BY a.starts_at""",
        (business_id, _iso(start), _iso(end)),
    )


def _ics_text(value: str) -> str:
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r", "").replace("\n", "\\n"))


def _fold(line: str) -> str:
    """RFC 5545: lines of at most 75 octets, continued with a space."""
    out, current = [], ""
    for ch in line:
        if len((current + ch).encode()) > 75:
            out.append(current)
            current = " " + ch
        else:
            current += ch
    out.append(current)
    return "\r\n".join(out)


def ics(db: Database, business: dict, public_url: str, since: datetime | None = None) -> str:
    """The business's booked appointments (from 30 days back) as an iCalendar feed.
    Summaries carry the client's first name and the lead's reference only; LOCATION
    carries the street address and postal code, which the owner needs to drive there."""
    since = since or clock.now() - timedelta(days=30)
    rows = db.query(
        """SELECT a.*, l.first_name, l.reference, l.street_address, l.postal_code
           FROM appointments a JOIN leads l ON l.id = a.lead_id
           WHERE a.business_id = ? AND a.status = 'booked' AND a.ends_at >= ? ORDER BY a.starts_at""",
        (business["id"], _iso(since)),
    )
    stamp = clock.now().strftime("%Y%m%dT%H%M%SZ")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Capteo//Appointments//FR",
             "CALSCALE:GREGORIAN", f"X-WR-CALNAME:{_ics_text(business['name'])} — Capteo"]
    for r in rows:
        start = datetime.fromisoformat(r["starts_at"]).strftime("%Y%m%dT%H%M%SZ")
        end = datetime.fromisoformat(r["ends_at"]).strftime("%Y%m%dT%H%M%SZ")
        lang = business.get("language") or "fr"
        summary = f"{r['first_name'] or ''} ({r['reference']})".strip()
        lines += ["BEGIN:VEVENT", f"UID:capteo-appointment-{r['id']}@capteo", f"DTSTAMP:{stamp}",
                  f"DTSTART:{start}", f"DTEND:{end}", f"SUMMARY:{_ics_text(summary)}",
                  f"URL:{public_url}/{lang}/app/leads/{r['lead_id']}"]
        place = ", ".join(p.strip() for p in (r["street_address"], r["postal_code"]) if p and p.strip())
        if place:
            lines.append(f"LOCATION:{_ics_text(place)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
