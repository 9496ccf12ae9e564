"""Sign-in and sign-out, and the owner's settings: the business, its form's own
questions, its team, and each person's password.

Settings are owners only (the `owner` guard); a member gets a translated 403 page.
Every change is audited with the names of the settings that changed.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from typing import Any

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from app import businesses, http, i18n, normalize
from app.businesses import auth, hours, recovery, signup
from app.businesses.ratelimit import client_ip
from app.chat import answers
from app.config import Config
from app.db import Database
from app.http import DB, Conf, Form, RateLimits, SignedIn, lang
from app.i18n import N_
from app.leads import custom_fields
from app.messaging.email import Mailer
from app.messaging.twilio import TwilioClient

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

GREETING = signup.GREETING
greeting_default = signup.greeting_default


def _form_values(business: dict) -> dict:
    hours_json = json.loads(business["hours"] or "{}")
    values = {
        "name": business["name"], "slug": business["slug"], "phone": i18n.format_phone(business["phone"]),
        "timezone": business["timezone"], "language": business["language"],
        "notify_phones": "\n".join(i18n.format_phone(p) for p in json.loads(business["notify_phones"] or "[]")),
        "embed_domains": "\n".join(json.loads(business["embed_domains"] or "[]")),
        "trade": business["trade"] or "", "voipms_mailbox": business["voipms_mailbox"] or "",
        "service_area": business["service_area"] or "",
        "callback_hours": "" if business["callback_hours"] is None else str(business["callback_hours"]),
        "greeting_fr": business["greeting_fr"] or greeting_default(business["name"], "fr"),
        "greeting_en": business["greeting_en"] or greeting_default(business["name"], "en"),
    }
    for day in hours.DAYS:
        spans = hours_json.get(day) or []
        values[f"{day}_open"] = spans[0][0] if spans else ""
        values[f"{day}_close"] = spans[0][1] if spans else ""
    return values


def _validate(data: dict[str, str]) -> tuple[dict, dict]:
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    name = normalize.clean(data.get("name", ""))[:120]
    if not name:
        errors["name"] = N_("This field is required.")
    values["name"] = name
    slug = data.get("slug", "").strip().lower()
    if not businesses.SLUG_RE.match(slug):
        errors["slug"] = N_("Use 1 to 40 lowercase letters, digits and hyphens.")
    values["slug"] = slug
    phone_raw = data.get("phone", "").strip()
    values["phone"] = normalize.phone(phone_raw) if phone_raw else None
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
            e164 = normalize.phone(line)
            if not e164:
                errors["notify_phones"] = N_("Enter one valid phone number per line.")
            phones.append(e164)
    values["notify_phones"] = json.dumps(phones[:5])
    domains = [d.strip().lower().removeprefix("https://").rstrip("/")
               for d in data.get("embed_domains", "").splitlines() if d.strip()]
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
    values["trade"] = normalize.clean(data.get("trade", ""))[:200] or None
    mailbox = data.get("voipms_mailbox", "").strip()
    if mailbox and not mailbox.isdigit():
        errors["voipms_mailbox"] = N_("A VoIP.ms mailbox is a number.")
    values["voipms_mailbox"] = mailbox or None
    # What the chat may say about the business (app.chat.answers): only what is set here.
    area_text = normalize.clean(data.get("service_area", ""), multiline=True)
    area = answers.parse_area(area_text)
    if len([p for p in re.split(r"[\n,;]", area_text) if p.strip()]) > 100 or any(len(p) > 80 for p in area):
        errors["service_area"] = N_("List at most 100 places, each under 80 characters.")
    values["service_area"] = "\n".join(area)
    delay = data.get("callback_hours", "").strip()
    hours_ok = re.fullmatch(r"[0-9]{1,3}", delay) is not None and 1 <= int(delay) <= 720
    if delay and not hours_ok:
        errors["callback_hours"] = N_("Enter a number of hours from 1 to 720, or leave it empty.")
    values["callback_hours"] = int(delay) if hours_ok else None
    for language in i18n.LANGUAGES:
        values[f"greeting_{language}"] = normalize.clean(data.get(f"greeting_{language}", ""),
                                                         multiline=True)[:1000] or None
    return values, errors


# ---- sign-in -------------------------------------------------------------------------------------

def _safe_next(value: str | None) -> str:
    """Only a local dashboard path (with its query string) may follow sign-in (no open
    redirect, nothing that could break out of the Location header)."""
    if (value and value.startswith(f"/{lang()}/app/") and "//" not in value and "\\" not in value
            and not any(ord(c) < 0x20 or c == "\x7f" for c in value)):
        return value
    return f"/{lang()}/app/leads"


def _session_cookie(config: Config, value: str, max_age: int) -> Cookie:
    return Cookie(key=auth.COOKIE, value=value, path="/", httponly=True, samesite="lax",
                  secure=config.secure_cookies, max_age=max_age)


@get("/login", name="login", sync_to_thread=True)
def login_page(request: Request, config: Conf, next: FromQuery[str | None] = None) -> Template | Redirect:
    if http.find_session(request) is not None:
        return Redirect(_safe_next(next), status_code=303)
    return Template("businesses/login.html", context={"next": _safe_next(next), "email": "", "error": None,
                                                      "signup_open": config.signup.open})


@post("/login", name="login_submit", sync_to_thread=True, status_code=200)
def login_submit(request: Request, db: DB, config: Conf, limits: RateLimits, data: Form) -> Template | Redirect:
    email = (data.get("email") or "").strip()[:254]
    key = (email.lower(), client_ip(request))
    context = {"next": _safe_next(data.get("next")), "email": email, "signup_open": config.signup.open}
    # Counted as a failure before checking, so that concurrent attempts cannot pass together.
    slot = limits.login.take(*key)
    if slot is None:
        return Template("businesses/login.html", status_code=429, context={
            **context, "error": i18n.gettext("Too many failed attempts. Wait 15 minutes and try again.")})
    user = businesses.authenticate(db, email, (data.get("password") or "")[:1024])
    if user:
        businesses.join_on_first_sign_in(db, user["id"])
    memberships = businesses.memberships(db, user["id"]) if user else []
    if not user or not memberships:
        return Template("businesses/login.html", status_code=400, context={
            **context, "error": i18n.gettext("This email and password do not match an account.")})
    slot.give_back()  # a success is not a failure
    # A new token at every sign-in: an id planted before it is worthless (no fixation).
    token = auth.start_session(db, user_id=user["id"], business_id=memberships[0]["id"])
    target = f"/{lang()}/app/password" if user["must_change_password"] else _safe_next(data.get("next"))
    response = Redirect(target, status_code=303)
    response.set_cookie(_session_cookie(config, token, int(auth.LIFETIME.total_seconds())))
    return response


@post("/logout", name="logout", sync_to_thread=True, status_code=303)
def logout(request: Request, db: DB, config: Conf) -> Redirect:
    auth.end_session(db, request.cookies.get(auth.COOKIE))
    response = Redirect(f"/{lang()}/login", status_code=303)
    response.set_cookie(_session_cookie(config, "", 0))
    return response


# ---- the business --------------------------------------------------------------------------------

def _timezones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if z.startswith(("America/", "Canada/")))


@get("/app/settings", name="settings", sync_to_thread=True, guards=[http.owner])
def settings_page(session: SignedIn, db: DB, config: Conf, saved: FromQuery[str | None] = None) -> Template:
    business = businesses.get(db, session["business_id"])
    return Template("businesses/settings.html", context={
        "session": session, "values": _form_values(business), "errors": {}, "saved": saved == "1",
        "timezones": _timezones(), "days": hours.DAYS, "business": business, "public_url": config.public_url})


@post("/app/settings", name="settings_save", sync_to_thread=True, status_code=200, guards=[http.owner])
def settings_save(session: SignedIn, db: DB, config: Conf, data: Form) -> Template | Redirect:
    values, errors = _validate(data)
    if not errors:
        try:
            businesses.update_settings(db, session["business_id"], values, actor=f"user:{session['user_id']}")
        except businesses.BusinessError:
            errors["slug"] = N_("This address is already taken.")
    if errors:
        return Template("businesses/settings.html", status_code=422, context={
            "session": session, "values": data, "errors": {k: i18n.gettext(v) for k, v in errors.items()},
            "saved": False, "timezones": _timezones(), "days": hours.DAYS,
            "business": businesses.get(db, session["business_id"]), "public_url": config.public_url})
    return Redirect(f"/{lang()}/app/settings?saved=1", status_code=303)


# ---- the form's own questions --------------------------------------------------------------------

def _fields_page(db: Database, session: dict, errors: dict | None = None, status_code: int = 200,
                 values: dict | None = None) -> Template:
    """`errors` and `values` are keyed by "add" or a field's id: what was typed into that
    form comes back with its error, so nothing is lost."""
    return Template("businesses/fields.html", status_code=status_code, headers=http.VARY_HTMX, context={
        "session": session, "fields": custom_fields.active_fields(db, session["business_id"]),
        "kinds": custom_fields.KINDS, "errors": errors or {}, "values": values or {},
        "business": businesses.get(db, session["business_id"])})


@get("/app/settings/fields", name="settings_fields", sync_to_thread=True, guards=[http.owner])
def fields_page(session: SignedIn, db: DB) -> Template:
    return _fields_page(db, session)


def _field_input(data: dict[str, str], kind: str) -> tuple[dict, str | None]:
    """The question's labels, required flag and options (for a choice), or an error msgid."""
    if kind not in custom_fields.KINDS:
        return {}, N_("Choose a kind of answer.")
    label_fr = normalize.clean(data.get("label_fr", ""))[:200]
    label_en = normalize.clean(data.get("label_en", ""))[:200] or label_fr
    options = custom_fields.parse_options(data.get("options", "")) if kind in ("single_choice",
                                                                                "multiple_choice") else None
    if not label_fr:
        return {}, N_("Give the question in French (and in English).")
    if options is not None and len(options) < 2:
        return {}, N_("A choice needs at least two options, one per line.")
    return {"label_fr": label_fr, "label_en": label_en, "required": data.get("required") == "yes",
            "options": options}, None


