"""The owner's settings: the business, its form's custom fields, its team.

Owners only (`require(owner=True)`); a member gets a translated 403 page. Every
change is audited with the names of the settings that changed.
"""

from __future__ import annotations

import json
import re
import secrets
import zoneinfo
from typing import Annotated

from litestar import Request, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from app import businesses, custom_fields, forms, hours, i18n
from app.auth import require
from app.i18n import N_
from app.web import set_language

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

GREETING = N_("You have reached %(business)s. Leave your name, your number and the reason for your call after "
              "the tone. Your message is recorded and processed by automated artificial intelligence on our own "
              "server in Canada, only to handle your request.")


def _lang() -> str:
    return i18n.current_language.get()


def greeting_default(business_name: str, lang: str) -> str:
    """The phone greeting with the consent notice the privacy policy requires."""
    return i18n.gettext_in(lang, GREETING) % {"business": business_name}


def _form_values(business: dict) -> dict:
    hours_json = json.loads(business["hours"] or "{}")
    values = {
        "name": business["name"], "slug": business["slug"], "phone": i18n.format_phone(business["phone"]),
        "timezone": business["timezone"], "language": business["language"],
        "notify_phones": "\n".join(i18n.format_phone(p) for p in json.loads(business["notify_phones"] or "[]")),
        "embed_domains": "\n".join(json.loads(business["embed_domains"] or "[]")),
        "trade": business["trade"] or "", "voipms_mailbox": business["voipms_mailbox"] or "",
        "greeting_fr": business["greeting_fr"] or greeting_default(business["name"], "fr"),
        "greeting_en": business["greeting_en"] or greeting_default(business["name"], "en"),
    }
    for day in hours.DAYS:
        spans = hours_json.get(day) or []
        values[f"{day}_open"] = spans[0][0] if spans else ""
        values[f"{day}_close"] = spans[0][1] if spans else ""
    return values


def _validate(data: dict[str, str]) -> tuple[dict, dict]:
    values, errors = {}, {}
    name = forms.clean(data.get("name", ""))[:120]
    if not name:
        errors["name"] = N_("This field is required.")
    values["name"] = name
    slug = data.get("slug", "").strip().lower()
    if not businesses.SLUG_RE.match(slug):
        errors["slug"] = N_("Use 1 to 40 lowercase letters, digits and hyphens.")
    values["slug"] = slug
    phone_raw = data.get("phone", "").strip()
    values["phone"] = forms.normalize_phone(phone_raw) if phone_raw else None
    if phone_raw and not values["phone"]:
        errors["phone"] = N_("Enter a valid phone number, e.g. 514 555-0123.")
    tz = data.get("timezone", "")
    try:
        zoneinfo.ZoneInfo(tz)
        values["timezone"] = tz
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = N_("Choose a time zone from the list.")
    values["language"] = data.get("language") if data.get("language") in i18n.LANGUAGES else "fr"
    phones = []
    for line in data.get("notify_phones", "").splitlines():
        if line.strip():
            e164 = forms.normalize_phone(line)
            if not e164:
                errors["notify_phones"] = N_("Enter one valid phone number per line.")
            phones.append(e164)
    values["notify_phones"] = json.dumps(phones[:5])
    domains = [d.strip().lower().removeprefix("https://").rstrip("/") for d in data.get("embed_domains", "").splitlines()
               if d.strip()]
    if any(not DOMAIN_RE.match(d) for d in domains):
        errors["embed_domains"] = N_("Enter one domain name per line, e.g. plomberie-gagnon.ca.")
    values["embed_domains"] = json.dumps(domains[:10])
    week = {}
    for day in hours.DAYS:
        opens, closes = data.get(f"{day}_open", ""), data.get(f"{day}_close", "")
        if opens or closes:
            if not (re.fullmatch(r"\d{2}:\d{2}", opens) and re.fullmatch(r"\d{2}:\d{2}", closes) and opens < closes):
                errors[f"{day}_open"] = N_("Give an opening time before the closing time, or leave both empty.")
            else:
                week[day] = [[opens, closes]]
    values["hours"] = json.dumps(week)
    values["trade"] = forms.clean(data.get("trade", ""))[:200] or None
    mailbox = data.get("voipms_mailbox", "").strip()
    if mailbox and not mailbox.isdigit():
        errors["voipms_mailbox"] = N_("A VoIP.ms mailbox is a number.")
    values["voipms_mailbox"] = mailbox or None
    for lang in i18n.LANGUAGES:
        values[f"greeting_{lang}"] = forms.clean(data.get(f"greeting_{lang}", ""), multiline=True)[:1000] or None
    return values, errors


