"""Voicemail: from an audio file to one lead, durably.

A voicemail is committed (audio file, then its row) before anything is queued,
and its lead ("to listen": the caller id and the recording) and the owner's SMS are
committed in that same transaction: the owner hears of it at once, speech model or
not. Its state lives in `voicemails.state`:

    received -> transcribed -> extracted -> lead_created      (or failed, with the reason)

The later steps fill that lead in (the transcript, then the extracted fields) and
never overwrite what a person corrected; `lead_created` means the lead has all the
pipeline will give it. Each step reads the row, does its work, and moves the state
forward in one transaction; running a step twice is harmless. A voicemail received
before leads were made at once (no `lead_id` yet) still gets its lead at the last
step, in the transaction that records its id: one voicemail, one lead, whatever
crashes. The queue only wakes the work; `due()` is what a sweeper re-queues.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import apsw

from app import audit, businesses, clock, leads
from app.config import Config
from app.db import Database, after_commit
from app.leads.fields import LEAD_FIELDS
from app.messaging import outbox
from app.voicemail import audio

FINAL = ("lead_created", "failed")
STUCK_AFTER = timedelta(minutes=10)


def receive(db: Database, config: Config, *, business_id: int, data: bytes, caller_id: str | None,
            source: str, external_id: str | None = None, actor: str) -> tuple[int, bool]:
    """Check and keep an incoming message. Returns (voicemail id, created); a message
    already received (same external id) returns the existing one. Raises
    audio.AudioRejected with nothing stored."""
    if external_id:
        existing = db.query_one("SELECT id FROM voicemails WHERE business_id = ? AND external_id = ?",
                                (business_id, external_id))
        if existing:
            return existing["id"], False
    probe = audio.probe(data, config.voicemail.max_seconds, config.voicemail.max_bytes)
    business = businesses.get(db, business_id)
    if business is None:
        raise LookupError(business_id)
    name = audio.store(config.audio_dir, data, probe.extension)
    now = clock.now_iso()
    try:
        with db.write() as conn:
            if external_id and list(conn.execute(
                    "SELECT 1 FROM voicemails WHERE business_id = ? AND external_id = ?", (business_id, external_id))):
                raise _Duplicate()
            # The lead exists before anyone has read the message: its need stays empty (the
            # dashboard shows it "to listen" until the transcript arrives), its phone is the caller id.
            lead = leads.create(conn, business_id=business_id, channel="phone", actor="system:voicemail",
                                language=business.get("language") or "fr", phone=caller_id, created_at=now)
            conn.execute(
                """INSERT INTO voicemails (business_id, lead_id, caller_id, audio_path, duration_s, created_at,
                                           updated_at, next_attempt_at, source, external_id)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (business_id, lead["id"], caller_id, name, round(probe.seconds, 2), now, now, now, source,
                 external_id),
            )
            voicemail_id = conn.last_insert_rowid()
            audit.record(conn, actor=actor, action="voicemail.receive", entity="voicemail", entity_id=voicemail_id,
                         business_id=business_id, fields=["audio", "caller_id"] if caller_id else ["audio"])
            outbox.queue_new_lead_sms(conn, business=business, lead_id=lead["id"], public_url=config.public_url)
    except _Duplicate:
        (config.audio_dir / name).unlink(missing_ok=True)
        return db.one("SELECT id FROM voicemails WHERE business_id = ? AND external_id = ?",
                      (business_id, external_id))["id"], False
    except BaseException:
        (config.audio_dir / name).unlink(missing_ok=True)  # nothing half-stored
        raise
    return voicemail_id, True


class _Duplicate(Exception):
    pass


def get(db: Database, business_id: int, voicemail_id: int) -> dict | None:
    return db.query_one("SELECT * FROM voicemails WHERE business_id = ? AND id = ?", (business_id, voicemail_id))


def lead_id_of(db: Database, voicemail_id: int) -> int | None:
    row = db.query_one("SELECT lead_id FROM voicemails WHERE id = ?", (voicemail_id,))
    return row["lead_id"] if row else None


