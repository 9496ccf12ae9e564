"""Policy changes: the public page showing what a new version changes, and the owner's
notice (templates/privacy/_policy_notice.html) dismissed by each person for themselves."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app import http
from app.http import DB, Conf, SignedIn, lang
from app.privacy import versions


@get("/privacy/changes/{version:str}", name="policy_changes", sync_to_thread=True)
def changes(db: DB, config: Conf, version: FromPath[str]) -> Template:
    row = versions.get(db, version)
    if row is None:
        raise NotFoundException()
    return Template("privacy/changes.html", context={
        "version": row, "summary": row[f"summary_{lang()}"], "zone": versions.ZONE,
        "diff": versions.changes(db, config, row, lang())})


@post("/app/policy-notice/{version:str}/dismiss", name="policy_notice_dismiss", sync_to_thread=True,
      status_code=303)
def dismiss(request: Request, session: SignedIn, db: DB, version: FromPath[str]) -> Response | Redirect:
    if not versions.dismiss(db, session["user_id"], version):
        raise NotFoundException()
    if http.is_htmx(request):
        return Response("", status_code=200, media_type="text/html")
    return Redirect(f"/{lang()}/app/leads", status_code=303)


routes: http.Routes = [http.localized(changes), http.dashboard(dismiss)]
