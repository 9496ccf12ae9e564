"""Routes for voicemail: the PBX upload endpoint, the dashboard's upload and progress,
retry of failed voicemails, and the audio (signed-in members of that business only)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets

from anyio import to_thread
from litestar import Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import File, Redirect, Template

from app import audit, i18n, voicemail
from app.auth import require
from app.i18n import N_
from app.voicemail.audio import AudioRejected
from app.web import set_language


log = logging.getLogger("capteo.voicemail")


def _lang() -> str:
    return i18n.current_language.get()


def _wake(voicemail_id: int) -> None:
    import jobs.voicemail

    try:
        jobs.voicemail.process(voicemail_id)
    except Exception:  # committed already: the sweeper wakes it if this wake-up is lost
        log.exception("could not enqueue voicemail %s; the sweep will", voicemail_id)


async def _upload(request: Request) -> tuple[bytes | None, dict]:
    form = await request.form()
    upload = form.get("audio")
    data = await upload.read() if isinstance(upload, UploadFile) else None
    return data, {k: v for k, v in form.items() if isinstance(v, str)}


# ---- the PBX door -------------------------------------------------------------------------------

def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@post("/api/voicemail", name="api_voicemail", status_code=201)
async def api_voicemail(request: Request) -> Response:
    """For any phone system: `Authorization: Bearer <the business's token>`, multipart
    `audio` (+ optional `caller_id`). Errors are JSON, in the Accept-Language's language."""
    i18n.current_language.set(i18n.best_language(request.headers.get("accept-language")))
    auth_header = request.headers.get("authorization", "")
    token = auth_header[7:].strip() if auth_header.lower().startswith("bearer ") else ""
    db = request.app.state.db
    business = db.query_one("SELECT * FROM businesses WHERE pbx_token_hash = ?", (token_hash(token),)) if token \
        else None
    if business is None or not hmac.compare_digest(business["pbx_token_hash"], token_hash(token)):
        return Response({"error": i18n.gettext(N_("Unknown or missing token."))}, status_code=401)
    data, fields = await _upload(request)
    from app import forms

    caller = forms.normalize_phone(fields.get("caller_id", "")) if fields.get("caller_id") else None
    try:
        voicemail_id, _ = await to_thread.run_sync(lambda: voicemail.receive(
            db, request.app.state.config, business_id=business["id"], data=data or b"", caller_id=caller,
            source="pbx", actor="pbx"))
    except AudioRejected as e:
        return Response({"error": i18n.gettext(str(e))}, status_code=400)
    _wake(voicemail_id)
    return Response({"voicemail_id": voicemail_id, "state": "received"}, status_code=201)


# ---- the dashboard ------------------------------------------------------------------------------

