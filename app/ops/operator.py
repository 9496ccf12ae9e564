"""The operator's view of the businesses: plan state, trial end, closing, last activity.
No person's data: neither the owners' nor their clients' emails or phones."""

from __future__ import annotations

from app import businesses, leads
from app.db import Database

COLUMNS = ("id", "slug", "name", "billing_state", "trial_ends_at", "closed_at", "created_at",
           "last_lead_at", "last_session_at", "last_activity_at")


def overview(db: Database) -> list[dict]:
    latest_leads = leads.latest_by_business(db)
    rows = []
    for b in businesses.overview(db):
        row = {**b, "last_lead_at": latest_leads.get(b["id"])}
        seen = [t for t in (row["last_lead_at"], row["last_session_at"]) if t]
        row["last_activity_at"] = max(seen) if seen else None
        rows.append({k: row.get(k) for k in COLUMNS})
    return rows
