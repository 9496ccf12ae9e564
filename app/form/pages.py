"""Routes of the public request form `/{lang}/f/{slug}` (and `?embed=1` for an iframe)."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from anyio import to_thread
from babel.dates import format_timedelta
from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from markupsafe import Markup, escape

import jobs.intake
from app import billing, businesses, clock, form, http, i18n, normalize
from app.businesses import closing, hours
from app.businesses.ratelimit import RateLimiter, client_ip
from app.config import Config
from app.db import Database
from app.http import DB, Conf, RateLimits
from app.i18n import N_
from app.leads import custom_fields

log = logging.getLogger("capteo.forms")


def _business(db: Database, slug: str, embed: bool = False) -> dict:
    """The business at this form address, or at one it used before: a request posted to an
    old address (a page or an embed not yet updated) still reaches the business that had it."""
    row = businesses.by_form_address(db, slug)
    if row is None:
        raise NotFoundException()
    if closing.is_closed(row):
        # A translated 410: it no longer takes requests (shown inside its site's frame too).
        raise closing.BusinessGone(headers=_frame_headers(row, embed))
    return row


def _frame_headers(business: dict, embed: bool) -> dict[str, str]:
    """An embedded form may be framed by the business's own sites, and only those."""
    if not embed:
        return {}
    domains = form.business_settings(business)["embed_domains"]
    return {"content-security-policy": http.csp(frame_ancestors=[f"https://{d}" for d in domains])}


def _context(db: Database, config: Config, business: dict, *, embed: bool, values: dict | None = None,
             errors: dict | None = None, token: str | None = None) -> dict[str, Any]:
    lang = i18n.current_language.get()
    return {
        "business": business,
        "fields": custom_fields.active_fields(db, business["id"]),
        "values": values or {},
        "errors": {k: i18n.gettext(v) for k, v in (errors or {}).items()},
        "token": token or form.issue_token(config.secret("forms"), business["id"]),
        "consent_text": form.consent_text(business["name"], lang),
        "callback_message": hours.callback_message(business["hours"], business["timezone"], clock.now()),
        "embed": embed,
        "honeypot": form.HONEYPOT_FIELD,
        "limits": {k: v[0] for k, v in form.STANDARD_FIELDS.items()},
    }


@get("/f/{slug:str}", name="form", sync_to_thread=True)
def form_page(db: DB, config: Conf, slug: FromPath[str],
              embed: FromQuery[str | None] = None) -> Template | Redirect:
    is_embed = embed == "1"
    business = _business(db, slug, is_embed)
    elsewhere = public_door(config, business, slug, "f", is_embed)
    if elsewhere is not None:
        return elsewhere
    return Template("form/page.html", context=_context(db, config, business, embed=is_embed),
                    headers=_frame_headers(business, is_embed))


def public_door(config: Config, business: dict, slug: str, door: str, embed: bool) -> Template | Redirect | None:
    """What a public page (the form "f", the chat "c") shows instead of itself: a redirect from
    an old address, or the "no longer online" page once billing lapsed long ago; None: itself."""
    if business["slug"] != slug:
        # An old address: permanent, but cached an hour only (the business may take it back).
        target = f"/{i18n.current_language.get()}/{door}/{business['slug']}" + ("?embed=1" if embed else "")
        return Redirect(target, status_code=301,
                        headers={**_frame_headers(business, embed), "cache-control": "max-age=3600"})
    if not billing.public_doors_open(config, business, clock.now()):
        return _no_longer_online(business, embed, _frame_headers(business, embed), 200)
    return None


def _no_longer_online(business: dict, embed: bool, headers: dict[str, str], status_code: int) -> Template:
    """Billing lapsed long ago (app.billing): the form says so and shows the business's phone."""
    return Template("billing/form_closed.html", status_code=status_code, headers=headers,
                    context={"business": business, "embed": embed})


def _values_for_redisplay(sent: dict[str, list[str]]) -> dict[str, Any]:
    """What the person typed, as typed (escaped by the template), to refill the form."""
    shown: dict[str, Any] = {}
    for name, values in sent.items():
        if name in (form.TOKEN_FIELD, form.HONEYPOT_FIELD):
            continue
        shown[name] = values if name.startswith("cf_") else values[0][:5000]
    return shown


@post("/f/{slug:str}", name="form_submit", status_code=200)
async def form_submit(request: Request, db: DB, config: Conf, limits: RateLimits, slug: FromPath[str],
                      embed: FromQuery[str | None] = None) -> Template:
    # Read as multi-items: a forged second `consent` value must be seen, not collapsed.
    sent = form.parse_form(list((await request.form()).multi_items()))
    return await to_thread.run_sync(_submit_sync, client_ip(request), db, config, limits.forms, slug, sent,
                                    embed == "1")


