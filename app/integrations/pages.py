"""The owner's integrations: webhooks that tell the business's own tools (a CRM, Zapier,
Make, n8n) what happens to its requests, in the Standard Webhooks format.

Owners only (the `owner` guard), like the other settings; every endpoint and delivery
is looked up within the signed-in business, so another business's id answers 404.
A secret is shown once: when the endpoint is added and when it is replaced.
"""

from __future__ import annotations

import logging

from litestar import get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

import jobs.integrations
from app import http, i18n, integrations
from app.db import Database
from app.http import DB, Conf, Form, SignedIn, lang
from app.i18n import N_

log = logging.getLogger("capteo.webhooks")

LOG_SIZE = 50  # deliveries shown on an endpoint's page
# A delivery may be sent again from its page; the few sent since the page was opened too.

DELIVERY_STATUS = {
    "pending": N_("Waiting to be sent"),
    "sending": N_("Sending"),
    "delivered": N_("Delivered"),
    "failed": N_("Failed"),
    "canceled": N_("Canceled"),
}
TEST_EVENT_LABEL = N_("Test event")
# What a redirect's `done=` says back; nothing else is ever shown from the query string.
NOTICES = {
    "saved": N_("Webhook saved."),
    "test": N_("A test event is on its way. Its result appears in the log below."),
    "again": N_("The event will be sent again."),
    "not_again": N_("This event cannot be sent again: it is still being sent, or its content was erased."),
    "deleted": N_("Webhook removed. Nothing more is sent to that address."),
}


def _wake(delivery_id: int) -> None:
    try:
        jobs.integrations.deliver(delivery_id)
    except Exception:  # committed already: the minute sweep sends it if this wake-up is lost
        log.exception("could not enqueue webhook delivery %s; the sweep will", delivery_id)


def _actor(session: dict) -> str:
    return f"user:{session['user_id']}"


def _typed(data: dict[str, str]) -> dict:
    """What the owner sent: the URL, the events and personal fields ticked (one checkbox
    each, `event:<type>` and `field:<name>`), and whether the endpoint is on."""
    return {"url": (data.get("url") or "").strip(),
            "events": [e for e in integrations.EVENT_TYPES if data.get(f"event:{e}") == "yes"],
            "fields": [f for f in integrations.PERSONAL_FIELDS if data.get(f"field:{f}") == "yes"],
            "enabled": data.get("enabled") == "yes"}


def _labels() -> dict:
    return {"event_types": integrations.EVENT_TYPES, "event_labels": integrations.EVENT_LABELS,
            "personal_fields": integrations.PERSONAL_FIELDS, "delivery_status": DELIVERY_STATUS,
            "test_event": integrations.TEST_EVENT, "test_event_label": TEST_EVENT_LABEL}


def _notice(done: str | None) -> str | None:
    return i18n.gettext(NOTICES[done]) if done in NOTICES else None


def _list_page(db: Database, session: dict, *, values: dict | None = None, error: str | None = None,
               notice: str | None = None, status_code: int = 200) -> Template:
    found = integrations.endpoints(db, session["business_id"])
    for e in found:
        last = integrations.deliveries(db, session["business_id"], e["id"], 1)
        e["last_delivery"] = last[0] if last else None
    return Template("integrations/index.html", status_code=status_code, context={
        "session": session, "endpoints": found, "error": error, "notice": notice,
        "values": values or {"url": "", "events": [], "fields": [], "enabled": True}, **_labels()})


def _endpoint_or_404(db: Database, session: dict, endpoint_id: int) -> dict:
    found = integrations.endpoint(db, session["business_id"], endpoint_id)
    if found is None:
        raise NotFoundException()
    return found


def _endpoint_page(db: Database, session: dict, endpoint: dict, *, values: dict | None = None,
                   error: str | None = None, notice: str | None = None, secret: str | None = None,
                   created: bool = False, removing: bool = False, status_code: int = 200) -> Template:
    return Template("integrations/endpoint.html", status_code=status_code, context={
        "session": session, "endpoint": endpoint, "error": error, "notice": notice, "secret": secret,
        "created": created, "removing": removing,
        "values": values or {k: endpoint[k] for k in ("url", "events", "fields")} | {
            "enabled": bool(endpoint["enabled"])},
        "deliveries": integrations.deliveries(db, session["business_id"], endpoint["id"], LOG_SIZE), **_labels()})


def _back(endpoint_id: int | None, done: str) -> Redirect:
    where = f"/{lang()}/app/settings/integrations" + (f"/{endpoint_id}" if endpoint_id is not None else "")
    return Redirect(f"{where}?done={done}", status_code=303)


@get("/app/settings/integrations", name="settings_integrations", sync_to_thread=True, guards=[http.owner])
def integrations_page(session: SignedIn, db: DB, done: FromQuery[str | None] = None) -> Template:
    return _list_page(db, session, notice=_notice(done))