def _page(request: Request, session: dict, error: str | None = None, status_code: int = 200) -> Template:
    db = request.app.state.db
    import jobs.voicemail

    return Template("voicemail/index.html", status_code=status_code, context={
        "session": session, "voicemails": voicemail.recent(db, session["business_id"]), "error": error,
        "speech_ready": jobs.voicemail.engine().speech_ready(),
        "max_minutes": request.app.state.config.get("voicemail", "max_seconds") // 60})


@get("/app/voicemail", name="voicemail", sync_to_thread=True)
def voicemail_page(request: Request) -> Template:
    return _page(request, require(request))


@post("/app/voicemail", name="voicemail_upload", status_code=200)
async def voicemail_upload(request: Request) -> Template | Redirect:
    session = await to_thread.run_sync(require, request)
    data, _fields = await _upload(request)
    try:
        voicemail_id, _ = await to_thread.run_sync(lambda: voicemail.receive(
            request.app.state.db, request.app.state.config, business_id=session["business_id"], data=data or b"",
            caller_id=None, source="upload", actor=f"user:{session['user_id']}"))
    except AudioRejected as e:
        return await to_thread.run_sync(lambda: _page(request, session, i18n.gettext(str(e)), 422))
    _wake(voicemail_id)
    return Redirect(f"/{_lang()}/app/voicemail/{voicemail_id}", status_code=303)


def _voicemail_or_404(request: Request, session: dict, voicemail_id: int) -> dict:
    vm = voicemail.get(request.app.state.db, session["business_id"], voicemail_id)
    if vm is None:
        raise NotFoundException()
    return vm


@get("/app/voicemail/{voicemail_id:int}", name="voicemail_progress", sync_to_thread=True)
def voicemail_progress(request: Request, voicemail_id: FromPath[int]) -> Template:
    """The progress of one voicemail; the fragment polls itself until it is done."""
    session = require(request)
    vm = _voicemail_or_404(request, session, voicemail_id)
    import jobs.voicemail

    context = {"session": session, "vm": vm, "speech_ready": jobs.voicemail.engine().speech_ready()}
    if request.headers.get("hx-request"):
        return Template("voicemail/_progress.html", context=context)
    return Template("voicemail/progress.html", context=context)


@post("/app/voicemail/{voicemail_id:int}/retry", name="voicemail_retry", sync_to_thread=True, status_code=303)
def voicemail_retry(request: Request, voicemail_id: FromPath[int]) -> Redirect:
    session = require(request)
    try:
        voicemail.retry(request.app.state.db, session["business_id"], voicemail_id,
                        actor=f"user:{session['user_id']}")
    except LookupError:
        raise NotFoundException()
    _wake(voicemail_id)
    return Redirect(f"/{_lang()}/app/voicemail/{voicemail_id}", status_code=303)


@get("/app/voicemail/{voicemail_id:int}/audio", name="voicemail_audio", sync_to_thread=True)
def voicemail_audio(request: Request, voicemail_id: FromPath[int]) -> File:
    session = require(request)
    vm = _voicemail_or_404(request, session, voicemail_id)
    if not vm["audio_path"]:
        raise NotFoundException()
    path = request.app.state.config.audio_dir / vm["audio_path"].rsplit("/", 1)[-1]
    if not path.is_file():
        raise NotFoundException()
    with request.app.state.db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="voicemail.listen", entity="voicemail",
                     entity_id=voicemail_id, business_id=session["business_id"], fields=["audio"])
    return File(path=path, filename=path.name, content_disposition_type="inline",
                headers={"cache-control": "private, no-store"})


@post("/app/settings/pbx-token", name="pbx_token", sync_to_thread=True, status_code=200)
def pbx_token(request: Request) -> Template:
    """A new token for the business's phone system (the old one stops working); shown once."""
    session = require(request, owner=True)
    token = secrets.token_urlsafe(32)
    with request.app.state.db.write() as conn:
        conn.execute("UPDATE businesses SET pbx_token_hash = ? WHERE id = ?", (token_hash(token), session["business_id"]))
        audit.record(conn, actor=f"user:{session['user_id']}", action="business.pbx_token", entity="business",
                     entity_id=session["business_id"], business_id=session["business_id"], fields=["pbx_token"])
    return Template("voicemail/token.html", context={
        "session": session, "token": token, "endpoint": f"{request.app.state.config.public_url}/api/voicemail"})


@post("/app/leads/{lead_id:int}/confirm", name="lead_confirm", sync_to_thread=True, status_code=303)
def lead_confirm(request: Request, lead_id: FromPath[int]) -> Redirect:
    """A person checked what the AI extracted: the fields are no longer "to verify"."""
    session = require(request)
    db = request.app.state.db
    with db.write() as conn:
        rows = list(conn.execute("SELECT ai_fields FROM leads WHERE id = ? AND business_id = ?",
                                 (lead_id, session["business_id"])))
        if not rows:
            raise NotFoundException()
        conn.execute("UPDATE leads SET ai_fields = '[]', review_requested_at = NULL WHERE id = ?", (lead_id,))
        audit.record(conn, actor=f"user:{session['user_id']}", action="lead.ai_confirm", entity="lead",
                     entity_id=lead_id, business_id=session["business_id"], fields=json.loads(rows[0]["ai_fields"]))
    return Redirect(f"/{_lang()}/app/leads/{lead_id}", status_code=303)


routes = [
    api_voicemail,
    Router(path="/{lang:str}", before_request=set_language, route_handlers=[
        voicemail_page, voicemail_upload, voicemail_progress, voicemail_retry, voicemail_audio, pbx_token,
        lead_confirm]),
]
