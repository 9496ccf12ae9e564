"""Opening hours of a business, and what the form tells a client about call-backs.

Hours are JSON on the business: {"mon": [["08:00", "17:00"]], "sat": [["09:00", "12:00"]]},
in the business's own time zone. No hours set: no message at all.
"""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_time

from app import i18n

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse(hours_json: str) -> dict[str, list[tuple[time, time]]]:
    raw = json.loads(hours_json or "{}")
    return {
        day: [(time.fromisoformat(a), time.fromisoformat(b)) for a, b in raw.get(day, [])]
        for day in DAYS
    }


def callback_message(hours_json: str, tz: str, now: datetime) -> str | None:
    """A sentence for the client, in the request's language: open now, or when the
    business will call back. None when the business has not set its hours."""
    hours = parse(hours_json)
    if not any(hours.values()):
        return None
    local = now.astimezone(ZoneInfo(tz))
    for start, end in hours[DAYS[local.weekday()]]:
        if start <= local.time() < end:
            return i18n.gettext("We are open: we will call you back shortly.")
    locale = i18n.LOCALES[i18n.current_language.get()]
    for offset in range(0, 8):
        day = local + timedelta(days=offset)
        for start, _end in sorted(hours[DAYS[day.weekday()]]):
            if offset == 0 and start <= local.time():
                continue
            # «8 h 00» in Quebec French; "8:00 a.m." in Canadian English.
            at = format_time(start, format=i18n.FR_TIME if locale == "fr_CA" else "short", locale=locale)
            if offset == 0:
                return i18n.gettext("We are closed right now; we will call you back from %(time)s today.") % {
                    "time": at}
            if offset == 1:
                if start < time(12):
                    return i18n.gettext("We are closed right now; we will call you back tomorrow morning.")
                return i18n.gettext("We are closed right now; we will call you back from %(time)s tomorrow.") % {
                    "time": at}
            weekday = i18n.format_weekday(day, heading=False)
            return i18n.gettext("We are closed right now; we will call you back from %(time)s on %(day)s.") % {
                "day": weekday, "time": at}
    return None