@get("/app/settings", name="settings", sync_to_thread=True)
def settings_page(request: Request, saved: FromQuery[str | None] = None) -> Template:
    session = require(request, owner=True)
    business = businesses.get(request.app.state.db, session["business_id"])
    return Template("settings/business.html", context={
        "session": session, "values": _form_values(business), "errors": {}, "saved": saved == "1",
        "timezones": _timezones(), "days": hours.DAYS, "business": business})


def _timezones() -> list[str]:
    canada = sorted(z for z in zoneinfo.available_timezones() if z.startswith(("America/", "Canada/")))
    return canada


@post("/app/settings", name="settings_save", sync_to_thread=True, status_code=200)
def settings_save(request: Request, data: Form) -> Template | Redirect:
    session = require(request, owner=True)
    db = request.app.state.db
    values, errors = _validate(data)
    if not errors:
        try:
            businesses.update_settings(db, session["business_id"], values, actor=f"user:{session['user_id']}")
        except businesses.BusinessError:
            errors["slug"] = N_("This address is already taken.")
    if errors:
        return Template("settings/business.html", status_code=422, context={
            "session": session, "values": data, "errors": {k: i18n.gettext(v) for k, v in errors.items()},
            "saved": False, "timezones": _timezones(), "days": hours.DAYS,
            "business": businesses.get(db, session["business_id"])})
    return Redirect(f"/{_lang()}/app/settings?saved=1", status_code=303)


# ---- custom fields -------------------------------------------------------------------------------

def _fields_page(request: Request, session: dict, errors: dict | None = None, status_code: int = 200) -> Template:
    db = request.app.state.db
    return Template("settings/fields.html", status_code=status_code, context={
        "session": session, "fields": custom_fields.active_fields(db, session["business_id"]),
        "kinds": custom_fields.KINDS, "errors": errors or {},
        "business": businesses.get(db, session["business_id"])})


@get("/app/settings/fields", name="settings_fields", sync_to_thread=True)
def fields_page(request: Request) -> Template:
    return _fields_page(request, require(request, owner=True))


def _field_input(data: dict[str, str], kind: str) -> tuple[dict, str | None]:
    label_fr = forms.clean(data.get("label_fr", ""))[:200]
    label_en = forms.clean(data.get("label_en", ""))[:200] or label_fr
    options = custom_fields.parse_options(data.get("options", "")) if kind in ("single_choice",
                                                                                "multiple_choice") else None
    if not label_fr:
        return {}, N_("Give the question in French (and in English).")
    if options is not None and len(options) < 2:
        return {}, N_("A choice needs at least two options, one per line.")
    return {"label_fr": label_fr, "label_en": label_en, "required": data.get("required") == "yes",
            "options": options}, None


def _done_fields(request: Request, session: dict) -> Template | Redirect:
    if request.headers.get("hx-request"):
        return _fields_page(request, session)
    return Redirect(f"/{_lang()}/app/settings/fields", status_code=303)


@post("/app/settings/fields", name="settings_field_add", sync_to_thread=True, status_code=200)
def field_add(request: Request, data: Form) -> Template | Redirect:
    session = require(request, owner=True)
    kind = data.get("kind", "")
    if kind not in custom_fields.KINDS:
        return _fields_page(request, session, {"add": i18n.gettext(N_("Choose a kind of answer."))}, 422)
    values, error = _field_input(data, kind)
    if error:
        return _fields_page(request, session, {"add": i18n.gettext(error)}, 422)
    with request.app.state.db.write() as conn:
        field_id = custom_fields.add(conn, business_id=session["business_id"], kind=kind, label_fr=values["label_fr"],
                                     label_en=values["label_en"], required=values["required"],
                                     options=values["options"])
        _audit_field(conn, session, field_id, "custom_field.add")
    return _done_fields(request, session)


def _audit_field(conn, session: dict, field_id: int, action: str) -> None:
    from app import audit

    audit.record(conn, actor=f"user:{session['user_id']}", action=action, entity="custom_field",
                 entity_id=field_id, business_id=session["business_id"], fields=["label_fr", "label_en"])


def _field_or_404(request: Request, session: dict, field_id: int) -> custom_fields.CustomField:
    field = custom_fields.get(request.app.state.db, session["business_id"], field_id)
    if field is None:
        raise NotFoundException()
    return field


