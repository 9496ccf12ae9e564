"""Leads: one service request from one end user, whatever channel it came by.

Every function takes the business id: there is no way to read or change a lead
without saying whose it is.
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from typing import Any

import apsw

from app import audit, businesses, clock
from app.db import Database
from app.i18n import N_, NP_
from app.leads.fields import LEAD_FIELDS
from app.messaging import outbox

STATUSES = ("new", "scheduled", "contacted", "closed", "archived")
CHANNELS = ("web", "phone", "chat")
# One lead's status (singular, «Nouvelle»), and the inbox tab that lists them (plural, «Nouvelles»).
STATUS_LABELS = {"new": NP_("lead status", "New"), "scheduled": NP_("lead status", "Scheduled"),
                 "contacted": NP_("lead status", "Contacted"), "closed": NP_("lead status", "Closed"),
                 "archived": NP_("lead status", "Archived"), "anonymized": NP_("lead status", "Anonymized")}
STATUS_TABS = {"new": N_("New"), "scheduled": N_("Scheduled"), "contacted": N_("Contacted"),
               "closed": N_("Closed"), "archived": N_("Archived")}
CHANNEL_LABELS = {"web": N_("Web form"), "phone": N_("Voicemail"), "chat": N_("Chat")}
FIELD_LABELS: dict[str, str] = {f.name: f.label for f in LEAD_FIELDS if f.label is not None}
PERSONAL_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.personal)
EDITABLE = tuple(f.name for f in LEAD_FIELDS if f.editable)
# create() takes the lead's fields (those set at creation) and these columns of how the request came in.
_CREATE_COLUMNS = frozenset(f.name for f in LEAD_FIELDS if f.at_creation) | {
    "status", "consent_text", "consent_version", "consent_at", "session_id", "geocode_status", "geocode_next_at",
}
# No 0/O, 1/I/L: a reference is read aloud over the phone.
_REF_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_reference() -> str:
    return "".join(secrets.choice(_REF_ALPHABET) for _ in range(7))


def create(
    conn: apsw.Connection,
    *,
    business_id: int,
    channel: str,
    actor: str,
    language: str = "fr",
    custom_fields: dict[str, Any] | None = None,
    created_at: str | None = None,
    **fields: Any,
) -> dict:
    """Insert a lead and its audit entry in the caller's write transaction, and tie it to
    the business's client with the same phone or email (or a new client).
    Returns {"id", "reference"}."""
    unknown = set(fields) - _CREATE_COLUMNS
    if unknown:
        raise ValueError(f"unknown lead fields: {sorted(unknown)}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    now = created_at or clock.now_iso()
    row = {
        "business_id": business_id,
        "channel": channel,
        "language": language,
        "custom_fields": json.dumps(custom_fields or {}, ensure_ascii=False),
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    columns = ", ".join(["reference", *row])
    placeholders = ", ".join([":reference", *(f":{k}" for k in row)])
    while True:
        row["reference"] = new_reference()
        try:
            conn.execute(f"INSERT INTO leads ({columns}) VALUES ({placeholders})", row)
            break
        except apsw.ConstraintError:
            # A reference collision (1 in 27 billion): draw again.
            if not any(True for _ in conn.execute(
                "SELECT 1 FROM leads WHERE reference = ?", (row["reference"],)
            )):
                raise
    lead_id = conn.last_insert_rowid()
    _link_client(conn, business_id=business_id, lead_id=lead_id, phone=fields.get("phone"),
                 email=fields.get("email"), created_at=now)
    audit.record(
        conn, actor=actor, action="lead.create", entity="lead", entity_id=lead_id,
        business_id=business_id,
        fields=[k for k in fields if k in PERSONAL_FIELDS and fields[k] is not None]
        + (["custom_fields"] if custom_fields else []),
    )
    return {"id": lead_id, "reference": row["reference"]}


def _link_client(conn: apsw.Connection, *, business_id: int, lead_id: int, phone: str | None,
                 email: str | None, created_at: str) -> int:
    """Tie a new lead to this business's client (app.clients) with the same phone or email
    (that of the most recent such request, when a split left two), or to a new client.
    Returns the client's id."""
    email = (email or "").strip().lower() or None
    rows = list(conn.execute(
        """SELECT client_id FROM leads WHERE business_id = ? AND id != ? AND client_id IS NOT NULL
             AND ((? IS NOT NULL AND phone = ?) OR (? IS NOT NULL AND lower(email) = ?))
           ORDER BY created_at DESC, id DESC LIMIT 1""",
        (business_id, lead_id, phone, phone, email, email)))
    if rows:
        client_id = rows[0]["client_id"]
    else:
        conn.execute("INSERT INTO clients (business_id, created_at) VALUES (?, ?)", (business_id, created_at))
        client_id = conn.last_insert_rowid()
    conn.execute("UPDATE leads SET client_id = ? WHERE id = ?", (client_id, lead_id))
    return client_id


