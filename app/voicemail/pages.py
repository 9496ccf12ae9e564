"""Routes for voicemail: the PBX upload endpoint, the dashboard's upload and progress,
retry of failed voicemails, the audio (signed-in members of that business only),
and the owner's token for the phone system."""

from __future__ import annotations

import logging

from anyio import to_thread
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import File, Redirect, Template

import jobs.voicemail
from app import audit, businesses, http, http_limits, i18n, normalize, voicemail
from app.businesses import closing
from app.config import Config
from app.db import Database
from app.http import DB, Conf, SignedIn, lang
from app.i18n import N_
from app.voicemail import models
from app.voicemail.audio import AudioRejected

log = logging.getLogger("capteo.voicemail")


def _wake(voicemail_id: int) -> None:
    try:
        jobs.voicemail.process(voicemail_id)
    except Exception:  # committed already: the sweeper wakes it if this wake-up is lost
        log.exception("could not enqueue voicemail %s; the sweep will", voicemail_id)


async def _upload(request: Request) -> tuple[bytes | None, dict]:
    sent = await request.form()
    upload = sent.get("audio")
    data = await upload.read() if isinstance(upload, UploadFile) else None
    return data, {k: v for k, v in sent.items() if isinstance(v, str)}


# ---- the PBX door -------------------------------------------------------------------------------

@post("/api/voicemail", name="api_voicemail", status_code=201, opt=http_limits.LARGE_UPLOAD)
async def api_voicemail(request: Request, db: DB, config: Conf) -> Response:
    """For any phone system: `Authorization: Bearer <the business's token>`, multipart
    `audio` (+ optional `caller_id`). Errors are JSON, in the Accept-Language's language."""
    i18n.current_language.set(i18n.best_language(request.headers.get("accept-language")))
    auth_header = request.headers.get("authorization", "")
    token = auth_header[7:].strip() if auth_header.lower().startswith("bearer ") else ""
    business = await to_thread.run_sync(businesses.by_pbx_token, db, token)
    if business is None:
        return Response({"error": i18n.gettext(N_("Unknown or missing token."))}, status_code=401)
    if closing.is_closed(business):
        return Response({"error": i18n.gettext(N_("This business no longer takes requests."))}, status_code=410)
    data, fields = await _upload(request)
    caller = normalize.phone(fields.get("caller_id", "")) if fields.get("caller_id") else None
    try:
        voicemail_id, _ = await to_thread.run_sync(lambda: voicemail.receive(
            db, config, business_id=business["id"], data=data or b"", caller_id=caller, source="pbx", actor="pbx"))
    except AudioRejected as e:
        return Response({"error": i18n.gettext(str(e))}, status_code=400)
    _wake(voicemail_id)
    return Response({"voicemail_id": voicemail_id, "state": "received"}, status_code=201)


# ---- the dashboard ------------------------------------------------------------------------------

def _models_state(config: Config) -> dict:
    """What the owner is told about the models, in plain words by the templates. Never loads
    a model here: results of the background validation, or the cheap file checks meanwhile."""
    state = models.health(config)
    speech, llm = state["whisper"], state["llm"]
    return {"speech_ready": speech["usable"] is not False,
            "speech_broken": speech["usable"] is False and speech["code"] != "missing",
            "llm_broken": llm["usable"] is False and llm["code"] != "missing"}


def _page(db: Database, config: Config, session: dict, error: str | None = None, status_code: int = 200) -> Template:
    return Template("voicemail/index.html", status_code=status_code, context={
        "session": session, "voicemails": voicemail.recent(db, session["business_id"]), "error": error,
        "max_minutes": config.voicemail.max_seconds // 60, **_models_state(config)})


@get("/app/voicemail", name="voicemail", sync_to_thread=True)
def voicemail_page(session: SignedIn, db: DB, config: Conf) -> Template:
    return _page(db, config, session)


@post("/app/voicemail", name="voicemail_upload", status_code=200, opt=http_limits.LARGE_UPLOAD)
async def voicemail_upload(request: Request, session: SignedIn, db: DB, config: Conf) -> Template | Redirect:
    data, _fields = await _upload(request)
    try:
        voicemail_id, _ = await to_thread.run_sync(lambda: voicemail.receive(
            db, config, business_id=session["business_id"], data=data or b"",
            caller_id=None, source="upload", actor=f"user:{session['user_id']}"))
    except AudioRejected as e:
        problem = str(e)
        return await to_thread.run_sync(lambda: _page(db, config, session, i18n.gettext(problem), 422))
    _wake(voicemail_id)
    return Redirect(f"/{lang()}/app/voicemail/{voicemail_id}", status_code=303)


def _voicemail_or_404(db: DB, session: SignedIn, voicemail_id: int) -> dict:
    vm = voicemail.get(db, session["business_id"], voicemail_id)
    if vm is None:
        raise NotFoundException()
    return vm


@get("/app/voicemail/{voicemail_id:int}", name="voicemail_progress", sync_to_thread=True)
def voicemail_progress(request: Request, session: SignedIn, db: DB, config: Conf,
                       voicemail_id: FromPath[int]) -> Template:
    """The progress of one voicemail; the fragment polls itself until it is done."""
    vm = _voicemail_or_404(db, session, voicemail_id)
    context = {"session": session, "vm": vm, **_models_state(config)}
    return http.fragment_or_page(request, "voicemail/_progress.html", "voicemail/progress.html", context)


@post("/app/voicemail/{voicemail_id:int}/retry", name="voicemail_retry", sync_to_thread=True, status_code=303)
def voicemail_retry(session: SignedIn, db: DB, voicemail_id: FromPath[int]) -> Redirect:
    try:
        voicemail.retry(db, session["business_id"], voicemail_id, actor=f"user:{session['user_id']}")
    except LookupError:
        raise NotFoundException() from None
    _wake(voicemail_id)
    return Redirect(f"/{lang()}/app/voicemail/{voicemail_id}", status_code=303)


@get("/app/voicemail/{voicemail_id:int}/audio", name="voicemail_audio", sync_to_thread=True)
def voicemail_audio(session: SignedIn, db: DB, config: Conf, voicemail_id: FromPath[int]) -> File:
    vm = _voicemail_or_404(db, session, voicemail_id)
    if not vm["audio_path"]:
        raise NotFoundException()
    path = config.audio_dir / vm["audio_path"].rsplit("/", 1)[-1]
    if not path.is_file():
        raise NotFoundException()
    with db.write() as conn:
        audit.record(conn, actor=f"user:{session['user_id']}", action="voicemail.listen", entity="voicemail",
                     entity_id=voicemail_id, business_id=session["business_id"], fields=["audio"])
    return File(path=path, filename=path.name, content_disposition_type="inline",
                headers={"cache-control": "private, no-store"})


@post("/app/settings/pbx-token", name="pbx_token", sync_to_thread=True, status_code=200, guards=[http.owner])
def pbx_token(session: SignedIn, db: DB, config: Conf) -> Template:
    """A new token for the business's phone system (the old one stops working); shown once."""
    token = businesses.new_pbx_token(db, session["business_id"], actor=f"user:{session['user_id']}")
    return Template("voicemail/token.html", context={
        "session": session, "token": token, "endpoint": f"{config.public_url}/api/voicemail"})


routes: http.Routes = [
    api_voicemail,
    http.dashboard(voicemail_page, voicemail_upload, voicemail_progress, voicemail_retry, voicemail_audio, pbx_token),
]
