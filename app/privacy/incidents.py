"""The privacy incident register (Law 25 regulation, s. 7): every incident, reportable
or not, with the regulation's fields, all required; append-only (SQLite triggers);
exportable as CSV. Kept forever (the regulation asks for at least 5 years)."""

from __future__ import annotations

import csv
import io

from app import businesses, clock
from app.db import Database

FIELDS = ("business", "information_involved", "circumstances", "occurred", "learned_on", "persons_concerned",
          "risk_assessment", "serious_injury_risk", "commission_notified_on", "persons_notified_on", "measures")
REQUIRED = ("information_involved", "circumstances", "occurred", "learned_on", "persons_concerned",
            "risk_assessment", "serious_injury_risk", "measures")
COLUMNS = ("id", "recorded_at", "business_id", *FIELDS[1:])


class IncidentError(ValueError):
    pass


def add(db: Database, values: dict) -> int:
    missing = [f for f in REQUIRED if not str(values.get(f) or "").strip()]
    if missing:
        raise IncidentError(f"required: {', '.join(missing)}")
    serious = values["serious_injury_risk"] in (True, 1, "1", "yes")
    if serious and not (values.get("commission_notified_on") and values.get("persons_notified_on")):
        raise IncidentError("a serious incident needs --commission-notified-on and --persons-notified-on "
                            "(the regulation requires notifying both promptly)")
    with db.write() as conn:
        business_id = None
        if values.get("business"):
            business_id = businesses.id_for_slug(conn, values["business"])
            if business_id is None:
                raise IncidentError(f"no business with slug {values['business']!r}")
        conn.execute(
            f"INSERT INTO incidents (recorded_at, business_id, {', '.join(FIELDS[1:])}) "
            f"VALUES (?, ?, {', '.join('?' for _ in FIELDS[1:])})",
            (clock.now_iso(), business_id, *[values.get(f) for f in FIELDS[1:7]], int(serious),
             values.get("commission_notified_on"), values.get("persons_notified_on"), values["measures"]),
        )
        return conn.last_insert_rowid()


def all(db: Database) -> list[dict]:  # noqa: A001  (the register, whole)
    return db.query("SELECT * FROM incidents ORDER BY id")


def csv_export(db: Database) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in all(db):
        writer.writerow([row[c] for c in COLUMNS])
    return out.getvalue()
