"""The audit log: who viewed, changed, exported, anonymized or deleted personal data.

Append-only three times over:
- SQLite triggers refuse UPDATE and DELETE;
- each entry carries an HMAC-SHA256, under the audit key, of its content and of the
  previous entry's, so an edit made behind SQLite's back (a raw file edit, a restored
  old page) breaks the chain, and without the key nobody can forge a new one;
- the chain's head (last entry and its MAC) is kept outside the table, in
  `<data dir>/audit-head.json` (itself signed with the key), and written to the
  service's journal by the daily check, so deleting the last entries — the one edit a
  chain alone cannot see — shows as entries missing after the recorded head.

The key is `CAPTEO_SECRET_AUDIT_FILE` (keep it outside the data directory: whoever
holds both could rewrite the log) or else `data/secrets/audit`. Entries written
before keys existed carry a plain SHA-256 (no "k1:" prefix) and stay verifiable;
once a keyed entry exists, an unkeyed one after it is a forgery.

Entries hold the *names* of the fields touched, never their values: the log is
kept forever and must not become a copy of the personal data it watches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import apsw

from app.config import find_secret
from app.db import after_commit
from app.i18n import N_

GENESIS = "0" * 64
KEYED = "k1:"
log = logging.getLogger("capteo.audit")


HEAD_FILE = "audit-head.json"
_keys: dict[str, bytes] = {}
_directories: dict[str, str] = {}  # database file -> its data directory


def _data_dir(conn: apsw.Connection) -> Path:
    return Path(conn.filename).parent


def key_for(conn: apsw.Connection) -> bytes | None:
    """The audit key of the data directory `conn` belongs to (None before the service
    first made one: such entries are plain SHA-256, and verify as such)."""
    directory = _directories.get(conn.filename)  # no path arithmetic per entry written
    if directory is None:
        directory = _directories[conn.filename] = str(_data_dir(conn))
    if directory not in _keys:
        found = find_secret(Path(directory), "audit")
        if found is None:
            return None
        _keys[directory] = found.encode()
    return _keys[directory]


def head_path(conn: apsw.Connection) -> Path:
    return _data_dir(conn) / HEAD_FILE


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _digest(row: dict, key: bytes | None) -> str:
    """The entry's chain value: HMAC-SHA256 under the key ("k1:…"), or a plain SHA-256
    for entries written before keys (and by a process given none)."""
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
    if key is not None:
        return KEYED + hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()
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
    key = key_for(conn)
    row["hash"] = _digest(row, key)
    conn.execute(
        """INSERT INTO audit_log (id, at, actor, business_id, action, entity, entity_id,
                                  fields, prev_hash, hash)
           VALUES (:id, :at, :actor, :business_id, :action, :entity, :entity_id,
                   :fields, :prev_hash, :hash)""",
        row,
    )
    if key is not None:
        # After the commit only: a head naming an entry that was rolled back would read as a lost tail.
        after_commit(conn, "audit.head", lambda: save_head(conn))
    return row["id"]


@dataclass
class Verification:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str = ""


def verify(conn: apsw.Connection) -> Verification:
    """Walk the whole chain in order; stop at the first entry that does not match.
    Then check that the chain reaches the head recorded outside the table."""
    key = key_for(conn)
    prev = GENESIS
    expected_id = 1
    checked = 0
    keyed_seen = False
    hashes: dict[int, str] = {}
    for row in conn.execute("SELECT * FROM audit_log ORDER BY id"):
        if row["id"] != expected_id:
            return Verification(False, checked, expected_id, "entry missing")
        if row["prev_hash"] != prev:
            return Verification(False, checked, row["id"], "does not chain to the previous entry")
        keyed = row["hash"].startswith(KEYED)
        if keyed and key is None:
            return Verification(False, checked, row["id"], "signed entry, and no audit key to check it")
        if keyed_seen and not keyed:
            return Verification(False, checked, row["id"], "unsigned entry after signed ones")
        if _digest(row, key if keyed else None) != row["hash"]:
            return Verification(False, checked, row["id"], "content does not match its hash")
        keyed_seen = keyed_seen or keyed
        prev = row["hash"]
        hashes[row["id"]] = row["hash"]
        expected_id += 1
        checked += 1
    if key is not None and checked:
        head = read_head(head_path(conn), key)
        if head is None:
            return Verification(False, checked, None, f"the recorded head ({HEAD_FILE}) is missing or forged")
        if head is not None and head["id"] > checked:
            return Verification(False, checked, checked + 1,
                                f"entries {checked + 1} to {head['id']} are missing (the head recorded entry "
                                f"{head['id']})")
        if head is not None and head["id"] and hashes.get(head["id"]) != head["hash"]:
            return Verification(False, checked, head["id"], "does not match the recorded head")
    return Verification(True, checked)


def _head_mac(key: bytes, entry_id: int, entry_hash: str) -> str:
    return hmac.new(key, f"head:{entry_id}:{entry_hash}".encode(), hashlib.sha256).hexdigest()


def read_head(path: Path, key: bytes) -> dict | None:
    """The recorded head, or None when it is missing or its MAC is wrong."""
    try:
        head = json.loads(path.read_text())
        if hmac.compare_digest(head["mac"], _head_mac(key, int(head["id"]), str(head["hash"]))):
            return {"id": int(head["id"]), "hash": str(head["hash"])}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def save_head(conn: apsw.Connection) -> dict | None:
    """Record the chain's last entry outside the table (atomically). Never moves the
    head backwards: a table that lost its tail keeps pointing at what it lost."""
    key, path = key_for(conn), head_path(conn)
    if key is None:
        return None
    rows = list(conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"))
    if not rows:
        return None
    last = {"id": rows[0]["id"], "hash": rows[0]["hash"]}
    current = _current_head(path, key)
    if current is not None and current["id"] >= last["id"]:
        return current
    # Its own temporary file per process and thread: two processes starting at once (the server
    # and `run.py worker`) each record the head, and one's rename took the other's file away.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps({**last, "mac": _head_mac(key, last["id"], last["hash"])}))
    os.replace(tmp, path)
    _remember_head(path, key, last)
    return last


# The head this process last wrote, by file, with the file's identity then (inode, mtime,
# size): while the file is still that one, reading it back and checking its MAC again (at
# every write transaction that adds an entry) would only find what we wrote. Any other
# writer (`run.py worker`, a restore, an edit) replaces the file, and it is read again.
_written_heads: dict[str, tuple[tuple[int, int, int], bytes, dict]] = {}


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _current_head(path: Path, key: bytes) -> dict | None:
    known = _written_heads.get(str(path))
    if known is not None and known[1] == key and _file_identity(path) == known[0]:
        return dict(known[2])
    return read_head(path, key)


def _remember_head(path: Path, key: bytes, head: dict) -> None:
    identity = _file_identity(path)
    if identity is None:
        _written_heads.pop(str(path), None)
    else:
        _written_heads[str(path)] = (identity, key, dict(head))


def start(conn: apsw.Connection) -> None:
    """At start-up, once the audit key exists: a chain with no recorded head yet (its
    entries all from before keys) gets one now, so that from here on a lost tail shows."""
    key = key_for(conn)
    if key is None or read_head(head_path(conn), key) is not None:
        return
    if not list(conn.execute("SELECT 1 FROM audit_log WHERE hash LIKE 'k1:%' LIMIT 1")):
        save_head(conn)


def check_chain(conn: apsw.Connection) -> bool:
    """The operator's daily check, also run by the service itself: a broken chain is
    logged as an error (and `run.py audit verify` names the entry); an intact one
    writes its head to the journal, the operator's copy outside the data directory."""
    result = verify(conn)
    if not result.ok:
        log.error("audit log chain BROKEN at entry %s: %s", result.first_broken_id, result.reason)
        return False
    head = save_head(conn)
    if head is not None:
        log.info("audit log intact: %s entries, head %s %s", result.checked, head["id"], head["hash"])
    return True