def _done_fields(request: Request, db: Database, session: dict) -> Template | Redirect:
    if http.is_htmx(request):
        return _fields_page(db, session)
    return Redirect(f"/{lang()}/app/settings/fields", status_code=303, headers=http.VARY_HTMX)


def _field_or_404(db: Database, session: dict, field_id: int) -> custom_fields.CustomField:
    field = custom_fields.get(db, session["business_id"], field_id)
    if field is None:
        raise NotFoundException()
    return field


@post("/app/settings/fields", name="settings_field_add", sync_to_thread=True, status_code=200, guards=[http.owner])
def field_add(request: Request, session: SignedIn, db: DB, data: Form) -> Template | Redirect:
    kind = data.get("kind", "")
    values, error = _field_input(data, kind)
    if error:
        return _fields_page(db, session, {"add": i18n.gettext(error)}, 422, {"add": dict(data)})
    with db.write() as conn:
        custom_fields.add(conn, business_id=session["business_id"], kind=kind, actor=f"user:{session['user_id']}",
                          **values)
    return _done_fields(request, db, session)


@post("/app/settings/fields/{field_id:int}", name="settings_field_edit", sync_to_thread=True, status_code=200,
      guards=[http.owner])
def field_edit(request: Request, session: SignedIn, db: DB, field_id: FromPath[int],
               data: Form) -> Template | Redirect:
    """New labels, options, required flag, and kind of answer (answers already received keep
    their snapshot)."""
    field = _field_or_404(db, session, field_id)
    kind = data.get("kind") or field.kind
    values, error = _field_input(data, kind)
    if error:
        return _fields_page(db, session, {field_id: i18n.gettext(error)}, 422, {field_id: dict(data)})
    with db.write() as conn:
        custom_fields.update(conn, session["business_id"], field_id, kind=kind,
                             actor=f"user:{session['user_id']}", **values)
    return _done_fields(request, db, session)


