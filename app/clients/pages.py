"""The client's status page `/{lang}/status`: a request's reference and the phone number
given with it show where it stands; from there the client may cancel it or ask for
erasure. No account; wrong tries are limited per address like sign-in failures.

And, on the dashboard, a client's history `/{lang}/app/clients/{client_id}`: their
requests, appointments and text messages; merge two clients, split a request off."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Template

from app import clients, http, i18n, leads
from app.businesses.ratelimit import client_ip
from app.http import DB, Form, RateLimits, SignedIn, lang
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


def _look_up(request: Request, db: DB, limits: RateLimits, data: dict) -> clients.Standing | Template:
    """The request for this reference and phone, or the page that says why not."""
    slot = limits.login.take("status", client_ip(request))
    if slot is None:
        return _page(data, error=N_("Too many tries. Wait 15 minutes and try again."), status_code=429)
    standing = clients.find(db, data.get("reference", ""), data.get("phone", ""))
    if standing is None:
        return _page(data, error=NOT_FOUND, status_code=404)
    slot.give_back()  # only wrong pairs count
    return standing


@post("/status", name="client_status_find", sync_to_thread=True, status_code=200)
def status_find(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    standing = _look_up(request, db, limits, data)
    if isinstance(standing, Template):
        return standing
    clients.viewed(db, standing)
    return _page(data, standing=standing)


@post("/status/cancel", name="client_status_cancel", sync_to_thread=True, status_code=200)
def status_cancel(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    standing = _look_up(request, db, limits, data)
    if isinstance(standing, Template):
        return standing
    if not standing.can_cancel:
        return _page(data, standing=standing)
    if data.get("confirm") != "yes":
        return _page(data, standing=standing, confirm="cancel")
    clients.cancel(db, standing)
    return _page(data, standing=clients.find(db, data["reference"], data["phone"]),
                 notice=N_("Your request is cancelled. The business was told in its dashboard."))


@post("/status/erase", name="client_status_erase", sync_to_thread=True, status_code=200)
def status_erase(request: Request, db: DB, limits: RateLimits, data: Form) -> Template:
    standing = _look_up(request, db, limits, data)
    if isinstance(standing, Template):
        return standing
    if data.get("confirm") != "yes":
        return _page(data, standing=standing, confirm="erase")
    clients.ask_erasure(db, standing, data.get("phone", ""))
    return _page(data, standing=standing, notice=N_(
        "Your request for erasure is in the business's register. The law gives it 30 days to answer you."))


# ---- the business's clients (dashboard) --------------------------------------------------------

def _client_or_404(db: DB, session: dict, client_id: int) -> dict:
    client = clients.get(db, session["business_id"], client_id)
    if client is None:
        raise NotFoundException()
    return client


def _client_page(db: DB, session: dict, client_id: int, *, error: str | None = None, other: str = "",
                 status_code: int = 200) -> Template:
    client = _client_or_404(db, session, client_id)
    context: dict[str, Any] = {
        "session": session, "client": client, **clients.history(db, session["business_id"], client_id),
        "error": i18n.gettext(error) if error else None, "other": other[:20],
    }
    clients.viewed_by(db, session["business_id"], client_id, context["leads"], user_id=session["user_id"])
    return Template("clients/client.html", context=context, status_code=status_code)


@get("/app/clients/{client_id:int}", name="client", sync_to_thread=True)
def client_page(session: SignedIn, db: DB, client_id: FromPath[int]) -> Template:
    return _client_page(db, session, client_id)


@get("/app/clients/{client_id:int}/leads/{lead_id:int}/others", name="client_others", sync_to_thread=True)
def client_others(session: SignedIn, db: DB, client_id: FromPath[int], lead_id: FromPath[int]) -> Template:
    """The lead page's line "2 other requests from this client" (loaded by htmx into the
    lead's details). Only a count: not an access to personal information."""
    _client_or_404(db, session, client_id)
    lead = leads.get(db, session["business_id"], lead_id)
    if lead is None or lead["client_id"] != client_id:
        raise NotFoundException()
    count = clients.other_requests(db, session["business_id"], client_id, lead_id)
    return Template("clients/_others.html", context={"client_id": client_id, "count": count})


@post("/app/clients/{client_id:int}/merge", name="client_merge", sync_to_thread=True, status_code=303)
def client_merge(session: SignedIn, db: DB, client_id: FromPath[int], data: Form) -> Template | Redirect:
    """"This is the same person as client N": N's requests join this client."""
    _client_or_404(db, session, client_id)
    typed = (data.get("other") or "").strip().lstrip("#").strip()
    if not typed.isdigit() or int(typed) > http.MAX_ID:
        return _client_page(db, session, client_id, error=N_("Enter the number of the other client."),
                            other=typed, status_code=422)
    try:
        clients.merge(db, session["business_id"], client_id, int(typed), user_id=session["user_id"])
    except clients.ClientError as e:
        return _client_page(db, session, client_id, error=str(e), other=typed, status_code=422)
    except LookupError:
        raise NotFoundException() from None
    return Redirect(f"/{lang()}/app/clients/{client_id}", status_code=303)


@post("/app/clients/{client_id:int}/leads/{lead_id:int}/split", name="client_split", sync_to_thread=True,
      status_code=303)
def client_split(session: SignedIn, db: DB, client_id: FromPath[int], lead_id: FromPath[int]) -> Template | Redirect:
    """"This request is another person": the lead moves to a new client, whose page opens."""
    _client_or_404(db, session, client_id)
    try:
        new_id = clients.split(db, session["business_id"], client_id, lead_id, user_id=session["user_id"])
    except clients.ClientError as e:
        return _client_page(db, session, client_id, error=str(e), status_code=422)
    except LookupError:
        raise NotFoundException() from None
    return Redirect(f"/{lang()}/app/clients/{new_id}", status_code=303)


routes: http.Routes = [http.localized(status_page, status_find, status_cancel, status_erase),
                       http.dashboard(client_page, client_others, client_merge, client_split)]