PER_PAGE = 25
# Urgent requests nobody has handled yet come first; then newest first.
_ORDER = "(l.urgent = 1 AND l.status = 'new') DESC, l.created_at DESC, l.id DESC"


def fts_query(q: str, business_id: int) -> str | None:
    """What to match in `leads_fts` for what was typed, in this business's own words:
    each word as a prefix glued to the business's mark (m021), "hél 514" of business 17
    -> "b17zhél"* AND "b17z514"*, so a prefix query only reads this business's part of
    the index. Words are runs of letters and digits, as the index splits them; phone
    digits are indexed with their usual tails (search_phone), so digit groups typed any
    way find the number. Quotes are doubled: no FTS syntax gets through."""
    # Composed first: "he\u0301le\u0300ne" (accents typed as combining marks) is one word, as the
    # index's tokenizer reads it, not three.
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFC", q or ""))[:8]
    if not words:
        return None
    return " AND ".join(f'"b{int(business_id)}z' + w.replace('"', '""') + '"*' for w in words)


def reference_query(q: str) -> str | None:
    """A lead's reference as the client reads it back: any case, with or without the
    spaces, dashes or "#" people add ("k7m-2pq4", "# K7M 2PQ4") -> "K7M2PQ4"; None when
    what was typed cannot be a reference."""
    compact = re.sub(r"[\s\-#.]", "", q or "").upper()
    return compact if re.fullmatch(r"[0-9A-Z]{7}", compact) else None


def by_reference(db: Database, business_id: int, q: str) -> dict | None:
    """This business's lead with that reference (typed any way `reference_query` reads)."""
    reference = reference_query(q)
    if reference is None:
        return None
    return db.query_one("SELECT * FROM leads WHERE business_id = ? AND reference = ?", (business_id, reference))


