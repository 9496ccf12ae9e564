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

from app import audit, businesses, clock, form, http, i18n, leads, normalize, privacy, voicemail
from app.businesses.ratelimit import client_ip
from app.db import Database
from app.http import DB, Conf, Form, RateLimits, SignedIn, lang
from app.i18n import N_
from app.privacy import incidents, retention


@get("/privacy", name="privacy", sync_to_thread=True)
def policy(config: Conf, db: DB, b: FromQuery[str | None] = None) -> Template:
    """The policy; from a business's form (?b=its address) it also names that business and
    how to reach it. An unknown address shows the policy alone: it is the same for everyone."""
    business = businesses.by_form_address(db, (b or "").strip().lower()[:100]) if b else None
    return Template("privacy/policy.html", context={
        "policy": privacy.policy_html(config, lang(), db), "business": business})


# ---- public request page -------------------------------------------------------------------------

def _request_form(business_slug: str, values: dict | None = None, error: str | None = None,
                  status_code: int = 200) -> Template:
    return Template("privacy/request.html", status_code=status_code, context={
        "slug": business_slug, "values": values or {}, "error": error, "kinds": privacy.KINDS,
        "issued": str(int(time.time()))})


@get("/privacy/request", name="privacy_request", sync_to_thread=True)
def request_page(db: DB, b: FromQuery[str | None] = None) -> Template | Redirect:
    business = businesses.by_form_address(db, (b or "").strip().lower())
    if business is not None and business["slug"] != b:
        # A link from the form's old address: the page names the business by its address now.
        return Redirect(f"/{lang()}/privacy/request?b={business['slug']}", status_code=301,
                        headers={"cache-control": "max-age=3600"})
    return _request_form(b or "")


