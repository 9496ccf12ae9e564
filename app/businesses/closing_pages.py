"""Leaving with everything: the owner's export of the whole business, and closing the account
(app.businesses.closing). Owners only; these pages answer while billing made the dashboard
read-only, and while the business is closed (its only pages then, with sign-out)."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.response import Redirect, Stream, Template

from app import businesses, clock, http, i18n
from app.businesses import auth, closing
from app.db import Database
from app.http import DB, Conf, Form, SignedIn, lang
from app.i18n import N_

_OPT = http.WHILE_CLOSED


@get("/app/settings/export", name="business_export_page", sync_to_thread=True, guards=[http.owner], opt=_OPT)
def export_page(session: SignedIn, db: DB) -> Template:
    return Template("businesses/export.html", context={
        "session": session, "tables": closing.TABLES, "schema": closing.SCHEMA,
        "business": businesses.get(db, session["business_id"])})


@post("/app/settings/export", name="business_export", sync_to_thread=True, status_code=200, guards=[http.owner],
      opt=_OPT)
def export(session: SignedIn, db: DB) -> Stream:
    """The whole business as one ZIP (README.txt documents every file and column)."""
    business = businesses.get(db, session["business_id"])
    archive = closing.build_archive(db, business["id"], actor=f"user:{session['user_id']}")
    name = f"capteo-{business['slug']}-{clock.now().date().isoformat()}.zip"
    return Stream(closing.chunks(archive), media_type="application/zip",
                  headers={"content-disposition": f'attachment; filename="{name}"', "cache-control": "no-store"})


def _close_page(db: Database, session: dict, *, error: str | None = None, status_code: int = 200,
                **extra: object) -> Template:
    business = businesses.get(db, session["business_id"])
    until = closing.reopen_until(business)
    return Template("businesses/close.html", status_code=status_code, context={
        "session": session, "business": business, "lost": closing.what_is_lost(db, business["id"]),
        "error": error, "reopen_until": i18n.format_datetime(until, business["timezone"]) if until else None,
        "final": bool(until) and closing.final_in(db.reader(), business["id"]), **extra})


@get("/app/settings/close", name="business_close_page", sync_to_thread=True, guards=[http.owner], opt=_OPT)
def close_page(session: SignedIn, db: DB) -> Template:
    return _close_page(db, session)


@post("/app/settings/close", name="business_close", sync_to_thread=True, status_code=200, guards=[http.owner],
      opt=_OPT)
def close(request: Request, session: SignedIn, db: DB, config: Conf, data: Form) -> Template | Redirect:
    """Two steps: the owner types the form address to confirm; then the business closes."""
    business = businesses.get(db, session["business_id"])
    if closing.is_closed(business):
        return Redirect(f"/{lang()}/app/settings/close", status_code=303)
    if (data.get("confirm_slug") or "").strip().lower() != business["slug"]:
        return _close_page(db, session, status_code=422, error=i18n.gettext(
            N_("Type the form address exactly as shown to confirm.")))
    done = closing.close(db, config, business["id"], actor=f"user:{session['user_id']}",
                         keep_token=request.cookies.get(auth.COOKIE))
    return _close_page(db, session, just_closed=True, cancel_failed=done.cancel_failed,
                       subscription_canceled=done.subscription_canceled)


@post("/app/settings/reopen", name="business_reopen", sync_to_thread=True, status_code=200, guards=[http.owner],
      opt=_OPT)
def reopen(session: SignedIn, db: DB) -> Template | Redirect:
    business = businesses.get(db, session["business_id"])
    if not closing.is_closed(business):
        return Redirect(f"/{lang()}/app/leads", status_code=303)
    if not closing.reopen(db, business["id"], actor=f"user:{session['user_id']}"):
        return _close_page(db, session, status_code=409, error=i18n.gettext(
            N_("This business can no longer be reopened: its closing is final.")))
    return Redirect(f"/{lang()}/app/leads", status_code=303)


routes: http.Routes = [http.dashboard(export_page, export, close_page, close, reopen)]
