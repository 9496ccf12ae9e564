"""Law 25 retention: anonymize archived leads, delete old voicemail audio, leave no trace.

Written as catch-up queries ("everything due as of now"), never as one-shot
scheduled tasks: a server that was down for days does all of it on its next
sweep, and a sweep run twice does nothing the second time.

Anonymization is irreversible and leaves no link back: the personal fields are
erased (not hashed, not moved elsewhere), the lead's session id is replaced by a
fresh random one, the search index forgets the words (FTS5 secure-delete, set by `migrations.apply`), note
bodies and the client's phone on its SMS are erased, the transcript goes with the
lead, and `secure_delete` plus a WAL checkpoint make sure the old bytes are
overwritten in the database file and gone from its WAL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import apsw

from app import audit, clock, i18n
from app.config import Config
from app.db import Database
from app.i18n import N_
from app.leads.fields import LEAD_FIELDS

ANONYMIZED_NEED = N_("Anonymized (Law 25)")
ERASED_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.erased)


@dataclass
class SweepReport:
    anonymized: list[int] = field(default_factory=list)
    audio_deleted: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.anonymized or self.audio_deleted)


def _delete_audio_file(conn: apsw.Connection, config: Config, voicemail: dict, *, actor: str, now: str) -> None:
    if voicemail["audio_path"]:
        path = (config.audio_dir / Path(voicemail["audio_path"]).name)
        path.unlink(missing_ok=True)
    conn.execute("UPDATE voicemails SET audio_path = NULL, audio_deleted_at = ? WHERE id = ?", (now, voicemail["id"]))
    audit.record(conn, actor=actor, action="voicemail.audio.delete", entity="voicemail", entity_id=voicemail["id"],
                 business_id=voicemail["business_id"], fields=["audio"])


def anonymize(conn: apsw.Connection, config: Config, lead: dict, *, actor: str, reason: str) -> None:
    """Erase a lead's personal information, in the caller's write transaction."""
    now = clock.now_iso()
    need = i18n.gettext_in(lead["language"], ANONYMIZED_NEED)
    conn.execute(
        f"""UPDATE leads SET {', '.join(f'{f} = NULL' for f in ERASED_FIELDS)},
                custom_fields = '{{}}', need = ?, session_id = ?, status = 'anonymized',
                anonymized_at = ?, updated_at = ?, geocode_status = 'none', review_requested_at = NULL
            WHERE id = ? AND business_id = ?""",
        (need, secrets.token_hex(16), now, now, lead["id"], lead["business_id"]),
    )
    conn.execute("UPDATE lead_events SET body = NULL WHERE lead_id = ? AND body IS NOT NULL", (lead["id"],))
    # The client's own number on SMS sent to them; texts to the team hold only a link.
    conn.execute("UPDATE outbox SET to_phone = '', body = '' WHERE lead_id = ? AND kind != 'owner_new_lead'",
                 (lead["id"],))
    for vm in list(conn.execute("SELECT * FROM voicemails WHERE lead_id = ?", (lead["id"],))):
        if vm["audio_path"]:
            _delete_audio_file(conn, config, vm, actor=actor, now=now)
        conn.execute("UPDATE voicemails SET transcript = NULL, caller_id = NULL WHERE id = ?", (vm["id"],))
    audit.record(conn, actor=actor, action=f"lead.anonymize.{reason}", entity="lead", entity_id=lead["id"],
                 business_id=lead["business_id"],
                 fields=[*ERASED_FIELDS, "custom_fields", "need", "session_id", "voicemail.transcript"])


def checkpoint(db: Database) -> None:
    """Move everything out of the WAL and truncate it: erased values must not
    survive there either."""
    db.reader().execute("PRAGMA wal_checkpoint(TRUNCATE)")


def sweep(db: Database, config: Config, as_of: datetime | None = None) -> SweepReport:
    """Everything due as of `as_of` (now by default)."""
    as_of = as_of or clock.now()
    report = SweepReport()
    lead_cutoff = (as_of - timedelta(days=config.retention.anonymize_archived_after_days))
    audio_cutoff = (as_of - timedelta(days=config.retention.delete_audio_after_days))
    with db.write() as conn:
        due = list(conn.execute(
            "SELECT * FROM leads WHERE status = 'archived' AND archived_at <= ? ORDER BY id",
            (lead_cutoff.isoformat(timespec="seconds"),)))
        for lead in due:
            anonymize(conn, config, lead, actor="system:retention", reason="retention")
            report.anonymized.append(lead["id"])
        now = clock.now_iso()
        for vm in list(conn.execute(
                "SELECT * FROM voicemails WHERE audio_path IS NOT NULL AND created_at <= ? ORDER BY id",
                (audio_cutoff.isoformat(timespec="seconds"),))):
            _delete_audio_file(conn, config, vm, actor="system:retention", now=now)
            report.audio_deleted.append(vm["id"])
    if report.changed:
        checkpoint(db)
    return report


def erase_person(db: Database, config: Config, business_id: int, lead_ids: list[int], *, actor: str,
                 reason: str = "erasure") -> list[int]:
    """Erase now (a person's request, a consent withdrawal): their leads of this
    business anonymized and audio deleted, then the WAL checkpointed."""
    done = []
    with db.write() as conn:
        for lead_id in lead_ids:
            rows = list(conn.execute("SELECT * FROM leads WHERE id = ? AND business_id = ?", (lead_id, business_id)))
            if rows and rows[0]["status"] != "anonymized":
                anonymize(conn, config, rows[0], actor=actor, reason=reason)
                done.append(lead_id)
    checkpoint(db)
    return done
