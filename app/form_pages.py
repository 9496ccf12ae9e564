"""Routes of the public request form `/{lang}/f/{slug}` (and `?embed=1` for an iframe)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from anyio import to_thread
from litestar import Request, Router, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template

import jobs.intake
from app import clock, custom_fields, forms, hours, i18n
from app.i18n import N_
from app.ratelimit import client_ip
from app.web import DEFAULT_CSP, set_language

log = logging.getLogger("capteo.forms")


def _business(request: Request, slug: str) -> dict:
    row = request.app.state.db.query_one("SELECT * FROM businesses WHERE slug = ?", (slug,))
    if row is None:
        raise NotFoundException()
    return row


def _frame_headers(business: dict, embed: bool) -> dict[str, str]:
    """An embedded form may be framed by the business's own sites, and only those."""
    if not embed:
        return {}
    domains = forms.business_settings(business)["embed_domains"]
    ancestors = " ".join(f"https://{d}" for d in domains) or "'none'"
    return {"content-security-policy": DEFAULT_CSP.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")}


def _context(request: Request, business: dict, *, embed: bool, values: dict | None = None,
             errors: dict | None = None, token: str | None = None) -> dict[str, Any]:
    lang = i18n.current_language.get()
    config = request.app.state.config
    return {
        "business": business,
        "fields": custom_fields.active_fields(request.app.state.db, business["id"]),
        "values": values or {},
        "errors": {k: i18n.gettext(v) for k, v in (errors or {}).items()},
        "token": token or forms.issue_token(config.secret("forms"), business["id"]),
        "consent_text": forms.consent_text(business["name"], lang),
        "callback_message": hours.callback_message(business["hours"], business["timezone"], clock.now()),
        "embed": embed,
        "honeypot": forms.HONEYPOT_FIELD,
        "limits": {k: v[0] for k, v in forms.STANDARD_FIELDS.items()},
    }


@get("/f/{slug:str}", name="form", sync_to_thread=True)
def form_page(request: Request, slug: FromPath[str], embed: FromQuery[str | None] = None) -> Template:
    business = _business(request, slug)
    is_embed = embed == "1"
    return Template("form/page.html", context=_context(request, business, embed=is_embed),
                    headers=_frame_headers(business, is_embed))


def _values_for_redisplay(form: dict[str, list[str]]) -> dict[str, Any]:
    """What the person typed, as typed (escaped by the template), to refill the form."""
    shown: dict[str, Any] = {}
    for name, sent in form.items():
        if name in (forms.TOKEN_FIELD, forms.HONEYPOT_FIELD):
            continue
        shown[name] = sent if name.startswith("cf_") else sent[0][:5000]
    return shown


@post("/f/{slug:str}", name="form_submit", status_code=200)
async def form_submit(request: Request, slug: FromPath[str], embed: FromQuery[str | None] = None) -> Template:
    # Read as multi-items: a forged second `consent` value must be seen, not collapsed.
    form = forms.parse_form(list((await request.form()).multi_items()))
    return await to_thread.run_sync(_submit_sync, request, slug, form, embed == "1")


def _submit_sync(request: Request, slug: str, form: dict[str, list[str]], is_embed: bool) -> Template:
    config = request.app.state.config
    db = request.app.state.db
    business = _business(request, slug)
    headers = _frame_headers(business, is_embed)
    lang = i18n.current_language.get()
    token = (form.get(forms.TOKEN_FIELD) or [""])[0]
    if not forms.check_token(config.secret("forms"), token, business["id"], config.get("forms", "token_max_age")):
        return Template("form/page.html", status_code=400, headers=headers, context=_context(
            request, business, embed=is_embed, values=_values_for_redisplay(form),
            errors={"_form": N_("This form has expired. Check your answers and send it again.")}))
    ip = client_ip(request)
    limiter = request.app.state.form_limiter
    if not limiter.allowed(business["id"], ip):
        return Template("error.html", context={"status": 429}, status_code=429, headers=headers)
    fields = custom_fields.active_fields(db, business["id"])
    submission = forms.validate(form, fields)
    if any(v.strip() for v in form.get(forms.HONEYPOT_FIELD, [])):
        # A robot: it sees the normal thank-you page and nothing is stored.
        limiter.record(business["id"], ip)
        fake = "".join(secrets.choice("23456789ABCDEFGHJKMNPQRSTUVWXYZ") for _ in range(7))
        return _thanks(business, submission, fake, is_embed, headers)
    if not submission.ok:
        return Template("form/page.html", status_code=422, headers=headers, context=_context(
            request, business, embed=is_embed, values=_values_for_redisplay(form),
            errors=submission.errors, token=token))
    lead, created = forms.accept(db, business=business, submission=submission, token=token, language=lang,
                                 public_url=config.public_url)
    if created:
        limiter.record(business["id"], ip)
        _wake(lead["id"])
    return _thanks(business, submission, lead["reference"], is_embed, headers)


def _wake(lead_id: int) -> None:
    try:
        jobs.intake.wake_lead(lead_id)
    except Exception:  # the lead is safe; only the wake-up was lost, and the sweeps recover it
        log.exception("could not enqueue follow-up work for lead %s; the sweep will", lead_id)


def _thanks(business: dict, submission: forms.Submission, reference: str, embed: bool,
            headers: dict) -> Template:
    lang = i18n.current_language.get()
    answers = [custom_fields.display(e, lang, i18n.gettext("Yes"), i18n.gettext("No"))
               for e in submission.custom.values()]
    return Template("form/thanks.html", headers=headers, context={
        "business": business, "reference": reference, "values": submission.values,
        "answers": answers, "embed": embed})


@post("/f/{slug:str}/check", name="form_check", status_code=200)
async def form_check(request: Request, slug: FromPath[str]) -> Template:
    """htmx: validate the one field that just lost focus; returns its message slot."""
    form = forms.parse_form(list((await request.form()).multi_items()))
    name = request.headers.get("hx-trigger-name", "")
    return await to_thread.run_sync(_check_sync, request, slug, form, name)


def _check_sync(request: Request, slug: str, form: dict[str, list[str]], name: str) -> Template:
    config = request.app.state.config
    business = _business(request, slug)
    token = (form.get(forms.TOKEN_FIELD) or [""])[0]
    if not forms.check_token(config.secret("forms"), token, business["id"], config.get("forms", "token_max_age")):
        return Template("form/_error.html", context={"name": name, "error": None})
    error = None
    if name in forms.STANDARD_FIELDS:
        sent = form.get(name, [""])
        error = forms.validate_field(name, sent[0] if sent else "")[1]
    elif name.startswith("cf_"):
        for cf in custom_fields.active_fields(request.app.state.db, business["id"]):
            if cf.name == name:
                error = custom_fields.validate(cf, form.get(name, []), forms.clean)[1]
    elif name == forms.CONSENT_FIELD:
        if form.get(forms.CONSENT_FIELD) != [forms.CONSENT_VALUE]:
            error = N_("Your consent is needed to send this request.")
    return Template("form/_error.html", context={"name": name, "error": i18n.gettext(error) if error else None})


routes = [
    Router(path="/{lang:str}", route_handlers=[form_page, form_submit, form_check], before_request=set_language)
]
