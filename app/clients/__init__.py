"""What a client (the person who made a request) can do without an account: look up
their request by its reference and the phone number they gave, see where it stands,
cancel it, or ask for their information to be erased.

The reference alone is not enough (it is read aloud, written on paper): the phone number
must match too, and a wrong pair says no more than "not found". Nothing else about the
lead is shown — not the need, not the name, not the address.

A client is also the business's record of one person across requests and channels:
the leads with the same phone or email (leads.create ties each new lead to one), with their
appointments and text messages; the team merges two clients or splits a lead off by hand.
A client row holds no personal data itself — only its id, its business and a date — so
anonymization has nothing to erase there: what identifies the person lives on the leads,
which retention.anonymize erases, and an anonymized lead leaves its client (m012's trigger).
"""

from __future__ import annotations

from dataclasses import dataclass

import apsw

from app import appointments, audit, businesses, clock, leads, normalize, privacy
from app.db import Database
from app.i18n import N_
from app.messaging import outbox

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


def ask_erasure(db: Database, standing: Standing, phone: str) -> int | None:
    """File an erasure request in the business's register (answered within 30 days); one
    open request per reference is enough (asking again files nothing new)."""
    if privacy.has_open_request(db, standing.business_id, "erasure", standing.reference):
        return None
    return privacy.register_request(
        db, business_id=standing.business_id, kind="erasure", person=standing.reference,
        contact=normalize.phone(phone) or phone, details="", source="public", actor=ACTOR)


# ---- the business's clients ------------------------------------------------------------------

class ClientError(ValueError):
    """A merge or split that cannot be done; the message is a msgid for the person."""


def get(db: Database, business_id: int, client_id: int) -> dict | None:
    """One client of this business; another business's client is None (the caller's 404)."""
    return db.query_one("SELECT * FROM clients WHERE business_id = ? AND id = ?", (business_id, client_id))


def leads_of(db: Database, business_id: int, client_id: int) -> list[dict]:
    """The client's requests, newest first."""
    return db.query("SELECT * FROM leads WHERE business_id = ? AND client_id = ? ORDER BY created_at DESC, id DESC",
                    (business_id, client_id))


def other_requests(db: Database, business_id: int, client_id: int, lead_id: int) -> int:
    """How many requests of this client there are besides this lead."""
    return db.one("SELECT count(*) AS n FROM leads WHERE business_id = ? AND client_id = ? AND id != ?",
                  (business_id, client_id, lead_id))["n"]


def history(db: Database, business_id: int, client_id: int) -> dict:
    """The client's requests (newest first), and the appointments and text messages of
    each, every one with the reference of its request."""
    rows = leads_of(db, business_id, client_id)
    booked, texts = [], []
    for lead in rows:
        booked += [{**a, "reference": lead["reference"], "lead_id": lead["id"]}
                   for a in appointments.for_lead(db, business_id, lead["id"])]
        texts += [{**m, "reference": lead["reference"], "lead_id": lead["id"]}
                  for m in outbox.for_lead(db, business_id, lead["id"])]
    booked.sort(key=lambda a: a["starts_at"], reverse=True)
    texts.sort(key=lambda m: (m["created_at"], m["id"]), reverse=True)
    return {"leads": rows, "appointments": booked, "messages": texts}


def viewed_by(db: Database, business_id: int, client_id: int, rows: list[dict], *, user_id: int) -> None:
    """The client page shows the personal fields of the client's leads: an access, audited."""
    with db.write() as conn:
        audit.record(conn, actor=f"user:{user_id}", action="client.view", entity="client", entity_id=client_id,
                     business_id=business_id,
                     fields=sorted({f for lead in rows for f in leads.PERSONAL_FIELDS if lead.get(f)}))


def _client_in(conn: apsw.Connection, business_id: int, client_id: int) -> bool:
    return bool(list(conn.execute("SELECT 1 FROM clients WHERE business_id = ? AND id = ?",
                                  (business_id, client_id))))


def merge(db: Database, business_id: int, client_id: int, other_id: int, *, user_id: int) -> int:
    """"Client `other_id` is the same person as this one": their requests join this client,
    and the other client is no more. Same business only. Returns how many requests moved.
    LookupError when this client is not the business's (the caller's 404)."""
    with db.write() as conn:
        if not _client_in(conn, business_id, client_id):
            raise LookupError(client_id)
        if other_id == client_id:
            raise ClientError(N_("This is already the same client."))
        if not _client_in(conn, business_id, other_id):
            raise ClientError(N_("No client has this number."))
        moved = [r["id"] for r in conn.execute("SELECT id FROM leads WHERE business_id = ? AND client_id = ?",
                                               (business_id, other_id))]
        conn.execute("UPDATE leads SET client_id = ? WHERE business_id = ? AND client_id = ?",
                     (client_id, business_id, other_id))
        conn.execute("DELETE FROM clients WHERE business_id = ? AND id = ?", (business_id, other_id))
        # Ids only: which client was kept, and which one joined it.
        audit.record(conn, actor=f"user:{user_id}", action="client.merge", entity="client",
                     entity_id=f"{client_id},{other_id}", business_id=business_id)
    return len(moved)


def split(db: Database, business_id: int, client_id: int, lead_id: int, *, user_id: int) -> int:
    """"This request is another person": the lead leaves this client for a new one.
    Returns the new client's id. LookupError when the lead is not this business's
    client's (the caller's 404)."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT id FROM leads WHERE business_id = ? AND client_id = ?",
                                 (business_id, client_id)))
        if lead_id not in {r["id"] for r in rows}:
            raise LookupError(lead_id)
        if len(rows) == 1:
            raise ClientError(N_("This is the client's only request: it is already on its own."))
        conn.execute("INSERT INTO clients (business_id, created_at) VALUES (?, ?)", (business_id, clock.now_iso()))
        new_id = conn.last_insert_rowid()
        conn.execute("UPDATE leads SET client_id = ? WHERE business_id = ? AND id = ?", (new_id, business_id, lead_id))
        audit.record(conn, actor=f"user:{user_id}", action="client.split", entity="lead", entity_id=lead_id,
                     business_id=business_id)
    return new_id