@post("/app/settings/fields/{field_id:int}/move", name="settings_field_move", sync_to_thread=True,
      status_code=200, guards=[http.owner])
def field_move(request: Request, session: SignedIn, db: DB, field_id: FromPath[int],
               data: Form) -> Template | Redirect:
    _field_or_404(db, session, field_id)
    with db.write() as conn:
        custom_fields.move(conn, session["business_id"], field_id, -1 if data.get("direction") == "up" else 1,
                           actor=f"user:{session['user_id']}")
    return _done_fields(request, db, session)


@post("/app/settings/fields/{field_id:int}/remove", name="settings_field_remove", sync_to_thread=True,
      status_code=200, guards=[http.owner])
def field_remove(request: Request, session: SignedIn, db: DB, field_id: FromPath[int],
                 data: Form) -> Template | Redirect:
    """Two steps: without confirm=yes, the page asks, naming the question (answers received stay)."""
    field = _field_or_404(db, session, field_id)
    if data.get("confirm") != "yes":
        page = _fields_page(db, session)
        page.context["removing"] = field
        return page
    with db.write() as conn:
        custom_fields.remove(conn, session["business_id"], field_id, actor=f"user:{session['user_id']}")
    return _done_fields(request, db, session)


# ---- team ----------------------------------------------------------------------------------------