@post("/privacy/request", name="privacy_request_submit", sync_to_thread=True, status_code=200)
def request_submit(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    """No account needed; rate-limited per IP; a honeypot; lands in that business's register only."""
    slug = (data.get("business") or "").strip().lower()
    ip = client_ip(request)
    # Taken before the work and given back if it does not count (concurrent posts cannot pass together).
    slot = limits.forms.take("privacy", ip)
    if slot is None:
        return Template("error.html", context={"status": 429}, status_code=429)
    business = businesses.by_form_address(db, slug)
    if data.get(form.HONEYPOT_FIELD):
        return Template("privacy/request_done.html", context={"business": business or {"name": slug}})
    if business is None:
        slot.give_back()
        return _request_form(slug, data, i18n.gettext(N_("We did not find this business. Use the link at the bottom "
                                                         "of its request form.")), 422)
    try:
        privacy.register_request(db, business_id=business["id"], kind=data.get("kind", ""),
                                 person=data.get("person", ""), contact=data.get("contact", ""),
                                 details=data.get("details", ""), source="public", actor="public:privacy-request")
    except privacy.RequestError as e:
        slot.give_back()
        return _request_form(slug, data, i18n.gettext(str(e)), 422)
    return Template("privacy/request_done.html", context={"business": business})


# ---- the business's register and tools ----------------------------------------------------------

def _tools_context(db: Database, session: dict, **extra: object) -> dict:
    return {"session": session, "requests": privacy.requests(db, session["business_id"]), "kinds": privacy.KINDS,
            "found": None, "voicemails": [], "conversations": [], "related": [], "phone": "", "email": "",
            "reference": "",
            "error": None, "done": None,
            "is_owner": session["role"] == "owner", **extra}


@get("/app/privacy", name="privacy_tools", sync_to_thread=True)
def tools(session: SignedIn, db: DB, done: FromQuery[str | None] = None) -> Template:
    return Template("privacy/tools.html", context=_tools_context(db, session, done=done))


@post("/app/privacy/find", name="privacy_find", sync_to_thread=True, status_code=200)
def find(session: SignedIn, db: DB, data: Form) -> Template:
    """Posted, not a query string: a phone number or an email never sits in an address
    (history, logs, the Referer of the next page)."""
    phone, email = (data.get("phone") or "").strip()[:254], (data.get("email") or "").strip()[:254]
    reference = (data.get("reference") or "").strip()[:40]
    if reference and not (phone or email):
        # The reference a client quotes leads to their phone and email, and from there to all of them.
        lead = leads.by_reference(db, session["business_id"], reference)
        if lead is not None and lead["status"] != "anonymized":
            phone, email = lead["phone"] or "", lead["email"] or ""
    found, voicemails, conversations, related = None, [], [], []
    if reference and not (phone or email):
        found = []
    if phone or email:
        found = privacy.find_person(db, session["business_id"], phone=phone, email=email)
        voicemails = privacy.voicemails_without_lead(db, session["business_id"], phone=phone)
        conversations = privacy.conversations_without_lead(db, session["business_id"], phone=phone, email=email)
        related = privacy.related_requests(db, session["business_id"], found)
        with db.write() as conn:
            audit.record(conn, actor=f"user:{session['user_id']}", action="person.search", entity="lead",
                         entity_id=",".join(str(r["id"]) for r in found), business_id=session["business_id"],
                         fields=["phone", "email"])
            if conversations:
                audit.record(conn, actor=f"user:{session['user_id']}", action="person.search", entity="chat",
                             entity_id=",".join(str(c["id"]) for c in conversations),
                             business_id=session["business_id"], fields=["phone", "email"])
    return Template("privacy/tools.html", context=_tools_context(
        db, session, found=found, voicemails=voicemails, conversations=conversations, related=related,
        phone=phone, email=email, reference=reference))


@post("/app/privacy/requests", name="privacy_request_add", sync_to_thread=True, status_code=200)
def add_request(session: SignedIn, db: DB, data: Form) -> Template | Redirect:
    try:
        received = privacy.received_day(data["received_on"], clock.now().date()) if data.get("received_on") else None
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


# Export and erase are the owner's: a member works the leads and files requests, but
# handing a person's whole file out or destroying it is the business's decision.
@post("/app/privacy/export", name="privacy_export", sync_to_thread=True, status_code=200, guards=[http.owner])
def export(session: SignedIn, db: DB, data: Form) -> Response:
    phone, email, format = data.get("phone") or None, data.get("email") or None, data.get("format", "json")
    rows = privacy.find_person(db, session["business_id"], phone=phone, email=email)
    voicemails = privacy.voicemails_without_lead(db, session["business_id"], phone=phone)
    conversations = privacy.conversations_without_lead(db, session["business_id"], phone=phone, email=email)
    person = privacy.export(db, businesses.get(db, session["business_id"]), rows, phone=phone, email=email,
                            actor=f"user:{session['user_id']}", voicemails=voicemails, conversations=conversations)
    stamp = person["generated_at"][:10]
    if format == "csv":
        return Response(privacy.export_csv(person), media_type="text/csv; charset=utf-8", headers={
            "content-disposition": f'attachment; filename="capteo-export-{stamp}.csv"'})
    return Response(json.dumps(person, ensure_ascii=False, indent=2), media_type="application/json", headers={
        "content-disposition": f'attachment; filename="capteo-export-{stamp}.json"'})


def _erase(db: DB, config: Conf, session: SignedIn, data: dict, reason: str) -> Template | Redirect:
    """Irreversible, so in two steps: without `confirm=yes` the page says what will be
    lost (how many leads, voicemails, recordings) and asks again."""
    phone, email = (data.get("phone") or "").strip(), (data.get("email") or "").strip()
    if not phone and not email:
        return Template("privacy/tools.html", status_code=422, context=_tools_context(
            db, session, error=i18n.gettext(N_("Give the person's phone or email."))))
    rows = _person(db, session, data)
    voicemails = privacy.voicemails_without_lead(db, session["business_id"], phone=phone)
    conversations = privacy.conversations_without_lead(db, session["business_id"], phone=phone, email=email)
    if data.get("confirm") != "yes":
        recordings = (sum(1 for vm in voicemails if vm["audio_path"])
                      + sum(1 for r in rows for vm in voicemail.for_lead(db, session["business_id"], r["id"])
                            if vm["audio_path"]))
        return Template("privacy/erase_confirm.html", context={
            "session": session, "phone": phone, "email": email, "reason": reason, "leads": rows,
            "voicemails": voicemails, "conversations": conversations, "recordings": recordings})
    retention.erase_person(db, config, session["business_id"], [r["id"] for r in rows],
                           voicemail_ids=[vm["id"] for vm in voicemails],
                           conversation_ids=[c["id"] for c in conversations], actor=f"user:{session['user_id']}",
                           reason=reason)
    return Redirect(f"/{lang()}/app/privacy?done={reason}", status_code=303)


@post("/app/privacy/erase", name="privacy_erase", sync_to_thread=True, status_code=200, guards=[http.owner])
def erase(session: SignedIn, db: DB, config: Conf, data: Form) -> Template | Redirect:
    """Erase now: every lead of the person anonymized, their voicemails erased, their audio deleted."""
    return _erase(db, config, session, data, "erasure")


@post("/app/privacy/withdraw", name="privacy_withdraw", sync_to_thread=True, status_code=200, guards=[http.owner])
def withdraw(session: SignedIn, db: DB, config: Conf, data: Form) -> Template | Redirect:
    """Consent withdrawn: anonymize (confirmed like an erasure), unless the business must
    keep the information (a legal obligation) — then the reason is recorded in the register."""
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
    """The filter takes what the owner has at hand: the reference the client was given
    (or the lead's number), and a member's email (or "user:3")."""
    page = max(1, min(page, 10_000))
    text = (lead or "").strip()
    lead_id: str | None = None
    if text:
        # A reference first (scoped to this business); then a lead number.
        found = leads.by_reference(db, session["business_id"], text)
        if found is not None:
            lead_id = str(found["id"])
        elif text.isdigit() and len(text) <= 18 and leads.get(db, session["business_id"], int(text)):
            lead_id = str(int(text))
    if text and lead_id is None:
        rows: list[dict] = []
    else:
        rows = audit.entries(db.reader(), session["business_id"], entity_id=lead_id,
                             actor=(actor or "").strip() or None, page=page)
    return Template("privacy/audit.html", context={
        "session": session, "entries": rows[:50], "has_next": len(rows) > 50, "page": page, "lead": text,
        "actor": actor or "", "unknown_lead": bool(text) and lead_id is None, "chain": _chain_status(db)})


# ---- operator -------------------------------------------------------------------------------------

def _operator_key_ok(config: Conf, key: str) -> bool:
    return bool(key) and hmac.compare_digest(key.encode(), config.secret("operator").encode())


def _incident_page(db: DB) -> Template:
    return Template("privacy/incidents.html", context={"incidents": incidents.all(db)},
                    headers={"cache-control": "no-store"})


def _incident_key_form(error: str | None = None, status_code: int = 200) -> Template:
    return Template("privacy/incidents_key.html", context={"error": error}, status_code=status_code,
                    headers={"cache-control": "no-store"})


@get("/operator/incidents", name="incidents", sync_to_thread=True)
def incident_register(request: Request, db: DB, config: Conf) -> Template:
    """Read-only, for the operator. The key never travels in the address (proxies, logs
    and browser history keep addresses): it is typed into this page's form, or sent as
    `Authorization: Bearer <key>`. `run.py incident list` prints it."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        if _operator_key_ok(config, key.strip()):
            return _incident_page(db)
        return _incident_key_form(i18n.gettext(N_("This is not the operator key.")), 403)
    return _incident_key_form()


@post("/operator/incidents", name="incidents_open", sync_to_thread=True, status_code=200)
def incident_register_open(db: DB, config: Conf, data: Form) -> Template:
    if not _operator_key_ok(config, (data.get("key") or "").strip()):
        return _incident_key_form(i18n.gettext(N_("This is not the operator key.")), 403)
    return _incident_page(db)


routes: http.Routes = [
    http.localized(policy, request_page, request_submit, incident_register, incident_register_open),
    http.dashboard(tools, find, add_request, answer_request, export, erase, withdraw, contest, audit_viewer),
]