def for_lead(db: Database, business_id: int, lead_id: int) -> list[dict]:
    return db.query("SELECT * FROM voicemails WHERE business_id = ? AND lead_id = ? ORDER BY id",
                    (business_id, lead_id))


# ---- erasing what a voicemail holds about the caller -------------------------------------------

# Who called and what they said: the caller id, the transcript, the fields extracted from it.
PERSONAL_COLUMNS = ("caller_id", "transcript", "extraction")
UNFINISHED = ("received", "transcribed", "extracted")


def without_lead_from(db: Database, business_id: int, caller_id: str) -> list[dict]:
    """This business's voicemails from this number that never became a lead (a lead's
    voicemails are found, exported and erased with the lead)."""
    return db.query("SELECT * FROM voicemails WHERE business_id = ? AND caller_id = ? AND lead_id IS NULL"
                    " ORDER BY id", (business_id, caller_id))


def erase_personal(conn: apsw.Connection, audio_dir: Path, voicemail_id: int, *, now: str) -> bool:
    """Erase a voicemail's caller id, transcript, extracted fields and audio, in the
    caller's write transaction. One still under way is failed, so that no lead is ever
    made from what was erased. Returns whether there was audio to delete."""
    before = list(conn.execute("SELECT audio_path FROM voicemails WHERE id = ?", (voicemail_id,)))
    if not before:
        return False
    conn.execute(
        f"""UPDATE voicemails SET {', '.join(f'{c} = NULL' for c in PERSONAL_COLUMNS)}, audio_path = NULL,
                audio_deleted_at = CASE WHEN audio_path IS NOT NULL THEN ? ELSE audio_deleted_at END,
                error = CASE WHEN state IN ({', '.join('?' for _ in UNFINISHED)}) THEN 'erased' ELSE error END,
                state = CASE WHEN state IN ({', '.join('?' for _ in UNFINISHED)}) THEN 'failed' ELSE state END,
                updated_at = ?
            WHERE id = ?""",
        (now, *UNFINISHED, *UNFINISHED, now, voicemail_id))
    return delete_audio_after_commit(conn, audio_dir, before[0]["audio_path"])


def delete_audio_after_commit(conn: apsw.Connection, audio_dir: Path, audio_path: str | None) -> bool:
    """The file goes once the transaction that stopped pointing at it commits: deleted
    before, a rollback would leave a row pointing at nothing. A crash in between leaves
    a file no row names, which the retention sweep deletes (`orphan_audio`)."""
    if not audio_path:
        return False
    path = audio_dir / Path(audio_path).name
    after_commit(conn, f"voicemail.audio.{path.name}", lambda: path.unlink(missing_ok=True))
    return True


def orphan_audio(db: Database, audio_dir: Path, older_than: timedelta) -> list[Path]:
    """Files in the audio directory that no voicemail row names (a crash between writing
    the file and committing its row, a partial `.part`, a deletion a crash interrupted),
    once older than `older_than`: `receive()` writes the file before its row, so a young
    file may be about to be named. Listed before the rows are read, for the same reason."""
    cutoff = time.time() - older_than.total_seconds()
    old = [p for p in audio_dir.iterdir() if p.is_file() and not p.is_symlink() and p.stat().st_mtime < cutoff]
    if not old:
        return []
    named = {Path(r["audio_path"]).name for r in db.query(
        "SELECT audio_path FROM voicemails WHERE audio_path IS NOT NULL")}
    return [p for p in old if p.name not in named]


def recent(db: Database, business_id: int, limit: int = 20) -> list[dict]:
    return db.query("SELECT * FROM voicemails WHERE business_id = ? ORDER BY id DESC LIMIT ?", (business_id, limit))


def due(db: Database, now: datetime | None = None, limit: int = 200, include_received: bool = True) -> list[int]:
    """Unfinished voicemails whose next try is due: what the sweeper wakes up. A step a
    worker holds is leased (`_lease`) until `next_attempt_at`: a worker killed mid-step is
    found once its lease runs out. Without a speech model, those still to transcribe wait."""
    now = now or clock.now()
    states = ("received", "transcribed", "extracted") if include_received else ("transcribed", "extracted")
    return [r["id"] for r in db.query(
        f"""SELECT id FROM voicemails WHERE state IN ({', '.join('?' for _ in states)})
            AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?""",
        (*states, now.isoformat(timespec="seconds"), limit),
    )]


