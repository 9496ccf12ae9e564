"""The Jinja environment: gettext installed once (each call reads the request's
language), and the named filters and globals templates use for dates, phones,
labels and durations."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import get_day_names
from jinja2 import Environment, FileSystemLoader, select_autoescape

from app import audit, i18n, leads, privacy
from app.config import ROOT
from app.http import lang, switch_url
from app.leads import custom_fields
from app.privacy import versions


def _day_name(index: int) -> str:
    return get_day_names("wide", locale=i18n.LOCALES[lang()])[index].capitalize()


def _minutes(appointment: dict) -> int:
    span = datetime.fromisoformat(appointment["ends_at"]) - datetime.fromisoformat(appointment["starts_at"])
    return int(span.total_seconds() // 60)


def _local_parts(iso: str, tz: str) -> tuple[str, str]:
    """(YYYY-MM-DD, HH:MM) of an instant in a time zone: the values of date and time inputs."""
    local = datetime.fromisoformat(iso).astimezone(ZoneInfo(tz))
    return local.date().isoformat(), local.strftime("%H:%M")


def _field_label(name: str) -> str:
    return i18n.gettext(leads.FIELD_LABELS.get(name) or audit.FIELD_LABELS.get(name) or name)


def _actor(entry: dict) -> str:
    """Who made an audit entry: a member by name (or email), a former member unnamed,
    the service's own workers and the public in words."""
    label = audit.actor_label(entry["actor"])
    if label is not None:
        return i18n.gettext(label)
    return entry.get("actor_name") or entry.get("actor_email") or i18n.gettext(audit.FORMER_MEMBER)


def _policy_notice(request: Any, session: dict | None) -> dict | None:
    """The policy change an owner has not dismissed yet (templates/privacy/_policy_notice.html)."""
    if not session or session.get("role") != "owner":
        return None
    return versions.pending_notice(request.app.state.db, session["user_id"])


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(ROOT / "templates"),
        autoescape=select_autoescape(["html", "xml"], default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates change with a deployment, which restarts the process: no stat() of each
        # template and its parents at every render (a restart picks edits up).
        auto_reload=False,
    )
    # Installed once for the environment; each callable reads the request's language.
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True, pgettext=i18n.pgettext, npgettext=i18n.npgettext
    )
    env.globals.update(
        lang=lang,
        other_lang=lambda: i18n.other_language(lang()),
        language_name=i18n.language_name,
        switch_url=switch_url,
        status_label=lambda s: i18n.pgettext(*leads.STATUS_LABELS[s]),
        status_tab=lambda s: i18n.gettext(leads.STATUS_TABS[s]),
        when=i18n.format_when,
        day_name=_day_name,
        kind_label=lambda k: i18n.gettext(custom_fields.KIND_LABELS[k]),
        request_kind=lambda k: i18n.gettext(privacy.KINDS[k]),
        weekday=i18n.format_weekday,
        short_date=i18n.format_short_date,
        duration=i18n.format_duration,
        minutes=_minutes,
        local_parts=_local_parts,
        channel_label=lambda c: i18n.gettext(leads.CHANNEL_LABELS[c]),
        action_label=lambda a: i18n.gettext(audit.action_label(a)),
        entity_label=lambda e: i18n.gettext(audit.ENTITY_LABELS.get(e) or str(e)),
        actor_label=_actor,
        policy_notice=_policy_notice,
        policy_zone=versions.ZONE,
    )
    env.filters["datetime"] = i18n.format_datetime
    env.filters["date"] = i18n.format_date
    env.filters["day"] = i18n.format_day
    env.filters["phone"] = i18n.format_phone
    env.filters["fromjson"] = json.loads
    env.filters["field_label"] = _field_label
    return env