def entries(conn: apsw.Connection, business_id: int, *, entity_id: str | None = None, actor: str | None = None,
            page: int = 1, per_page: int = 50) -> list[dict]:
    """A business's entries, newest first, optionally for one lead or one actor ("user:3",
    or a member's email), one row more than a page, so the caller knows whether another
    page exists. Each carries the actor's name and email when the actor is a member of
    this business (nobody else's), and the lead's reference when the entry is about one
    of its leads."""
    where: list[str] = ["a.business_id = ?"]
    params: list[int | str] = [business_id]
    if entity_id:
        where.append("a.entity = 'lead' AND a.entity_id = ?")
        params.append(entity_id)
    if actor:
        where.append("(a.actor = ? OR u.email = ?)")
        params.extend([actor, actor])
    return list(conn.execute(
        f"""SELECT a.*, u.name AS actor_name, u.email AS actor_email, l.reference AS lead_reference
            FROM audit_log a
            LEFT JOIN memberships m ON m.business_id = a.business_id AND a.actor = 'user:' || m.user_id
            LEFT JOIN users u ON u.id = m.user_id
            LEFT JOIN leads l ON a.entity = 'lead' AND l.id = CAST(a.entity_id AS INTEGER)
                             AND l.business_id = a.business_id
            WHERE {' AND '.join(where)} ORDER BY a.id DESC LIMIT ? OFFSET ?""",
        (*params, per_page + 1, (page - 1) * per_page)))