def retry(db: Database, business_id: int, voicemail_id: int, *, actor: str) -> bool:
    """A person asks to try a failed voicemail again, from where it stopped."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT * FROM voicemails WHERE business_id = ? AND id = ?",
                                 (business_id, voicemail_id)))
        if not rows:
            raise LookupError(voicemail_id)
        vm = rows[0]
        if vm["state"] != "failed":
            return False
        state = "extracted" if vm["extraction"] else "transcribed" if vm["transcript"] is not None else "received"
        conn.execute("UPDATE voicemails SET state = ?, attempts = 0, error = NULL, next_attempt_at = ?, "
                     "updated_at = ? WHERE id = ?", (state, clock.now_iso(), clock.now_iso(), voicemail_id))
        audit.record(conn, actor=actor, action="voicemail.retry", entity="voicemail", entity_id=voicemail_id,
                     business_id=business_id, fields=["state"])
    return True


# ---- the pipeline ---------------------------------------------------------------------------------

class Engine(Protocol):
    """What the pipeline needs from the models (see app.voicemail.engine)."""

    def speech_ready(self) -> bool: ...
    def transcribe(self, path: Path, business: dict) -> tuple[str, str]: ...
    def extract(self, transcript: str, caller_id: str | None, business: dict, language: str) -> dict: ...


@dataclass
class StepResult:
    state: str
    waiting_for: str | None = None


def _fail(db: Database, config: Config, vm: dict, error: Exception) -> StepResult:
    attempts = vm["attempts"] + 1
    failed = attempts >= config.voicemail.max_attempts
    delay = timedelta(seconds=min(30 * 2 ** (attempts - 1), 3600))
    with db.write() as conn:
        conn.execute(
            "UPDATE voicemails SET attempts = ?, error = ?, state = CASE WHEN ? THEN 'failed' ELSE state END, "
            "next_attempt_at = ?, updated_at = ? WHERE id = ?",
            (attempts, f"{type(error).__name__}: {error}"[:500], failed,
             (clock.now() + delay).isoformat(timespec="seconds"), clock.now_iso(), vm["id"]),
        )
    return StepResult("failed" if failed else vm["state"])


def _move(conn: apsw.Connection, vm_id: int, from_state: str, to_state: str, **columns) -> bool:
    sets = ", ".join(f"{k} = ?" for k in columns)
    changed = conn.execute(
        f"UPDATE voicemails SET state = ?, {sets + ', ' if sets else ''}attempts = 0, error = NULL, "
        f"updated_at = ?, next_attempt_at = ? WHERE id = ? AND state = ? RETURNING id",
        (to_state, *columns.values(), clock.now_iso(), clock.now_iso(), vm_id, from_state),
    ).fetchall()
    return bool(changed)


UNAVAILABLE_RETRY = timedelta(minutes=1)


def _postpone(db: Database, vm_id: int, delay: timedelta) -> None:
    with db.write() as conn:
        conn.execute("UPDATE voicemails SET next_attempt_at = ? WHERE id = ?",
                     ((clock.now() + delay).isoformat(timespec="seconds"), vm_id))


def _lease(db: Database, vm: dict) -> bool:
    """Take this voicemail's current step for STUCK_AFTER, if it is due and nobody holds it.

    Each step pushes `next_attempt_at` past the lease, so `due()` no longer hands an
    unfinished voicemail to the sweep every minute and a second worker given the same
    voicemail (the sweep's copy, a duplicate task) leaves it alone instead of transcribing
    it again. A worker killed mid-step lets go when the lease runs out: the sweep wakes it."""
    now = clock.now()
    with db.write() as conn:
        return bool(conn.execute(
            "UPDATE voicemails SET next_attempt_at = ? WHERE id = ? AND state = ? "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) RETURNING id",
            ((now + STUCK_AFTER).isoformat(timespec="seconds"), vm["id"], vm["state"],
             now.isoformat(timespec="seconds")),
        ).fetchall())


def release_leases(db: Database) -> int:
    """At start-up of the process that runs the models' work: no step of it is running, so
    what a killed predecessor leased is due now, not when its lease runs out (a failed
    try's back-off is cut short too: a restart is rare, and attempts still count)."""
    now = clock.now_iso()
    with db.write() as conn:
        return len(conn.execute(
            "UPDATE voicemails SET next_attempt_at = ? WHERE state IN ('received', 'transcribed', 'extracted') "
            "AND next_attempt_at > ? RETURNING id", (now, now)).fetchall())


def process(db: Database, config: Config, engine: Engine, voicemail_id: int, public_url: str) -> StepResult:
    """Take one voicemail as far as it can go now. Safe to call any number of
    times, from any number of workers: a step is leased before the models work on it
    (`_lease`), and each step only moves its own state."""
    while True:
        vm = db.query_one("SELECT * FROM voicemails WHERE id = ?", (voicemail_id,))
        if vm is None or vm["state"] in FINAL:
            return StepResult(vm["state"] if vm else "missing")
        if vm["state"] == "received" and not engine.speech_ready():
            return StepResult("received", waiting_for="speech_model")
        if not _lease(db, vm):
            return StepResult(vm["state"], waiting_for="another_worker")
        try:
            business = businesses.get(db, vm["business_id"])
            if vm["state"] == "received":
                if not vm["audio_path"]:
                    raise FileNotFoundError("the audio file was deleted before transcription")
                transcript, language = engine.transcribe(config.audio_dir / Path(vm["audio_path"]).name, business)
                with db.write() as conn:
                    if _move(conn, vm["id"], "received", "transcribed", transcript=transcript, language=language):
                        _fill_lead(conn, vm, {"transcript": transcript, "language": language})
            elif vm["state"] == "transcribed":
                extraction = engine.extract(vm["transcript"] or "", vm["caller_id"], business, vm["language"] or "fr")
                with db.write() as conn:
                    _move(conn, vm["id"], "transcribed", "extracted",
                          extraction=json.dumps(extraction, ensure_ascii=False))
            elif vm["state"] == "extracted" and vm["lead_id"] is None:
                _create_lead(db, vm, business, public_url)  # received before leads were made at once
            elif vm["state"] == "extracted":
                with db.write() as conn:
                    current = next(iter(conn.execute("SELECT state FROM voicemails WHERE id = ?", (vm["id"],))))
                    if current["state"] == "extracted":
                        _fill_lead(conn, vm, _proposed(vm))
                        conn.execute("UPDATE voicemails SET state = 'lead_created', updated_at = ? WHERE id = ?",
                                     (clock.now_iso(), vm["id"]))
        except Exception as e:  # any failure of a step is recorded on the voicemail, then retried
            if getattr(e, "unavailable", False):
                # The models (a service on another box) cannot take work now: down, or busy. Not a
                # failure of this voicemail: no try spent, tried again in a minute.
                _postpone(db, vm["id"], UNAVAILABLE_RETRY)
                return StepResult(vm["state"], waiting_for="models")
            return _fail(db, config, vm, e)


def _create_lead(db: Database, vm: dict, business: dict, public_url: str) -> None:
    """The lead, the voicemail's link to it, its state and the owner's SMS: one transaction."""
    x = json.loads(vm["extraction"])
    with db.write() as conn:
        current = next(iter(conn.execute("SELECT state, lead_id FROM voicemails WHERE id = ?", (vm["id"],))))
        if current["state"] != "extracted":
            return
        phone = x.get("phone") or vm["caller_id"]
        ai_fields = [f.name for f in LEAD_FIELDS if f.extracted and x.get(f.name)]
        lead = leads.create(
            conn, business_id=vm["business_id"], channel="phone", actor="system:voicemail",
            language=x.get("language") or vm["language"] or "fr",
            first_name=x.get("first_name"), last_name=x.get("last_name"), phone=phone, email=x.get("email"),
            street_address=x.get("street_address"), postal_code=x.get("postal_code"),
            need=x.get("need") or (vm["transcript"] or "")[:300], transcript=vm["transcript"],
            geocode_status="pending" if x.get("postal_code") else "none",
            geocode_next_at=clock.now_iso() if x.get("postal_code") else None,
        )
        conn.execute("UPDATE leads SET urgent = ?, ai_fields = ? WHERE id = ?",
                     (int(bool(x.get("urgent"))), json.dumps(ai_fields), lead["id"]))
        conn.execute("UPDATE voicemails SET lead_id = ?, state = 'lead_created', updated_at = ? WHERE id = ?",
                     (lead["id"], clock.now_iso(), vm["id"]))
        outbox.queue_new_lead_sms(conn, business=business, lead_id=lead["id"], public_url=public_url,
                                  urgent=bool(x.get("urgent")))


# The lead's fields the extraction fills (urgent apart: it only ever goes up).
FILLED_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.extracted and f.at_creation)


def _proposed(vm: dict) -> dict:
    """What the extraction offers for the lead: the fields it found (shown "to verify"),
    the need falling back to the start of the transcript, the caller's language."""
    x = json.loads(vm["extraction"])
    fields = {name: x.get(name) for name in FILLED_FIELDS}
    ai = {name for name, value in fields.items() if value}
    if not fields.get("need") and vm["transcript"]:
        fields["need"] = vm["transcript"][:300]
    return {**fields, "transcript": vm["transcript"], "language": x.get("language") or vm["language"],
            "urgent": bool(x.get("urgent")), "ai": ai | ({"urgent"} if x.get("urgent") else set())}


def _fill_lead(conn: apsw.Connection, vm: dict, proposed: dict) -> list[str]:
    """Fill the voicemail's lead in, in the caller's transaction. A field is written only
    if it is empty, still marked as the AI's, or the caller id the lead started with, and
    never if a person corrected it (a correction is an `edit` event naming the field):
    the dashboard is worked while the model is still listening. Returns the fields written."""
    rows = list(conn.execute("SELECT * FROM leads WHERE id = ? AND business_id = ?",
                             (vm["lead_id"], vm["business_id"])))
    if not rows or rows[0]["status"] == "anonymized":
        return []  # anonymized meanwhile: what it erased never comes back
    lead = rows[0]
    corrected = {name for e in conn.execute("SELECT data FROM lead_events WHERE lead_id = ? AND kind = 'edit'",
                                            (lead["id"],))
                 for name in json.loads(e["data"] or "{}").get("fields", [])}
    ai = set(json.loads(lead["ai_fields"] or "[]"))

    def writable(name: str) -> bool:
        return name not in corrected and (
            not lead[name] or name in ai or (name == "phone" and lead["phone"] == vm["caller_id"]))

    taken = [name for name in FILLED_FIELDS if proposed.get(name) and writable(name)]
    changes: dict = {name: proposed[name] for name in taken if proposed[name] != lead[name]}
    # What now comes from the extraction is "to verify", even where it matches the caller id.
    marked = ai | (set(taken) & set(proposed.get("ai", ())))
    if proposed.get("transcript") is not None and lead["transcript"] is None:
        changes["transcript"] = proposed["transcript"]
    if proposed.get("language") in ("fr", "en"):
        changes["language"] = proposed["language"]
    if proposed.get("urgent") and not lead["urgent"]:
        changes["urgent"] = 1
        marked.add("urgent")
    if "postal_code" in changes:
        changes |= {"geocode_status": "pending", "geocode_next_at": clock.now_iso()}
    changes |= {"ai_fields": json.dumps(sorted(marked)), "updated_at": clock.now_iso()}
    conn.execute(f"UPDATE leads SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                 (*changes.values(), lead["id"]))
    written = [name for name in changes if name in leads.PERSONAL_FIELDS]
    if written:
        audit.record(conn, actor="system:voicemail", action="lead.fill", entity="lead", entity_id=lead["id"],
                     business_id=lead["business_id"], fields=written)
    return written
