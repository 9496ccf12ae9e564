"""The audit log: who viewed, changed, exported, anonymized or deleted personal data.

Append-only twice over: SQLite triggers refuse UPDATE and DELETE, and each entry
carries a SHA-256 hash of its content and of the previous entry's hash, so an edit
made behind SQLite's back (a raw file edit, a restored old page) breaks the chain
and `verify()` names the first entry that no longer matches.

Entries hold the *names* of the fields touched, never their values: the log is
kept forever and must not become a copy of the personal data it watches.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import apsw

GENESIS = "0" * 64


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _digest(row: dict) -> str:
    payload = json.dumps(
        [
            row["id"],
            row["at"],
            row["actor"],
            row["business_id"],
            row["action"],
            row["entity"],
            row["entity_id"],
            row["fields"],
            row["prev_hash"],
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record(
    conn: apsw.Connection,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: str | int | None = None,
    business_id: int | None = None,
    fields: Iterable[str] = (),
    at: str | None = None,
) -> int:
    """Append one entry, inside the caller's write transaction (`db.write()`), so the
    entry and the change it describes are committed together or not at all."""
    if not conn.in_transaction:
        raise RuntimeError("audit.record must run inside a write transaction")
    rows = list(conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"))
    last = rows[0] if rows else None
    row: dict[str, Any] = {
        "id": (last["id"] + 1) if last else 1,
        "at": at or _now(),
        "actor": actor,
        "business_id": business_id,
        "action": action,
        "entity": entity,
        "entity_id": None if entity_id is None else str(entity_id),
        "fields": json.dumps(sorted(set(fields))),
        "prev_hash": last["hash"] if last else GENESIS,
    }
    row["hash"] = _digest(row)
    conn.execute(
        """INSERT INTO audit_log (id, at, actor, business_id, action, entity, entity_id,
                                  fields, prev_hash, hash)
           VALUES (:id, :at, :actor, :business_id, :action, :entity, :entity_id,
                   :fields, :prev_hash, :hash)""",
        row,
    )
    return row["id"]


@dataclass
class Verification:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str = ""


def verify(conn: apsw.Connection) -> Verification:
    """Walk the whole chain in order; stop at the first entry that does not match."""
    prev = GENESIS
    expected_id = 1
    checked = 0
    for row in conn.execute("SELECT * FROM audit_log ORDER BY id"):
        if row["id"] != expected_id:
            return Verification(False, checked, expected_id, "entry missing")
        if row["prev_hash"] != prev:
            return Verification(False, checked, row["id"], "does not chain to the previous entry")
        if _digest(row) != row["hash"]:
            return Verification(False, checked, row["id"], "content does not match its hash")
        prev = row["hash"]
        expected_id += 1
        checked += 1
    return Verification(True, checked)



def check_chain(conn: apsw.Connection) -> bool:
    """The operator's daily check, also run by the service itself: a broken chain is
    logged as an error (and `run.py audit verify` names the entry)."""
    result = verify(conn)
    if not result.ok:
        logging.getLogger("capteo.audit").error(
            "audit log chain BROKEN at entry %s: %s", result.first_broken_id, result.reason)
    return result.ok


def entries(conn: apsw.Connection, business_id: int, *, entity_id: str | None = None, actor: str | None = None,
            page: int = 1, per_page: int = 50) -> list[dict]:
    """A business's entries, newest first, optionally for one lead or one actor
    (one row more than a page, so the caller knows whether another page exists)."""
    where: list[str] = ["business_id = ?"]
    params: list[int | str] = [business_id]
    if entity_id:
        where.append("entity = 'lead' AND entity_id = ?")
        params.append(entity_id)
    if actor:
        where.append("actor = ?")
        params.append(actor)
    return list(conn.execute(
        f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ? OFFSET ?",
        (*params, per_page + 1, (page - 1) * per_page)))
