"""Languages: gettext catalogs from `locales/` and fr-CA / en-CA formatting.

The language of a request comes from its URL (`/fr/…`, `/en/…`) and lives in a
ContextVar for the duration of the request, so Jinja's `_()` (installed once, for
the whole environment) and the formatters below answer in that request's language.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date, datetime, timedelta
from functools import cache, lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
from babel import Locale
from babel.dates import format_date as _format_date
from babel.dates import format_datetime as _format_datetime
from babel.dates import format_time, format_timedelta
from babel.support import NullTranslations, Translations

from app.config import ROOT

LANGUAGES = ("fr", "en")
LOCALES = {"fr": "fr_CA", "en": "en_CA"}
LOCALES_DIR = ROOT / "locales"

current_language: ContextVar[str] = ContextVar("current_language", default="fr")


class CatalogMissing(RuntimeError):
    pass


@cache
def translations(lang: str) -> NullTranslations:
    mo = LOCALES_DIR / lang / "LC_MESSAGES" / "messages.mo"
    if not mo.exists():
        raise CatalogMissing(
            f"{mo} is missing: compile the catalogs with `make locales` (part of `make run`)"
        )
    return Translations.load(str(LOCALES_DIR), [lang], domain="messages")


def check_catalogs() -> None:
    """Fail at start-up, not on the first page, when a catalog was not compiled."""
    for lang in LANGUAGES:
        translations(lang)


def N_(message: str) -> str:
    """Marks a message for extraction; it is translated later, where it is shown."""
    return message


def NP_(context: str, message: str) -> tuple[str, str]:
    """N_ with a context, for words that translate differently by use."""
    return context, message


def gettext(message: str) -> str:
    return translations(current_language.get()).ugettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).ungettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return translations(current_language.get()).upgettext(context, message)


def npgettext(context: str, singular: str, plural: str, n: int) -> str:
    return translations(current_language.get()).unpgettext(context, singular, plural, n)


def other_language(lang: str) -> str:
    return "en" if lang == "fr" else "fr"


@cache  # two languages; every page's header shows the other one's name
def language_name(lang: str) -> str:
    """The language's own name, capitalised: «Français», "English"."""
    name = Locale.parse(LOCALES[lang]).get_display_name(LOCALES[lang]) or lang
    return name.split(" (")[0].capitalize()


def best_language(accept_language: str | None, default: str = "fr") -> str:
    """The first of our languages named in an Accept-Language header, by its q weights."""
    if not accept_language:
        return default
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            choices.append((-q, i, primary))
    return min(choices)[2] if choices else default


def _to_zone(value: datetime | str, tz: str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(ZoneInfo(tz))


def format_datetime(value: datetime | str | None, tz: str, fmt: str = "medium", lang: str | None = None) -> str:
    """A UTC timestamp shown in the business's time zone, fr-CA or en-CA style
    (the request's language unless `lang` says otherwise)."""
    if value is None or value == "":
        return ""
    return _formatted_datetime(value, tz, fmt, lang or current_language.get())


# Formatting is pure and Babel's is slow (0.1-0.3 ms a call: an inbox page of 25 leads spent a
# third of its rendering in dates and phone numbers); the same values come back page after page.
@lru_cache(maxsize=8192)
def _formatted_datetime(value: datetime | str, tz: str, fmt: str, lang: str) -> str:
    local = _to_zone(value, tz)
    if fmt == "medium":
        # Babel's medium time carries seconds («14 h 58 min 20 s»): nobody needs them here.
        clock_time = format_time(local.time(), FR_TIME if lang == "fr" else "short", locale=LOCALES[lang])
        return f"{_format_date(local.date(), format='medium', locale=LOCALES[lang])}, {clock_time}"
    return _format_datetime(local, format=fmt, locale=LOCALES[lang])


def format_date(value: datetime | date | str | None, tz: str, fmt: str = "long") -> str:
    if value is None or value == "":
        return ""
    day = value if isinstance(value, date) and not isinstance(value, datetime) else _to_zone(value, tz).date()
    return _format_date(day, format=fmt, locale=LOCALES[current_language.get()])


def format_day(value: date | str | None, fmt: str = "long") -> str:
    """A calendar day stored without a time ("2026-03-02": a request's received_on, its
    due_on), shown as that same day: no time zone applies, so none shifts it (read as an
    instant, midnight UTC is the evening before in Quebec)."""
    if value is None or value == "":
        return ""
    day = value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    return _format_date(day, format=fmt, locale=LOCALES[current_language.get()])


def format_duration(value: timedelta) -> str:
    """«2 heures», "35 minutes" — the largest sensible unit."""
    return format_timedelta(value, threshold=1.5, locale=LOCALES[current_language.get()])


def catalog_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / "messages.po"


def format_phone(e164: str | None) -> str:
    """A stored E.164 number as people here write it: «514 555-0101» in French (OQLF
    style), "(514) 555-0101" in English; international numbers in international format."""
    if not e164:
        return ""
    return _formatted_phone(e164, current_language.get())


def forget_formatted() -> None:
    """Drop the formatting caches: after an erasure, no erased phone number stays in memory."""
    _formatted_phone.cache_clear()
    _formatted_datetime.cache_clear()


@lru_cache(maxsize=8192)
def _formatted_phone(e164: str, lang: str) -> str:
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code != 1:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    if lang == "fr":
        national = national.replace("(", "").replace(") ", " ")
    return national


def format_weekday(value: datetime | date, heading: bool = True) -> str:
    """«Lundi» as a heading, «lundi» in a French sentence; "Monday" either way."""
    day = value.date() if isinstance(value, datetime) else value
    name = _format_date(day, format="EEEE", locale=LOCALES[current_language.get()])
    return name[:1].upper() + name[1:] if heading else name


def gettext_in(lang: str, message: str) -> str:
    """Translate into a language other than the request's (an SMS in the owner's language)."""
    return translations(lang).ugettext(message)


FR_TIME = "H 'h' mm"  # «14 h 00», the Quebec way


def format_when(value: datetime | str, tz: str, lang: str | None = None) -> str:
    """An appointment as people say it: «jeudi 26 novembre à 14 h 00»,
    "Thursday, November 26 at 2:00 p.m."."""
    local = _to_zone(value, tz)
    lang = lang or current_language.get()
    if lang == "fr":
        day = _format_date(local.date(), "EEEE d MMMM", locale="fr_CA")
        return f"{day} à {format_time(local.time(), FR_TIME, locale='fr_CA')}"
    return (f"{_format_date(local.date(), 'EEEE, MMMM d', locale='en_CA')} at "
            f"{format_time(local.time(), 'h:mm a', locale='en_CA')}")


def format_short_date(value) -> str:
    """«17 nov.», "Nov 17" (chart labels)."""
    return _format_date(value, format="d MMM" if current_language.get() == "fr" else "MMM d",
                        locale=LOCALES[current_language.get()])