# ---- reading the log: what a person sees instead of the codes ---------------------------------
# Every action recorded anywhere has a label here (tests/test_readable.py checks the code for
# one without): the owner reads «Demande consultée», not "lead.view".
ACTION_LABELS: dict[str, str] = {
    "policy.publish": N_("New privacy policy version published"),
    "business.create": N_("Business created"),
    "business.settings": N_("Business settings changed"),
    "business.checklist": N_("First-run checklist updated"),
    "business.pbx_token": N_("Phone system key changed"),
    "business.export": N_("Whole business exported"),
    "business.close": N_("Account closed (reversible for 7 days)"),
    "business.close.final": N_("Account closed for good: personal information erased"),
    "business.reopen": N_("Account reopened"),
    "billing.cancel": N_("Subscription canceled at closing"),
    "billing.cancel_failed": N_("Subscription could not be canceled at closing"),
    "lead.anonymize.closing": N_("Lead anonymized (account closed)"),
    "voicemail.erase.closing": N_("Voice message erased (account closed)"),
    "membership.create": N_("Team member added"),
    "membership.remove": N_("Team member removed"),
    "invitation.create": N_("Invitation sent"),
    "invitation.cancel": N_("Invitation cancelled"),
    "invitation.accept": N_("Invitation accepted"),
    "invitation.decline": N_("Invitation declined"),
    "user.delete": N_("Account deleted"),
    "user.password": N_("Password changed"),
    "user.phone": N_("Mobile number changed"),
    "user.password_reset_link": N_("Password reset link sent"),
    "user.password_reset": N_("Password reset"),
    "user.password_reset_by_owner": N_("Password reset by an owner"),
    "user.password_reset_by_operator": N_("Password reset by the operator"),
    "session.start": N_("Sign-in"),
    "session.switch": N_("Switched to this business"),
    "session.end": N_("Sign-out"),
    "lead.create": N_("Lead received"),
    "lead.view": N_("Lead viewed"),
    "client.view": N_("Client's history viewed"),
    "client.merge": N_("Clients merged (same person)"),
    "client.split": N_("Request moved to a new client (another person)"),
    "lead.list.view": N_("Lead list viewed"),
    "lead.map.view": N_("Lead map viewed"),
    "lead.status": N_("Lead status changed"),
    "lead.assign": N_("Lead assigned"),
    "lead.note": N_("Note added"),
    "lead.rectify": N_("Lead details corrected"),
    "lead.ai_confirm": N_("Automatic extraction confirmed"),
    "lead.fill": N_("Lead completed from the voice message"),
    "lead.status_page.view": N_("Status page viewed by the client"),
    "lead.cancel_by_client": N_("Lead cancelled by the client"),
    "lead.review_requested": N_("Review of an automated decision requested"),
    "lead.anonymize.retention": N_("Lead anonymized (retention period over)"),
    "lead.anonymize.erasure": N_("Lead anonymized (erasure request)"),
    "lead.anonymize.withdrawal": N_("Lead anonymized (consent withdrawn)"),
    "voicemail.receive": N_("Voice message received"),
    "voicemail.listen": N_("Voice message listened to"),
    "voicemail.retry": N_("Voice message processing retried"),
    "voicemail.audio.delete": N_("Voice message recording deleted"),
    "voicemail.erase.retention": N_("Voice message erased (retention period over)"),
    "voicemail.erase.erasure": N_("Voice message erased (erasure request)"),
    "voicemail.erase.withdrawal": N_("Voice message erased (consent withdrawn)"),
    "chat.view": N_("Chat conversation viewed"),
    "chat.take_over": N_("Chat conversation taken over by a team member"),
    "chat.reply": N_("Team reply sent in a chat conversation"),
    "chat.erase.retention": N_("Chat conversation erased (retention period over)"),
    "chat.erase.erasure": N_("Chat conversation erased (erasure request)"),
    "chat.erase.withdrawal": N_("Chat conversation erased (consent withdrawn)"),
    "chat.erase.closing": N_("Chat conversation erased (account closed)"),
    "webhook.create": N_("Webhook added"),
    "webhook.edit": N_("Webhook changed"),
    "webhook.rotate": N_("Webhook secret replaced"),
    "webhook.delete": N_("Webhook removed"),
    "webhook.test": N_("Webhook test event sent"),
    "webhook.resend": N_("Webhook event sent again"),
    "webhook.sent": N_("Request details sent to the business's webhook"),
    "webhook.disable": N_("Webhook turned off after 24 hours of failures"),
    "appointment.book": N_("Appointment booked"),
    "appointment.move": N_("Appointment moved"),
    "appointment.cancel": N_("Appointment cancelled"),
    "appointment.feed": N_("Calendar feed downloaded"),
    "person.search": N_("Person searched (privacy tools)"),
    "person.export": N_("Personal information exported"),
    "privacy_request.create": N_("Privacy request recorded"),
    "privacy_request.answer": N_("Privacy request answered"),
    "custom_field.add": N_("Form question added"),
    "custom_field.edit": N_("Form question changed"),
    "custom_field.move": N_("Form question moved"),
    "custom_field.remove": N_("Form question removed"),
    "billing.state": N_("Subscription state changed (billing)"),
}
# Actors that are not a person of the team (those are "user:<id>", shown by name).
ACTOR_LABELS: dict[str, str] = {
    "system:retention": N_("Automatic deletion (retention period)"),
    "system:voicemail": N_("Voice message processing"),
    "system:voipms": N_("Phone system (VoIP.ms)"),
    "system:demo": N_("Demo data"),
    "public:form": N_("The client, by the web form"),
    "public:chat": N_("The client, by the chat"),
    "system:chat": N_("Chat (automatic)"),
    "public:privacy-request": N_("The person, by the privacy request page"),
    "public:status-page": N_("The client, by the status page of their request"),
    "public:password-reset": N_("The password reset page"),
    "calendar-feed": N_("Calendar feed"),
    "pbx": N_("Phone system"),
    "operator": N_("Capteo operator"),
}
SYSTEM_ACTOR = N_("Capteo (automatic)")
PUBLIC_ACTOR = N_("The public")
# A "user:<id>" who is not (or no longer) a member of the business: their name is not theirs to see.
FORMER_MEMBER = N_("A former member")
ENTITY_LABELS: dict[str, str] = {
    "lead": N_("Lead"),
    "voicemail": N_("Voice message"),
    "appointment": N_("Appointment"),
    "business": N_("Business"),
    "user": N_("Team member"),
    "invitation": N_("Invitation"),
    "privacy_request": N_("Privacy request"),
    "custom_field": N_("Form question"),
    "chat": N_("Chat conversation"),
}
# Field names entries carry that are not a lead's labelled fields (app/leads/fields.py has those).
FIELD_LABELS: dict[str, str] = {
    "audio": N_("Recording"),
    "pbx_token": N_("Phone system key"),
    "caller_id": N_("Caller's number"),
    "transcript": N_("Transcript"),
    "extraction": N_("Automatic extraction"),
    "notes": N_("Notes"),
    "callback_time": N_("When to call back"),
    "custom_fields": N_("Form questions"),
    "role": N_("Role"),
    "password": N_("Password"),
    "label_fr": N_("Question in French"),
    "label_en": N_("Question in English"),
    "starts_at": N_("Start"),
    "ends_at": N_("End"),
    "status": N_("Status"),
    "state": N_("Processing state"),
    "review_requested_at": N_("Review requested"),
    "slug": N_("Form address"),
    "name": N_("Business name"),
    "person": N_("Person"),
    "contact": N_("Contact information"),
    "details": N_("Details"),
    "answer": N_("Answer"),
    "timezone": N_("Time zone"),
    "language": N_("Language"),
    "hours": N_("Opening hours"),
    "notify_phones": N_("Phones to notify"),
    "embed_domains": N_("Websites allowed to embed the form"),
    "greeting_fr": N_("Greeting in French"),
    "greeting_en": N_("Greeting in English"),
    "trade": N_("Trade"),
    "voipms_mailbox": N_("VoIP.ms mailbox number"),
    "messages": N_("Messages"),
    "session_id": N_("Session identifier"),
    "consent": N_("Consent"),
}


def action_label(action: str) -> str:
    """The msgid naming an action (the code itself for one recorded before it had a label)."""
    return ACTION_LABELS.get(action, action)


def actor_label(actor: str) -> str | None:
    """The msgid naming an actor that is not a person; None for "user:<id>"."""
    if actor.startswith("user:"):
        return None
    if actor in ACTOR_LABELS:
        return ACTOR_LABELS[actor]
    return PUBLIC_ACTOR if actor.startswith("public:") else SYSTEM_ACTOR