def _team_page(db: Database, session: dict, *, status_code: int = 200, **extra: object) -> Template:
    return Template("businesses/team.html", status_code=status_code, context={
        "session": session, "team": businesses.team(db, session["business_id"]),
        "invitations": businesses.sent_invitations(db, session["business_id"]), "error": None,
        "created": None, "reset": None, **extra})


@get("/app/settings/team", name="settings_team", sync_to_thread=True, guards=[http.owner])
def team_page(session: SignedIn, db: DB) -> Template:
    return _team_page(db, session)


@post("/app/settings/team", name="settings_team_add", sync_to_thread=True, status_code=200, guards=[http.owner])
def team_add(session: SignedIn, db: DB, data: Form) -> Template:
    """An invitation, with a one-time password shown once. The page is the same whether the
    email already had an account (it is then never moved or demoted: its person accepts or
    not) or not (the password opens the new account): it must not tell the owner which."""
    email = (data.get("email") or "").strip()[:254]
    error = None
    if not normalize.email(email):
        error = N_("Enter a valid email address, e.g. name@example.com.")
    else:
        try:
            password = businesses.invite(db, session["business_id"], email, inviter_id=session["user_id"])
        except businesses.OwnEmail:
            error = N_("This is your own email: you are already on this team.")
        except businesses.AlreadyInTeam:
            error = N_("This person is already on the team.")
        except businesses.BusinessError:
            error = N_("Enter a valid email address, e.g. name@example.com.")
    if error:
        return _team_page(db, session, error=i18n.gettext(error), status_code=422, email=email)
    return _team_page(db, session, created={"email": email, "password": password})


@post("/app/settings/team/{user_id:int}/remove", name="settings_team_remove", sync_to_thread=True,
      status_code=200, guards=[http.owner])
def team_remove(session: SignedIn, db: DB, user_id: FromPath[int], data: Form) -> Template | Redirect:
    """Two steps: without confirm=yes, the page asks, naming the person (they lose access at once)."""
    if data.get("confirm") != "yes":
        member = next((m for m in businesses.team(db, session["business_id"]) if m["id"] == user_id), None)
        if member is None:
            raise NotFoundException()
        if member["role"] == "owner":  # never removed: nothing to confirm
            return Redirect(f"/{lang()}/app/settings/team", status_code=303)
        return _team_page(db, session, removing=member)
    try:
        businesses.remove_member(db, session["business_id"], user_id, actor=f"user:{session['user_id']}")
    except LookupError:
        raise NotFoundException() from None
    return Redirect(f"/{lang()}/app/settings/team", status_code=303)


@post("/app/settings/team/invitations/{invitation_id:int}/cancel", name="settings_team_cancel",
      sync_to_thread=True, status_code=303, guards=[http.owner])