def _submit_sync(ip: str, db: Database, config: Config, limiter: RateLimiter, slug: str,
                 sent: dict[str, list[str]], is_embed: bool) -> Template:
    business = _business(db, slug, is_embed)
    headers = _frame_headers(business, is_embed)
    if not billing.public_doors_open(config, business, clock.now()):
        return _no_longer_online(business, is_embed, headers, 410)
    lang = i18n.current_language.get()
    token = (sent.get(form.TOKEN_FIELD) or [""])[0]
    if not form.check_token(config.secret("forms"), token, business["id"], config.forms.token_max_age):
        return Template("form/page.html", status_code=400, headers=headers, context=_context(
            db, config, business, embed=is_embed, values=_values_for_redisplay(sent),
            errors={"_form": N_("This form has expired. Check your answers and send it again.")}))
    # Taken before the work and given back if it does not count (concurrent posts cannot pass together).
    slot = limiter.take(business["id"], ip)
    if slot is None:
        return _rate_limited(db, config, business, sent, token, is_embed, headers)
    fields = custom_fields.active_fields(db, business["id"])
    submission = form.validate(sent, fields)
    if any(v.strip() for v in sent.get(form.HONEYPOT_FIELD, [])):
        # A robot: it sees the normal thank-you page and nothing is stored.
        fake = "".join(secrets.choice("23456789ABCDEFGHJKMNPQRSTUVWXYZ") for _ in range(7))
        return _thanks(business, submission, fake, is_embed, headers)
    if not submission.ok:
        slot.give_back()
        return Template("form/page.html", status_code=422, headers=headers, context=_context(
            db, config, business, embed=is_embed, values=_values_for_redisplay(sent),
            errors=submission.errors, token=token))
    lead, created = form.accept(db, business=business, submission=submission, token=token, language=lang,
                                 public_url=config.public_url)
    if created:
        _wake(lead["id"])
    else:
        slot.give_back()  # the same form sent again: its lead counted the first time
    return _thanks(business, submission, lead["reference"], is_embed, headers)


def _rate_limited(db: Database, config: Config, business: dict, sent: dict[str, list[str]], token: str,
                  is_embed: bool, headers: dict[str, str]) -> Template:
    """Too many requests from this address: the form again with what they typed, the real
    wait (the whole window, at most) and the business's phone, so the person is not stuck."""
    window = config.forms.rate_window
    # Exact, never rounded down: «1 heure», "90 minutes" (format_duration would say 2 hours).
    locale = i18n.LOCALES[i18n.current_language.get()]
    if window % 3600 == 0:
        wait = format_timedelta(timedelta(seconds=window), threshold=1, locale=locale)
    else:
        wait = format_timedelta(timedelta(minutes=-(-window // 60)), granularity="minute", threshold=10**6,
                                locale=locale)
    message: str
    if business.get("phone"):
        # The number as a link: one tap calls from a phone (and it never wraps mid-number).
        phone = Markup('<a class="nowrap" href="tel:{}">{}</a>').format(
            business["phone"], i18n.format_phone(business["phone"]))
        message = Markup(escape(i18n.gettext(
            "Too many requests were sent from this connection. Your answers are still below: "
            "you can send them again in %(wait)s at most, or call %(business)s at %(phone)s."
        ))) % {"wait": wait, "business": business["name"], "phone": phone}
    else:
        message = i18n.gettext(
            "Too many requests were sent from this connection. Your answers are still below: "
            "you can send them again in %(wait)s at most."
        ) % {"wait": wait}
    context = _context(db, config, business, embed=is_embed, values=_values_for_redisplay(sent), token=token)
    context["errors"] = {"_form": message}
    return Template("form/page.html", status_code=429, context=context,
                    headers={**headers, "retry-after": str(window)})


def _wake(lead_id: int) -> None:
    try:
        jobs.intake.wake_lead(lead_id)
    except Exception:  # the lead is safe; only the wake-up was lost, and the sweeps recover it
        log.exception("could not enqueue follow-up work for lead %s; the sweep will", lead_id)


def _thanks(business: dict, submission: form.Submission, reference: str, embed: bool,
            headers: dict) -> Template:
    lang = i18n.current_language.get()
    answers = [custom_fields.display(e, lang, i18n.gettext("Yes"), i18n.gettext("No"))
               for e in submission.custom.values()]
    return Template("form/thanks.html", headers=headers, context={
        "business": business, "reference": reference, "values": submission.values,
        "answers": answers, "embed": embed})


@post("/f/{slug:str}/check", name="form_check", status_code=200)
async def form_check(request: Request, db: DB, config: Conf, slug: FromPath[str]) -> Template:
    """htmx: validate the one field that just lost focus; returns its message slot."""
    sent = form.parse_form(list((await request.form()).multi_items()))
    name = request.headers.get("hx-trigger-name", "")
    return await to_thread.run_sync(_check_sync, db, config, slug, sent, name)


def _check_sync(db: DB, config: Conf, slug: str, sent: dict[str, list[str]], name: str) -> Template:
    business = _business(db, slug)
    token = (sent.get(form.TOKEN_FIELD) or [""])[0]
    if not form.check_token(config.secret("forms"), token, business["id"], config.forms.token_max_age):
        return Template("form/_error.html", context={"name": name, "error": None})
    error = None
    if name in form.STANDARD_FIELDS:
        values = sent.get(name, [""])
        error = form.validate_field(name, values[0] if values else "")[1]
    elif name.startswith("cf_"):
        for cf in custom_fields.active_fields(db, business["id"]):
            if cf.name == name:
                error = custom_fields.validate(cf, sent.get(name, []), normalize.clean)[1]
    elif name == form.CONSENT_FIELD and sent.get(form.CONSENT_FIELD) != [form.CONSENT_VALUE]:
        error = N_("Your consent is needed to send this request.")
    return Template("form/_error.html", context={"name": name, "error": i18n.gettext(error) if error else None})


routes: http.Routes = [http.localized(form_page, form_submit, form_check)]
