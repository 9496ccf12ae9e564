"""What a client (the person who made a request) can do without an account: look up
their request by its reference and the phone number they gave, see where it stands,
cancel it, or ask for their information to be erased.

The reference alone is not enough (it is read aloud, written on paper): the phone number
must match too, and a wrong pair says no more than "not found". Nothing else about the
lead is shown — not the need, not the name, not the address.
"""

from __future__ import annotations

from dataclasses import dataclass

from app import appointments, audit, businesses, leads, normalize, privacy
from app.db import Database

ACTOR = "public:status-page"


@dataclass(frozen=True)
class Standing:
    """Where a request stands, as its client may see it."""

    lead_id: int
    business_id: int
    business_name: str
    business_phone: str | None
    reference: str
    received_at: str
    state: str  # "received", "scheduled", "done"
    appointment_at: str | None
    timezone: str
    can_cancel: bool


def _clean_reference(reference: str) -> str:
    return "".join(c for c in reference.upper() if c.isalnum())[:20]


def find(db: Database, reference: str, phone: str) -> Standing | None:
    """The request with this reference whose phone number is this one, or None (for a
    wrong reference, a wrong phone, or an anonymized request alike)."""
    e164 = normalize.phone(phone or "")
    ref = _clean_reference(reference or "")
    if not e164 or not ref:
        return None
    lead = leads.for_client(db, ref)
    if lead is None or lead["phone"] != e164 or lead["status"] == "anonymized":
        return None
    business = businesses.get(db, lead["business_id"])
    booked = [a for a in appointments.for_lead(db, lead["business_id"], lead["id"]) if a["status"] == "booked"]
    if lead["status"] in ("closed", "archived"):
        state = "done"
    elif booked:
        state = "scheduled"
    else:
        state = "received"
    return Standing(
        lead_id=lead["id"], business_id=lead["business_id"], business_name=business["name"],
        business_phone=business["phone"], reference=lead["reference"], received_at=lead["created_at"],
        state=state, appointment_at=booked[0]["starts_at"] if booked else None, timezone=business["timezone"],
        can_cancel=state != "done")


def viewed(db: Database, standing: Standing) -> None:
    with db.write() as conn:
        audit.record(conn, actor=ACTOR, action="lead.status_page.view", entity="lead", entity_id=standing.lead_id,
                     business_id=standing.business_id, fields=["status"])


def cancel(db: Database, standing: Standing) -> None:
    """The client no longer needs the service: the request is closed, and the timeline
    says who closed it. Booked appointments stay for the business to cancel (it decides
    what to tell its technician)."""
    leads.close_by_client(db, standing.business_id, standing.lead_id, actor=ACTOR)


def ask_erasure(db: Database, standing: Standing, phone: str) -> int:
    """File an erasure request in the business's register (answered within 30 days)."""
    return privacy.register_request(
        db, business_id=standing.business_id, kind="erasure", person=standing.reference,
        contact=normalize.phone(phone) or phone, details="", source="public", actor=ACTOR)