@post("/app/settings/fields/{field_id:int}", name="settings_field_edit", sync_to_thread=True, status_code=200)
def field_edit(request: Request, field_id: FromPath[int], data: Form) -> Template | Redirect:
    session = require(request, owner=True)
    field = _field_or_404(request, session, field_id)
    values, error = _field_input(data, field.kind)
    if error:
        return _fields_page(request, session, {field_id: i18n.gettext(error)}, 422)
    with request.app.state.db.write() as conn:
        custom_fields.update(conn, session["business_id"], field_id, **values)
        _audit_field(conn, session, field_id, "custom_field.edit")
    return _done_fields(request, session)


@post("/app/settings/fields/{field_id:int}/move", name="settings_field_move", sync_to_thread=True,
      status_code=200)
def field_move(request: Request, field_id: FromPath[int], data: Form) -> Template | Redirect:
    session = require(request, owner=True)
    _field_or_404(request, session, field_id)
    with request.app.state.db.write() as conn:
        custom_fields.move(conn, session["business_id"], field_id, -1 if data.get("direction") == "up" else 1)
        _audit_field(conn, session, field_id, "custom_field.move")
    return _done_fields(request, session)


@post("/app/settings/fields/{field_id:int}/remove", name="settings_field_remove", sync_to_thread=True,
      status_code=200)
def field_remove(request: Request, field_id: FromPath[int]) -> Template | Redirect:
    session = require(request, owner=True)
    _field_or_404(request, session, field_id)
    with request.app.state.db.write() as conn:
        custom_fields.remove(conn, session["business_id"], field_id)
        _audit_field(conn, session, field_id, "custom_field.remove")
    return _done_fields(request, session)


# ---- team ----------------------------------------------------------------------------------------

def _team_page(request: Request, session: dict, **extra) -> Template:
    db = request.app.state.db
    return Template("settings/team.html", status_code=extra.pop("status_code", 200), context={
        "session": session, "team": businesses.team(db, session["business_id"]), "error": None,
        "created": None, **extra})


@get("/app/settings/team", name="settings_team", sync_to_thread=True)
def team_page(request: Request) -> Template:
    return _team_page(request, require(request, owner=True))


@post("/app/settings/team", name="settings_team_add", sync_to_thread=True, status_code=200)
def team_add(request: Request, data: Form) -> Template:
    """A new member gets a one-time password, shown once, to change at first sign-in."""
    session = require(request, owner=True)
    email = (data.get("email") or "").strip()[:254]
    password = secrets.token_urlsafe(9)
    db = request.app.state.db
    if not forms.normalize_email(email):
        return _team_page(request, session, error=i18n.gettext(
            N_("Enter a valid email address, e.g. name@example.com.")), status_code=422)
    with db.write() as conn:
        existing = list(conn.execute("SELECT id FROM users WHERE email = ?", (email,)))
        user_id = businesses.add_user(conn, business_id=session["business_id"], email=email, password=password,
                                      role="member", actor=f"user:{session['user_id']}")
        if not existing:
            conn.execute("UPDATE users SET must_change_password = 1 WHERE id = ?", (user_id,))
    return _team_page(request, session, created={"email": email, "password": None if existing else password})


@post("/app/settings/team/{user_id:int}/remove", name="settings_team_remove", sync_to_thread=True,
      status_code=200)
def team_remove(request: Request, user_id: FromPath[int]) -> Template | Redirect:
    session = require(request, owner=True)
    try:
        businesses.remove_member(request.app.state.db, session["business_id"], user_id,
                                 actor=f"user:{session['user_id']}")
    except LookupError:
        raise NotFoundException()
    return Redirect(f"/{_lang()}/app/settings/team", status_code=303)


@get("/app/password", name="password", sync_to_thread=True)
def password_page(request: Request) -> Template:
    return Template("settings/password.html", context={"session": require(request), "error": None})


@post("/app/password", name="password_save", sync_to_thread=True, status_code=200)
def password_save(request: Request, data: Form) -> Template | Redirect:
    session = require(request)
    new, again = data.get("password", ""), data.get("password_again", "")
    error = None
    if len(new) < 10:
        error = N_("The password must have at least 10 characters.")
    elif new != again:
        error = N_("The two passwords differ.")
    elif not businesses.authenticate(request.app.state.db, session["email"], data.get("current", "")):
        error = N_("Your current password is not right.")
    if error:
        return Template("settings/password.html", status_code=422,
                        context={"session": session, "error": i18n.gettext(error)})
    businesses.set_password(request.app.state.db, session["user_id"], new)
    return Redirect(f"/{_lang()}/app/leads", status_code=303)


routes = [
    Router(path="/{lang:str}", before_request=set_language, route_handlers=[
        settings_page, settings_save, fields_page, field_add, field_edit, field_move, field_remove,
        team_page, team_add, team_remove, password_page, password_save]),
]