def inbox(
    db: Database,
    business_id: int,
    *,
    status: str | None = None,
    channel: str | None = None,
    q: str | None = None,
    assigned: str | None = None,
    user_id: int | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> tuple[list[dict], bool]:
    """One page of the inbox, newest first, filtered and searched in SQL; `assigned`
    is a VIEWS key ("me": `user_id`'s leads, "none": nobody's). Each row's `unread`
    is for `user_id`. Returns (rows, has_next_page)."""
    where, params = _view(business_id, assigned, user_id)
    if status:
        where.append("l.status = ?")
        params.append(status)
    else:
        where.append("l.status != 'anonymized'")
    if channel:
        where.append("l.channel = ?")
        params.append(channel)
    match = fts_query(q or "", business_id)
    reference = reference_query(q or "")
    offset = (max(page, 1) - 1) * per_page
    found = []
    if match:
        # Every word carries the business's mark: the search reads this business's index entries only.
        found.append("SELECT rowid FROM leads_fts WHERE leads_fts MATCH ?")
        params.append(match)
    if reference:
        found.append("SELECT id FROM leads WHERE reference = ?")
        params.append(reference)
    if found:
        # One list of ids, checked against the index the page is read in (no row read to test a reference).
        where.append(f"l.id IN ({' UNION ALL '.join(found)})")
    # One query: this person's last read of each lead comes with it.
    sql = f"""SELECT l.*, (r.read_at IS NULL OR l.updated_at > r.read_at) AS unread
              FROM leads l LEFT JOIN lead_reads r ON r.lead_id = l.id AND r.user_id = ?
              WHERE {' AND '.join(where)} ORDER BY {_ORDER} LIMIT ? OFFSET ?"""
    rows = db.query(sql, (user_id, *params, per_page + 1, offset))
    return rows[:per_page], len(rows) > per_page


# The inbox's views of who handles a lead (the `assigned` query parameter); None: everyone's.
VIEWS = {"me": N_("My leads"), "none": N_("Unassigned leads")}


def _view(business_id: int, assigned: str | None, user_id: int | None) -> tuple[list[str], list]:
    where: list[str] = ["l.business_id = ?"]
    params: list = [business_id]
    if assigned == "me":
        where.append("l.assigned_to = ?")
        params.append(user_id)
    elif assigned == "none":
        where.append("l.assigned_to IS NULL")
    return where, params


def counts_by_status(db: Database, business_id: int, *, assigned: str | None = None,
                     user_id: int | None = None) -> dict[str, int]:
    """How many leads each status tab holds, in this view (`assigned`, as `inbox`)."""
    counts = {s: 0 for s in STATUSES}
    where, params = _view(business_id, assigned, user_id)
    for row in db.query(
        f"SELECT l.status, count(*) AS n FROM leads l WHERE {' AND '.join(where)} GROUP BY l.status", params,
    ):
        if row["status"] in counts:
            counts[row["status"]] = row["n"]
    return counts


def count(db: Database) -> int:
    return db.one("SELECT count(*) AS n FROM leads")["n"]


def get(db: Database, business_id: int, lead_id: int) -> dict | None:
    """One lead of this business; another business's lead is None (the caller's 404)."""
    return db.query_one("SELECT * FROM leads WHERE business_id = ? AND id = ?", (business_id, lead_id))


def confirm_ai_fields(db: Database, business_id: int, lead_id: int, *, user_id: int) -> bool:
    """A person checked what the AI extracted: the fields are no longer "to verify".
    False for another business's lead (the caller's 404)."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT ai_fields FROM leads WHERE id = ? AND business_id = ?",
                                 (lead_id, business_id)))
        if not rows:
            return False
        conn.execute("UPDATE leads SET ai_fields = '[]', review_requested_at = NULL WHERE id = ?", (lead_id,))
        audit.record(conn, actor=f"user:{user_id}", action="lead.ai_confirm", entity="lead",
                     entity_id=lead_id, business_id=business_id, fields=json.loads(rows[0]["ai_fields"]))
    return True


class LeadError(ValueError):
    """A change a lead cannot take; the message is a msgid for the person."""


def _event(conn: apsw.Connection, *, business_id: int, lead_id: int, user_id: int | None, kind: str,
           data: dict | None = None, body: str | None = None) -> None:
    conn.execute(
        "INSERT INTO lead_events (business_id, lead_id, at, user_id, kind, data, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (business_id, lead_id, clock.now_iso(), user_id, kind, json.dumps(data or {}), body),
    )


def _locked(conn: apsw.Connection, business_id: int, lead_id: int) -> dict:
    rows = list(conn.execute("SELECT * FROM leads WHERE business_id = ? AND id = ?", (business_id, lead_id)))
    if not rows:
        raise LookupError(lead_id)
    if rows[0]["status"] == "anonymized":
        raise LeadError(N_("This lead was anonymized (Law 25); it cannot be changed."))
    return rows[0]


def set_status(db: Database, business_id: int, lead_id: int, status: str, *, user_id: int) -> dict | None:
    """Move a lead to another status, with its timeline event and audit entry.
    LookupError for another business's lead (the caller's 404)."""
    if status not in STATUSES:
        raise LeadError(N_("Unknown status."))
    now = clock.now_iso()
    with db.write() as conn:
        lead = _locked(conn, business_id, lead_id)
        if lead["status"] == status:
            return lead
        first_contact = lead["first_contact_at"] or (now if status in ("scheduled", "contacted", "closed") else None)
        conn.execute(
            """UPDATE leads SET status = ?, updated_at = ?, first_contact_at = ?,
               archived_at = CASE WHEN ? = 'archived' THEN ? ELSE NULL END
               WHERE business_id = ? AND id = ?""",
            (status, now, first_contact, status, now, business_id, lead_id),
        )
        _event(conn, business_id=business_id, lead_id=lead_id, user_id=user_id, kind="status",
               data={"from": lead["status"], "to": status})
        audit.record(conn, actor=f"user:{user_id}", action="lead.status", entity="lead", entity_id=lead_id,
                     business_id=business_id, fields=["status"])
    return get(db, business_id, lead_id)


def for_client(db: Database, reference: str) -> dict | None:
    """The lead with this exact reference (references are unique across businesses: a client's
    status page finds it, and then checks the phone number the client gave)."""
    return db.query_one("SELECT * FROM leads WHERE reference = ?", (reference,))


def assign(db: Database, business_id: int, lead_id: int, assignee_id: int | None, *, user_id: int,
           public_url: str = "") -> bool:
    """Give the lead to a member of this business's team (None: to nobody), with its
    timeline event and audit entry; False when nothing changed. LookupError for another
    business's lead (the caller's 404); LeadError for someone not on this team.
    An assignee other than the person assigning who has a mobile number is told by SMS,
    queued in the same transaction (`public_url` makes the link to the lead absolute)."""
    with db.write() as conn:
        lead = _locked(conn, business_id, lead_id)
        # Checked in the same transaction as the change: nobody outside the team gets a lead.
        if assignee_id is not None and not list(conn.execute(
            "SELECT 1 FROM memberships WHERE business_id = ? AND user_id = ?", (business_id, assignee_id),
        )):
            raise LeadError(N_("This person is not on your team."))
        if lead["assigned_to"] == assignee_id:
            return False
        # A changed lead: bold again for whoever opened it before, the new assignee included.
        conn.execute("UPDATE leads SET assigned_to = ?, updated_at = ? WHERE business_id = ? AND id = ?",
                     (assignee_id, clock.now_iso(), business_id, lead_id))
        _event(conn, business_id=business_id, lead_id=lead_id, user_id=user_id, kind="assign",
               data={"from": lead["assigned_to"], "to": assignee_id})
        audit.record(conn, actor=f"user:{user_id}", action="lead.assign", entity="lead", entity_id=lead_id,
                     business_id=business_id, fields=["assigned_to"])
        if assignee_id is not None and assignee_id != user_id:
            person = businesses.contact_of(conn, assignee_id)
            if person and person["phone"]:
                outbox.queue_assigned_sms(conn, business=businesses.named(conn, business_id), lead_id=lead_id,
                                          to=person["phone"], lang=person["language"] or "fr", public_url=public_url)
    return True


def mark_read(db: Database, business_id: int, lead_id: int, *, user_id: int) -> None:
    """This person has seen the lead as it is now (it is no longer bold in their inbox)."""
    with db.write() as conn:
        conn.execute(
            """INSERT INTO lead_reads (user_id, lead_id, read_at)
               SELECT ?, id, ? FROM leads WHERE business_id = ? AND id = ?
               ON CONFLICT (user_id, lead_id) DO UPDATE SET read_at = excluded.read_at""",
            (user_id, clock.now_iso(), business_id, lead_id),
        )


def close_by_client(db: Database, business_id: int, lead_id: int, *, actor: str) -> None:
    """The client cancelled their request from the status page."""
    now = clock.now_iso()
    with db.write() as conn:
        lead = _locked(conn, business_id, lead_id)
        if lead["status"] in ("closed", "archived"):
            return
        conn.execute("UPDATE leads SET status = 'closed', updated_at = ? WHERE business_id = ? AND id = ?",
                     (now, business_id, lead_id))
        _event(conn, business_id=business_id, lead_id=lead_id, user_id=None, kind="status",
               data={"from": lead["status"], "to": "closed", "by": "client"})
        audit.record(conn, actor=actor, action="lead.cancel_by_client", entity="lead", entity_id=lead_id,
                     business_id=business_id, fields=["status"])


def add_note(db: Database, business_id: int, lead_id: int, text: str, *, user_id: int) -> None:
    text = text.strip()
    if not text:
        raise LeadError(N_("Write something first."))
    if len(text) > 4000:
        raise LeadError(N_("This answer is too long."))
    with db.write() as conn:
        _locked(conn, business_id, lead_id)
        _event(conn, business_id=business_id, lead_id=lead_id, user_id=user_id, kind="note", body=text)
        # The notes column is what search sees; the events keep each note with its author.
        conn.execute(
            """UPDATE leads SET updated_at = ?, notes = (SELECT group_concat(body, char(10)) FROM lead_events
               WHERE lead_id = ? AND kind = 'note') WHERE business_id = ? AND id = ?""",
            (clock.now_iso(), lead_id, business_id, lead_id),
        )
        audit.record(conn, actor=f"user:{user_id}", action="lead.note", entity="lead", entity_id=lead_id,
                     business_id=business_id, fields=["notes"])


def rectify(db: Database, business_id: int, lead_id: int, changes: dict[str, str | None], *,
            user_id: int) -> list[str]:
    """Apply validated corrections; returns the names of the fields that changed
    (the only thing the timeline and audit log keep of them)."""
    with db.write() as conn:
        lead = _locked(conn, business_id, lead_id)
        changed = [k for k in EDITABLE if k in changes and changes[k] != lead[k]]
        if not changed:
            return []
        assignments = [f"{k} = ?" for k in changed] + ["updated_at = ?"]
        params: list = [changes[k] for k in changed] + [clock.now_iso()]
        if "postal_code" in changed:
            # A corrected postal code is placed on the map again.
            assignments += ["latitude = NULL", "longitude = NULL", "geocode_attempts = 0",
                            "geocode_status = ?", "geocode_next_at = ?"]
            params += ["pending" if changes["postal_code"] else "none", clock.now_iso()]
        conn.execute(f"UPDATE leads SET {', '.join(assignments)} WHERE business_id = ? AND id = ?",
                     (*params, business_id, lead_id))
        _event(conn, business_id=business_id, lead_id=lead_id, user_id=user_id, kind="edit",
               data={"fields": changed})
        audit.record(conn, actor=f"user:{user_id}", action="lead.rectify", entity="lead", entity_id=lead_id,
                     business_id=business_id, fields=changed)
    return changed


def timeline(db: Database, business_id: int, lead_id: int) -> list[dict]:
    """Everything that happened to a lead, oldest first, with who did it."""
    return db.query(
        """SELECT e.*, u.name AS user_name, u.email AS user_email FROM lead_events e
           LEFT JOIN users u ON u.id = e.user_id
           WHERE e.business_id = ? AND e.lead_id = ? ORDER BY e.at, e.id""",
        (business_id, lead_id),
    )


def latest_id(db: Database, business_id: int) -> int:
    return db.one("SELECT coalesce(max(id), 0) AS m FROM leads WHERE business_id = ?", (business_id,))["m"]


def with_coordinates(db: Database, business_id: int, limit: int = 5000) -> list[dict]:
    """Leads placed on the map (not anonymized: their coordinates are erased anyway)."""
    return db.query(
        """SELECT id, reference, status, first_name, last_name, latitude, longitude FROM leads
           WHERE business_id = ? AND latitude IS NOT NULL AND status != 'anonymized'
           ORDER BY created_at DESC LIMIT ?""",
        (business_id, limit),
    )


def latest_by_business(db: Database) -> dict[int, str]:
    """When each business last received a lead (for the operator's view)."""
    return {r["business_id"]: r["at"] for r in db.query(
        "SELECT business_id, max(created_at) AS at FROM leads GROUP BY business_id")}