@post("/app/settings/integrations", name="settings_integration_add", sync_to_thread=True, status_code=200,
      guards=[http.owner])
def integration_add(session: SignedIn, db: DB, config: Conf, data: Form) -> Template:
    """A new endpoint; its secret is shown on the page that answers, and never again."""
    typed = _typed(data)
    try:
        endpoint_id, secret = integrations.create_endpoint(
            db, config, session["business_id"], url=typed["url"], events=typed["events"], fields=typed["fields"],
            actor=_actor(session))
    except integrations.EndpointError as e:
        return _list_page(db, session, values=typed, error=i18n.gettext(str(e)), status_code=422)
    return _endpoint_page(db, session, _endpoint_or_404(db, session, endpoint_id), secret=secret, created=True)


@get("/app/settings/integrations/{endpoint_id:int}", name="settings_integration", sync_to_thread=True,
     guards=[http.owner])
def integration_page(session: SignedIn, db: DB, endpoint_id: FromPath[int],
                     done: FromQuery[str | None] = None) -> Template:
    return _endpoint_page(db, session, _endpoint_or_404(db, session, endpoint_id), notice=_notice(done))


@post("/app/settings/integrations/{endpoint_id:int}", name="settings_integration_save", sync_to_thread=True,
      status_code=303, guards=[http.owner])
def integration_save(session: SignedIn, db: DB, config: Conf, endpoint_id: FromPath[int],
                     data: Form) -> Template | Redirect:
    endpoint = _endpoint_or_404(db, session, endpoint_id)
    typed = _typed(data)
    try:
        saved = integrations.update_endpoint(
            db, config, session["business_id"], endpoint_id, url=typed["url"], events=typed["events"],
            fields=typed["fields"], enabled=typed["enabled"], actor=_actor(session))
    except integrations.EndpointError as e:
        return _endpoint_page(db, session, endpoint, values=typed, error=i18n.gettext(str(e)), status_code=422)
    if not saved:
        raise NotFoundException()
    return _back(endpoint_id, "saved")


@post("/app/settings/integrations/{endpoint_id:int}/rotate", name="settings_integration_rotate",
      sync_to_thread=True, status_code=200, guards=[http.owner])
def integration_rotate(session: SignedIn, db: DB, endpoint_id: FromPath[int]) -> Template:
    """A new secret, shown once; the old one keeps signing beside it for 24 hours."""
    secret = integrations.rotate_secret(db, session["business_id"], endpoint_id, actor=_actor(session))
    if secret is None:
        raise NotFoundException()
    return _endpoint_page(db, session, _endpoint_or_404(db, session, endpoint_id), secret=secret)


@post("/app/settings/integrations/{endpoint_id:int}/test", name="settings_integration_test", sync_to_thread=True,
      status_code=303, guards=[http.owner])
def integration_test(session: SignedIn, db: DB, endpoint_id: FromPath[int]) -> Redirect:
    delivery_id = integrations.send_test(db, session["business_id"], endpoint_id, actor=_actor(session))
    if delivery_id is None:
        raise NotFoundException()
    _wake(delivery_id)
    return _back(endpoint_id, "test")


@post("/app/settings/integrations/{endpoint_id:int}/delete", name="settings_integration_delete",
      sync_to_thread=True, status_code=303, guards=[http.owner])
def integration_delete(session: SignedIn, db: DB, endpoint_id: FromPath[int], data: Form) -> Template | Redirect:
    """Two steps: without confirm=yes, the page asks, naming the address."""
    endpoint = _endpoint_or_404(db, session, endpoint_id)
    if data.get("confirm") != "yes":
        return _endpoint_page(db, session, endpoint, removing=True)
    if not integrations.delete_endpoint(db, session["business_id"], endpoint_id, actor=_actor(session)):
        raise NotFoundException()
    return _back(None, "deleted")


@post("/app/settings/integrations/{endpoint_id:int}/deliveries/{delivery_id:int}/again",
      name="settings_integration_again", sync_to_thread=True, status_code=303, guards=[http.owner])
def integration_again(session: SignedIn, db: DB, endpoint_id: FromPath[int], delivery_id: FromPath[int]) -> Redirect:
    """The same message (same `webhook-id`) once more; only one of this endpoint's."""
    _endpoint_or_404(db, session, endpoint_id)
    if integrations.delivery(db, session["business_id"], endpoint_id, delivery_id) is None:
        raise NotFoundException()
    if not integrations.send_again(db, session["business_id"], delivery_id, actor=_actor(session),
                                   endpoint_id=endpoint_id):
        return _back(endpoint_id, "not_again")
    _wake(delivery_id)
    return _back(endpoint_id, "again")


routes: http.Routes = [
    http.dashboard(integrations_page, integration_add, integration_page, integration_save, integration_rotate,
                   integration_test, integration_delete, integration_again),
]
