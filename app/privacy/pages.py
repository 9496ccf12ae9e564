"""Routes for privacy: the policy, the public rights-request page, the business's
register and tools (find, export, erase, withdraw, contest), the audit viewer, and
the operator's read-only incident register."""

from __future__ import annotations

import hmac
import json
import time

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from app import audit, businesses, form, http, i18n, normalize, privacy
from app.businesses.ratelimit import client_ip
from app.db import Database
from app.http import DB, Conf, Form, RateLimits, SignedIn, lang
from app.i18n import N_
from app.privacy import incidents, retention


@get("/privacy", name="privacy", sync_to_thread=True)
def policy(config: Conf) -> Template:
    return Template("privacy/policy.html", context={"policy": privacy.policy_html(config, lang())})


# ---- public request page -------------------------------------------------------------------------

def _request_form(business_slug: str, values: dict | None = None, error: str | None = None,
                  status_code: int = 200) -> Template:
    return Template("privacy/request.html", status_code=status_code, context={
        "slug": business_slug, "values": values or {}, "error": error, "kinds": privacy.KINDS,
        "issued": str(int(time.time()))})


@get("/privacy/request", name="privacy_request", sync_to_thread=True)
def request_page(b: FromQuery[str | None] = None) -> Template:
    return _request_form(b or "")


