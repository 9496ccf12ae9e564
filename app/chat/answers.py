"""What the chat may say about the business, from its settings only.

Hours and whether it is open now, the service area, the call-back delay. Anything else
a visitor asks (a price, a promise, a date) gets "the team will answer when they call
you back": no engine, model or not, says a fact about the business that is not here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from babel.dates import format_time, format_timedelta

from app import clock, i18n
from app.businesses import hours as hours_mod
from app.i18n import N_

_QUESTION_START = re.compile(
    r"^\s*(est-ce|quand|combien|quel|quelle|quels|quelles|o[uù]|pourquoi|comment|pouvez|faites|venez|[êe]tes|"
    r"avez|allez|acceptez|do|does|are|is|can|could|will|would|when|what|how|where|why|which)\b", re.IGNORECASE)
_TOPICS = (
    # "combien de temps" asks about the delay, not a price.
    ("price", re.compile(r"(\$|\bprix\b|co[uû]te?s?\b|co[uû]ts?\b|combien(?! de temps)|tarifs?\b|frais\b|gratuit"
                         r"|price|cost|how much|charge|fee|quote|soumission|estimat|rabais|discount|free\b)",
                         re.IGNORECASE)),
    ("hours", re.compile(r"\b(heures?|horaires?|ouverts?|ouvertes?|ferm[ée]s?|fermez|open|closed?|hours|"
                         r"samedi|dimanche|saturday|sunday|weekend|fin de semaine)\b", re.IGNORECASE)),
    ("area", re.compile(r"\b(secteurs?|territoires?|r[ée]gions?|desserv\w*|area|serve|servicing|zones?|"
                        r"venez[- ]vous|come to|travel to|villes?|city)\b", re.IGNORECASE)),
    ("delay", re.compile(r"\b(d[ée]lais?|combien de temps|rappel\w*|how long|how soon|call (?:me )?back|"
                         r"quand (?:allez|pourrez|est-ce)|when will)\b", re.IGNORECASE)),
)
_DAY_NAMES = {"fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
              "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")}
TEAM_WILL_ANSWER = N_("I cannot answer that here: the team will answer your question when they call you back.")


@dataclass
class Facts:
    """The settings the chat may speak of."""

    hours_json: str = "{}"
    timezone: str = "America/Toronto"
    area: list[str] = field(default_factory=list)  # postal code prefixes ("H2X", "J4") and city names
    callback_hours: int | None = None

    @classmethod
    def of(cls, business: dict) -> Facts:
        return cls(hours_json=business.get("hours") or "{}", timezone=business.get("timezone") or "America/Toronto",
                   area=parse_area(business.get("service_area") or ""), callback_hours=business.get("callback_hours"))

    @property
    def prefixes(self) -> list[str]:
        return [a.replace(" ", "").upper() for a in self.area if is_prefix(a)]

    @property
    def cities(self) -> list[str]:
        return [a for a in self.area if not is_prefix(a)]

    def area_note(self, postal_code: str, lang: str) -> str | None:
        """A word when a postal code falls outside the prefixes set (the request is taken anyway)."""
        if not self.prefixes:
            return None
        compact = postal_code.replace(" ", "").upper()
        if any(compact.startswith(p) for p in self.prefixes):
            return None
        return i18n.gettext_in(lang, "This postal code seems to be outside the area we usually serve; "
                                     "your request is still passed on to the team, who will tell you.")


def is_prefix(item: str) -> bool:
    return re.fullmatch(r"[A-Za-z](\d([A-Za-z](\s?\d([A-Za-z]\d?)?)?)?)?", item.strip()) is not None


def parse_area(text: str) -> list[str]:
    """One place per line or comma: "H2X, H2Y\nLaval" -> ["H2X", "H2Y", "Laval"]."""
    items = [i.strip() for i in re.split(r"[\n,;]", text or "")]
    return [i.upper() if is_prefix(i) else i for i in items if i][:100]


@dataclass
class Answer:
    kind: str  # "price" | "hours" | "area" | "delay" | "other"
    text: str


def is_question(text: str) -> bool:
    return "?" in text or _QUESTION_START.match(text) is not None


def answer(text: str, facts: Facts, lang: str, now: datetime | None = None) -> Answer | None:
    """The answer to a question about the business, or None when `text` is not a question."""
    if not is_question(text):
        return None
    for kind, pattern in _TOPICS:
        if pattern.search(text):
            return Answer(kind, _ANSWERS[kind](facts, lang, now or clock.now()))
    return Answer("other", i18n.gettext_in(lang, TEAM_WILL_ANSWER))


def _callback_sentence(facts: Facts, lang: str, now: datetime) -> str | None:
    token = i18n.current_language.set(lang)
    try:
        return hours_mod.callback_message(facts.hours_json, facts.timezone, now)
    finally:
        i18n.current_language.reset(token)


def hours_text(facts: Facts, lang: str) -> str | None:
    """«lundi : 8 h 00 – 17 h 00; …» for the days with hours, in the business's week order."""
    week = hours_mod.parse(facts.hours_json)
    if not any(week.values()):
        return None
    fmt = i18n.FR_TIME if lang == "fr" else "short"
    locale = i18n.LOCALES[lang]
    parts = []
    for index, day in enumerate(hours_mod.DAYS):
        spans = ", ".join(f"{format_time(a, fmt, locale=locale)} – {format_time(b, fmt, locale=locale)}"
                          for a, b in week[day])
        closed = i18n.gettext_in(lang, "closed")
        parts.append(f"{_DAY_NAMES[lang][index]}{' :' if lang == 'fr' else ':'} {spans or closed}")
    return "; ".join(parts) + "."


def _hours(facts: Facts, lang: str, now: datetime) -> str:
    listing = hours_text(facts, lang)
    if listing is None:
        return i18n.gettext_in(lang, "Our hours are not listed here; the team will tell you when they call "
                                     "you back.")
    local = now.astimezone(ZoneInfo(facts.timezone))
    spans = hours_mod.parse(facts.hours_json)[hours_mod.DAYS[local.weekday()]]
    open_now = any(a <= local.time() < b for a, b in spans)
    if open_now:
        state = i18n.gettext_in(lang, "We are open right now.")
    else:
        state = i18n.gettext_in(lang, "We are closed right now.")
    return f"{state} {i18n.gettext_in(lang, 'Our hours:')} {listing}"


def _area(facts: Facts, lang: str, now: datetime) -> str:
    if not facts.area:
        return i18n.gettext_in(lang, "The team will confirm whether they serve your area when they call you "
                                     "back; give your postal code and I will pass it on.")
    return i18n.gettext_in(lang, "We serve: %(places)s. Outside it, your request is still passed on to the "
                                 "team.") % {"places": ", ".join(facts.area)}


def _delay(facts: Facts, lang: str, now: datetime) -> str:
    parts = []
    if facts.callback_hours:
        delay = format_timedelta(timedelta(hours=facts.callback_hours), threshold=1000, granularity="hour",
                                 locale=i18n.LOCALES[lang])
        parts.append(i18n.gettext_in(lang, "The team usually calls back within %(delay)s.") % {"delay": delay})
    sentence = _callback_sentence(facts, lang, now)
    if sentence:
        parts.append(sentence)
    return " ".join(parts) or i18n.gettext_in(lang, "The team will call you back as soon as they can.")


def _team_will_answer(facts: Facts, lang: str, now: datetime) -> str:
    return i18n.gettext_in(lang, TEAM_WILL_ANSWER)


_ANSWERS = {"price": _team_will_answer, "hours": _hours, "area": _area, "delay": _delay}