def team_cancel(session: SignedIn, db: DB, invitation_id: FromPath[int]) -> Redirect:
    try:
        businesses.cancel_invitation(db, session["business_id"], invitation_id, actor=f"user:{session['user_id']}")
    except LookupError:
        raise NotFoundException() from None
    return Redirect(f"/{lang()}/app/settings/team", status_code=303)


# ---- invitations received, and switching business ------------------------------------------------

def _work_in(request: Request, db: Database, session: dict, business_id: int) -> bool:
    return auth.switch_business(db, user_id=session["user_id"], business_id=business_id,
                                token=request.cookies.get(auth.COOKIE))


@get("/app/invitations", name="invitations", sync_to_thread=True)
def invitations_page(session: SignedIn, db: DB) -> Template:
    return Template("businesses/invitations.html", context={
        "session": session, "invitations": businesses.invitations_for(db, session["email"])})


@post("/app/invitations/{invitation_id:int}/accept", name="invitation_accept", sync_to_thread=True,
      status_code=303)
def invitation_accept(request: Request, session: SignedIn, db: DB, invitation_id: FromPath[int]) -> Redirect:
    """Join the business, and go to work in it."""
    try:
        business_id = businesses.accept_invitation(db, invitation_id, user_id=session["user_id"])
    except LookupError:
        raise NotFoundException() from None
    _work_in(request, db, session, business_id)
    return Redirect(f"/{lang()}/app/leads", status_code=303)


@post("/app/invitations/{invitation_id:int}/decline", name="invitation_decline", sync_to_thread=True,
      status_code=303)
def invitation_decline(session: SignedIn, db: DB, invitation_id: FromPath[int]) -> Redirect:
    try:
        businesses.decline_invitation(db, invitation_id, user_id=session["user_id"])
    except LookupError:
        raise NotFoundException() from None
    return Redirect(f"/{lang()}/app/invitations", status_code=303)


@post("/app/switch", name="switch_business", sync_to_thread=True, status_code=303)
def switch(request: Request, session: SignedIn, db: DB, data: Form) -> Redirect | Template:
    """Work in another of one's businesses (the header's switcher); only one's own."""
    raw = (data.get("business_id") or "").strip()
    if not raw.isdigit() or len(raw) > 18:
        return Template("error.html", context={"status": 422}, status_code=422)
    if not _work_in(request, db, session, int(raw)):
        raise NotFoundException()
    return Redirect(f"/{lang()}/app/leads", status_code=303)


# ---- your account: password, mobile number ---------------------------------------------------------

def _account_page(db: Database, session: dict, *, error: str | None = None, phone_error: str | None = None,
                  phone: str | None = None, status_code: int = 200) -> Template:
    """The signed-in person's own account: the password form and the mobile number form.
    `phone`: what they typed, shown back with `phone_error`."""
    if phone is None:
        saved = businesses.phone_of(db, session["user_id"])
        phone = i18n.format_phone(saved) if saved else ""
    return Template("businesses/password.html", status_code=status_code, context={
        "session": session, "error": error, "phone_error": phone_error, "phone": phone})


@get("/app/password", name="password", sync_to_thread=True, opt=http.WHILE_PASSWORD_DUE)
def password_page(session: SignedIn, db: DB) -> Template:
    return _account_page(db, session)


def _new_password_error(data: dict) -> str | None:
    """The one rule for a chosen password (sign-up, the account page and a reset link alike)."""
    return signup.password_error(data.get("password", ""), data.get("password_again", ""))


@post("/app/password", name="password_save", sync_to_thread=True, status_code=200, opt=http.WHILE_PASSWORD_DUE)
def password_save(request: Request, session: SignedIn, db: DB, data: Form) -> Template | Redirect:
    new = data.get("password", "")
    error = _new_password_error(data)
    if error is None and not businesses.authenticate(db, session["email"], data.get("current", "")):
        error = N_("Your current password is not right.")
    if error:
        return _account_page(db, session, error=i18n.gettext(error), status_code=422)
    # Sessions elsewhere (a lost phone, someone who saw the old password) end; this one stays.
    businesses.set_password(db, session["user_id"], new, keep_session=request.cookies.get(auth.COOKIE))
    return Redirect(f"/{lang()}/app/leads", status_code=303)