@post("/privacy/request", name="privacy_request_submit", sync_to_thread=True, status_code=200)
def request_submit(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    """No account needed; rate-limited per IP; a honeypot; lands in that business's register only."""
    slug = (data.get("business") or "").strip().lower()
    ip = client_ip(request)
    limiter = limits.forms
    if not limiter.allowed("privacy", ip):
        return Template("error.html", context={"status": 429}, status_code=429)
    business = businesses.by_slug(db, slug)
    if data.get(form.HONEYPOT_FIELD):
        limiter.record("privacy", ip)
        return Template("privacy/request_done.html", context={"business": business or {"name": slug}})
    if business is None:
        return _request_form(slug, data, i18n.gettext(N_("We did not find this business. Use the link at the bottom "
                                                         "of its request form.")), 422)
    try:
        privacy.register_request(db, business_id=business["id"], kind=data.get("kind", ""),
                                 person=data.get("person", ""), contact=data.get("contact", ""),
                                 details=data.get("details", ""), source="public", actor="public:privacy-request")
    except privacy.RequestError as e:
        return _request_form(slug, data, i18n.gettext(str(e)), 422)
    limiter.record("privacy", ip)
    return Template("privacy/request_done.html", context={"business": business})


# ---- the business's register and tools ----------------------------------------------------------

def _tools_context(db: Database, session: dict, **extra: object) -> dict:
    return {"session": session, "requests": privacy.requests(db, session["business_id"]), "kinds": privacy.KINDS,
            "found": None, "phone": "", "email": "", "error": None, "done": None, **extra}


@get("/app/privacy", name="privacy_tools", sync_to_thread=True)
def tools(session: SignedIn, db: DB, phone: FromQuery[str | None] = None, email: FromQuery[str | None] = None,
          done: FromQuery[str | None] = None) -> Template:
    found = None
    if phone or email:
        found = privacy.find_person(db, session["business_id"], phone=phone, email=email)
        with db.write() as conn:
            audit.record(conn, actor=f"user:{session['user_id']}", action="person.search", entity="lead",
                         entity_id=",".join(str(r["id"]) for r in found), business_id=session["business_id"],
                         fields=["phone", "email"])
    return Template("privacy/tools.html", context=_tools_context(
        db, session, found=found, phone=phone or "", email=email or "", done=done))


@post("/app/privacy/requests", name="privacy_request_add", sync_to_thread=True, status_code=200)
def add_request(session: SignedIn, db: DB, data: Form) -> Template | Redirect:
    received = privacy.parse_day(data.get("received_on", "")) if data.get("received_on") else None
    try:
        privacy.register_request(db, business_id=session["business_id"], kind=data.get("kind", ""),
                                 person=data.get("person", ""), contact=data.get("contact", ""),
                                 details=data.get("details", ""), source="dashboard",
                                 actor=f"user:{session['user_id']}", received_on=received)
    except privacy.RequestError as e:
        return Template("privacy/tools.html", status_code=422,
                        context=_tools_context(db, session, error=i18n.gettext(str(e))))
    return Redirect(f"/{lang()}/app/privacy", status_code=303)


@post("/app/privacy/requests/{request_id:int}/answer", name="privacy_request_answer", sync_to_thread=True,
      status_code=303)
def answer_request(session: SignedIn, db: DB, request_id: FromPath[int], data: Form) -> Redirect:
    try:
        privacy.answer(db, session["business_id"], request_id, data.get("answer", ""),
                       actor=f"user:{session['user_id']}")
    except LookupError:
        raise NotFoundException() from None
    return Redirect(f"/{lang()}/app/privacy", status_code=303)


def _person(db: DB, session: SignedIn, data: dict) -> list[dict]:
    return privacy.find_person(db, session["business_id"],
                               phone=data.get("phone"), email=data.get("email"))


@get("/app/privacy/export", name="privacy_export", sync_to_thread=True)
def export(session: SignedIn, db: DB, phone: FromQuery[str | None] = None, email: FromQuery[str | None] = None,
           format: FromQuery[str] = "json") -> Response:
    rows = privacy.find_person(db, session["business_id"], phone=phone, email=email)
    data = privacy.export(db, businesses.get(db, session["business_id"]), rows, phone=phone, email=email,
                          actor=f"user:{session['user_id']}")
    stamp = data["generated_at"][:10]
    if format == "csv":
        return Response(privacy.export_csv(data), media_type="text/csv; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="capteo-export-{stamp}.csv"'})
    return Response(json.dumps(data, ensure_ascii=False, indent=2), media_type="application/json", headers={
        "content-disposition": f'attachment; filename="capteo-export-{stamp}.json"'})


def _erase(db: DB, config: Conf, session: SignedIn, data: dict, reason: str) -> Redirect:
    rows = _person(db, session, data)
    retention.erase_person(db, config, session["business_id"],
                           [r["id"] for r in rows], actor=f"user:{session['user_id']}", reason=reason)
    return Redirect(f"/{lang()}/app/privacy?done={reason}", status_code=303)


@post("/app/privacy/erase", name="privacy_erase", sync_to_thread=True, status_code=303)
def erase(session: SignedIn, db: DB, config: Conf, data: Form) -> Redirect:
    """Erase now: every lead of the person anonymized, their audio deleted."""
    return _erase(db, config, session, data, "erasure")


@post("/app/privacy/withdraw", name="privacy_withdraw", sync_to_thread=True, status_code=200)
def withdraw(session: SignedIn, db: DB, config: Conf, data: Form) -> Template | Redirect:
    """Consent withdrawn: anonymize, unless the business must keep the information
    (a legal obligation) — then the reason is recorded in the register."""
    if data.get("keep") != "yes":
        return _erase(db, config, session, data, "withdrawal")
    reason = normalize.clean(data.get("reason", ""), multiline=True)
    if not reason:
        return Template("privacy/tools.html", status_code=422, context=_tools_context(
            db, session, error=i18n.gettext(N_("Say why the business must keep this information."))))
    contact = data.get("email") or data.get("phone") or ""
    request_id = privacy.register_request(db, business_id=session["business_id"], kind="withdrawal",
                                          person=contact, contact=contact, details="", source="dashboard",
                                          actor=f"user:{session['user_id']}")
    privacy.answer(db, session["business_id"], request_id, reason, actor=f"user:{session['user_id']}")
    return Redirect(f"/{lang()}/app/privacy?done=kept", status_code=303)


@post("/app/privacy/contest", name="privacy_contest", sync_to_thread=True, status_code=303)
def contest(session: SignedIn, db: DB, data: Form) -> Redirect:
    rows = _person(db, session, data)
    privacy.flag_for_review(db, session["business_id"], [r["id"] for r in rows],
                            actor=f"user:{session['user_id']}")
    return Redirect(f"/{lang()}/app/privacy?done=contest", status_code=303)


# ---- audit viewer -----------------------------------------------------------------------------

_verification_cache: dict = {}


def _chain_status(db) -> audit.Verification:
    """The whole chain is walked at most once a minute per process: it grows forever."""
    cached = _verification_cache.get(str(db.path))
    if cached and time.monotonic() - cached[0] < 60:
        return cached[1]
    result = audit.verify(db.reader())
    _verification_cache[str(db.path)] = (time.monotonic(), result)
    return result


@get("/app/audit", name="audit_log", sync_to_thread=True, guards=[http.owner])
def audit_viewer(session: SignedIn, db: DB, lead: FromQuery[str | None] = None,
                 actor: FromQuery[str | None] = None, page: FromQuery[int] = 1) -> Template:
    rows = audit.entries(db.reader(), session["business_id"], entity_id=lead or None, actor=actor or None,
                         page=max(page, 1))
    return Template("privacy/audit.html", context={
        "session": session, "entries": rows[:50], "has_next": len(rows) > 50, "page": page, "lead": lead or "",
        "actor": actor or "", "chain": _chain_status(db)})


# ---- operator -------------------------------------------------------------------------------------

@get("/operator/incidents", name="incidents", sync_to_thread=True)
def incident_register(db: DB, config: Conf, key: FromQuery[str | None] = None) -> Template:
    """Read-only, for the operator: the secret key is printed by `run.py incident list`."""
    expected = config.secret("operator")
    if not key or not hmac.compare_digest(key, expected):
        raise NotFoundException()
    return Template("privacy/incidents.html", context={"incidents": incidents.all(db)})


routes: http.Routes = [
    http.localized(policy, request_page, request_submit, incident_register),
    http.dashboard(tools, add_request, answer_request, export, erase, withdraw, contest, audit_viewer),
]
