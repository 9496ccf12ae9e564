"""The client's status page `/{lang}/status`: a request's reference and the phone number
given with it show where it stands; from there the client may cancel it or ask for
erasure. No account; wrong tries are limited per address like sign-in failures."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.response import Template

from app import clients, http, i18n
from app.businesses.ratelimit import client_ip
from app.http import DB, Form, RateLimits
from app.i18n import N_

NOT_FOUND = N_("We found no request with this reference and this phone number. Check both: the reference "
               "is in the message shown when you sent your request.")


def _page(values: dict, *, standing: clients.Standing | None = None, error: str | None = None,
          notice: str | None = None, confirm: str | None = None, status_code: int = 200) -> Template:
    return Template("clients/status.html", status_code=status_code, context={
        "values": {"reference": values.get("reference", "")[:20], "phone": values.get("phone", "")[:40]},
        "standing": standing, "error": i18n.gettext(error) if error else None,
        "notice": i18n.gettext(notice) if notice else None, "confirm": confirm})


@get("/status", name="client_status", sync_to_thread=False)
def status_page() -> Template:
    return _page({})


def _look_up(request: Request, db: DB, limits: RateLimits, data: dict) -> tuple[clients.Standing | None,
                                                                                Template | None]:
    slot = limits.login.take("status", client_ip(request))
    if slot is None:
        return None, _page(data, error=N_("Too many tries. Wait 15 minutes and try again."), status_code=429)
    standing = clients.find(db, data.get("reference", ""), data.get("phone", ""))
    if standing is None:
        return None, _page(data, error=NOT_FOUND, status_code=404)
    slot.give_back()  # only wrong pairs count
    return standing, None


@post("/status", name="client_status_find", sync_to_thread=True, status_code=200)
def status_find(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    standing, refused = _look_up(request, db, limits, data)
    if refused is not None:
        return refused
    assert standing is not None
    clients.viewed(db, standing)
    return _page(data, standing=standing)


@post("/status/cancel", name="client_status_cancel", sync_to_thread=True, status_code=200)
def status_cancel(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    standing, refused = _look_up(request, db, limits, data)
    if refused is not None:
        return refused
    assert standing is not None
    if not standing.can_cancel:
        return _page(data, standing=standing)
    if data.get("confirm") != "yes":
        return _page(data, standing=standing, confirm="cancel")
    clients.cancel(db, standing)
    return _page(data, standing=clients.find(db, data["reference"], data["phone"]),
                 notice=N_("Your request is cancelled. The business was told in its dashboard."))


@post("/status/erase", name="client_status_erase", sync_to_thread=True, status_code=200)
def status_erase(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    standing, refused = _look_up(request, db, limits, data)
    if refused is not None:
        return refused
    assert standing is not None
    if data.get("confirm") != "yes":
        return _page(data, standing=standing, confirm="erase")
    clients.ask_erasure(db, standing, data.get("phone", ""))
    return _page(data, standing=standing, notice=N_(
        "Your request for erasure is in the business's register. The law gives it 30 days to answer you."))


routes: http.Routes = [http.localized(status_page, status_find, status_cancel, status_erase)]
