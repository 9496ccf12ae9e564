"""Leads: one service request from one end user, whatever channel it came by.

Every function takes the business id: there is no way to read or change a lead
without saying whose it is.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import apsw

from app import audit, clock
from app.db import Database

STATUSES = ("new", "scheduled", "contacted", "closed", "archived")
CHANNELS = ("web", "phone", "chat")
PERSONAL_FIELDS = (
    "first_name", "last_name", "phone", "email", "street_address", "postal_code", "need", "notes",
    "callback_time",
)
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
    """Insert a lead and its audit entry in the caller's write transaction.
    Returns {"id", "reference"}."""
    unknown = set(fields) - set(PERSONAL_FIELDS) - {
        "status", "consent_text", "consent_version", "consent_at", "session_id",
        "latitude", "longitude", "submission_token", "geocode_status", "geocode_next_at",
    }
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
    audit.record(
        conn, actor=actor, action="lead.create", entity="lead", entity_id=lead_id,
        business_id=business_id,
        fields=[k for k in fields if k in PERSONAL_FIELDS and fields[k] is not None]
        + (["custom_fields"] if custom_fields else []),
    )
    return {"id": lead_id, "reference": row["reference"]}


def list_for_business(
    db: Database, business_id: int, *, status: str | None = None, limit: int = 50
) -> list[dict]:
    """Newest first, optionally one status."""
    if status:
        return db.query(
            """SELECT * FROM leads WHERE business_id = ? AND status = ?
               ORDER BY created_at DESC, id DESC LIMIT ?""",
            (business_id, status, limit),
        )
    return db.query(
        """SELECT * FROM leads WHERE business_id = ? AND status != 'anonymized'
           ORDER BY created_at DESC, id DESC LIMIT ?""",
        (business_id, limit),
    )


def counts_by_status(db: Database, business_id: int) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for row in db.query(
        "SELECT status, count(*) AS n FROM leads WHERE business_id = ? GROUP BY status",
        (business_id,),
    ):
        if row["status"] in counts:
            counts[row["status"]] = row["n"]
    return counts


def count(db: Database) -> int:
    return db.query_one("SELECT count(*) AS n FROM leads")["n"]


def get(db: Database, business_id: int, lead_id: int) -> dict | None:
    """One lead of this business; another business's lead is None (the caller's 404)."""
    return db.query_one("SELECT * FROM leads WHERE business_id = ? AND id = ?", (business_id, lead_id))