@post("/app/account/phone", name="account_phone", sync_to_thread=True, status_code=200)
def account_phone(session: SignedIn, db: DB, data: Form) -> Template | Redirect:
    """The person's own mobile number (empty: none), for SMS about leads assigned to them
    and password-reset links."""
    typed = normalize.clean(data.get("phone", ""))[:40]
    phone = normalize.phone(typed) if typed else None
    if typed and phone is None:
        return _account_page(db, session, phone=typed, status_code=422,
                             phone_error=i18n.gettext(N_("This mobile number is not valid.")))
    businesses.set_phone(db, session["user_id"], phone)
    return Redirect(f"/{lang()}/app/password", status_code=303)


# ---- a way back in -------------------------------------------------------------------------------

def _forgot_page(config: Config, *, sent: bool = False, status_code: int = 200) -> Template:
    return Template("businesses/forgot.html", status_code=status_code, context={
        # A link can go out by email (SMTP) or, to accounts with a mobile number, by SMS (Twilio).
        "sent": sent, "email_ready": Mailer.from_config(config) is not None
        or TwilioClient.from_config(config) is not None})


@get("/password/forgot", name="password_forgot", sync_to_thread=False)
def forgot_page(config: Conf) -> Template:
    return _forgot_page(config)


@post("/password/forgot", name="password_forgot_send", sync_to_thread=True, status_code=200)
def forgot_send(request: Request, db: DB, config: Conf, limits: RateLimits, data: Form) -> Template:
    """The same answer for every email, account or not; limited like sign-in failures."""
    slot = limits.login.take("password-reset", client_ip(request))
    if slot is None:
        return Template("error.html", context={"status": 429}, status_code=429)
    recovery.request_link(db, Mailer.from_config(config), (data.get("email") or "").strip()[:254], lang=lang(),
                          public_url=config.public_url, sms=TwilioClient.from_config(config))
    return _forgot_page(config, sent=True)


@get("/password/reset/{token:str}", name="password_reset", sync_to_thread=True)
def reset_page(db: DB, token: FromPath[str]) -> Template:
    expired = recovery.user_for(db, token) is None
    return Template("businesses/reset.html", status_code=410 if expired else 200, context={
        "token": token, "expired": expired, "error": None})


@post("/password/reset/{token:str}", name="password_reset_save", sync_to_thread=True, status_code=303)
def reset_save(db: DB, token: FromPath[str], data: Form) -> Template | Redirect:
    new = data.get("password", "")
    error = _new_password_error(data)
    expired = recovery.user_for(db, token) is None
    if expired or error:
        return Template("businesses/reset.html", status_code=410 if expired else 422, context={
            "token": token, "expired": expired, "error": i18n.gettext(error) if error else None})
    if not recovery.reset_with_link(db, token, new[:1024]):
        return Template("businesses/reset.html", status_code=410, context={"token": token, "expired": True,
                                                                          "error": None})
    return Redirect(f"/{lang()}/login", status_code=303)


@post("/app/settings/team/{user_id:int}/reset", name="settings_team_reset", sync_to_thread=True, status_code=200,
      guards=[http.owner])
def team_reset(session: SignedIn, db: DB, user_id: FromPath[int]) -> Template:
    """A member locked out: a new one-time password, shown once; their sessions end."""
    member = next((m for m in businesses.team(db, session["business_id"]) if m["id"] == user_id), None)
    try:
        password = recovery.reset_member(db, session["business_id"], user_id, actor=f"user:{session['user_id']}")
    except LookupError:
        raise NotFoundException() from None
    return _team_page(db, session, reset={"email": member["email"] if member else "", "password": password})


routes: http.Routes = [
    http.localized(login_page, login_submit, logout, forgot_page, forgot_send, reset_page, reset_save),
    http.dashboard(settings_page, settings_save, fields_page, field_add, field_edit, field_move, field_remove,
                   team_page, team_add, team_remove, team_cancel, invitations_page, invitation_accept,
                   invitation_decline, switch, password_page, password_save, account_phone, team_reset),
]
