"""Law 25 retention: anonymize archived leads, delete old voicemail audio, leave no trace.

Written as catch-up queries ("everything due as of now"), never as one-shot
scheduled tasks: a server that was down for days does all of it on its next
sweep, and a sweep run twice does nothing the second time.

Anonymization is irreversible and leaves no link back: the personal fields are
erased (not hashed, not moved elsewhere), the lead's session id is replaced by a
fresh random one, the search index forgets the words (FTS5 secure-delete, set by `migrations.apply`), note
bodies and the client's phone on its SMS are erased, the transcript goes with the
lead, the chat conversation it came from is erased too (its messages deleted, what it
gathered cleared, its session identifier replaced: `app.chat.erase`), and
`secure_delete` plus a WAL checkpoint make sure the old bytes are overwritten in the
database file and gone from its WAL.

Chat conversations that never became a lead are erased after [chat] keep_days by the
chat's own sweep; this sweep catches up on any it left (a server that was down, a
sweep that never ran) and checkpoints the WAL after them as after everything else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import apsw

from app import audit, chat, clock, i18n, voicemail
from app.config import Config
from app.db import Database
from app.i18n import N_
from app.leads.fields import LEAD_FIELDS
from app.ops import replication

ANONYMIZED_NEED = N_("Anonymized (Law 25)")
ERASED_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.erased)


# A file in the audio directory that no voicemail names is deleted once this old: younger,
# it may be one `voicemail.receive()` has written and is about to name in its row.
ORPHAN_AUDIO_GRACE = timedelta(hours=1)


@dataclass
class SweepReport:
    anonymized: list[int] = field(default_factory=list)
    audio_deleted: list[int] = field(default_factory=list)
    voicemails_erased: list[int] = field(default_factory=list)
    orphan_files_deleted: list[str] = field(default_factory=list)
    chats_erased: list[int] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.anonymized or self.audio_deleted or self.voicemails_erased or self.orphan_files_deleted
                    or self.chats_erased)


def _delete_audio(conn: apsw.Connection, config: Config, vm: dict, *, actor: str, now: str) -> None:
    """A lead's voicemail: its audio goes, its transcript stays with the lead."""
    conn.execute("UPDATE voicemails SET audio_path = NULL, audio_deleted_at = ? WHERE id = ?", (now, vm["id"]))
    voicemail.delete_audio_after_commit(conn, config.audio_dir, vm["audio_path"])
    audit.record(conn, actor=actor, action="voicemail.audio.delete", entity="voicemail", entity_id=vm["id"],
                 business_id=vm["business_id"], fields=["audio"])


def erase_voicemail(conn: apsw.Connection, config: Config, vm: dict, *, actor: str, reason: str, now: str) -> None:
    """A voicemail that never became a lead: nothing else holds what the caller left, so
    the caller id, transcript, extracted fields and audio all go, in the caller's transaction."""
    had_audio = voicemail.erase_personal(conn, config.audio_dir, vm["id"], now=now)
    audit.record(conn, actor=actor, action=f"voicemail.erase.{reason}", entity="voicemail", entity_id=vm["id"],
                 business_id=vm["business_id"], fields=[*voicemail.PERSONAL_COLUMNS, *(["audio"] if had_audio else [])])


def anonymize(conn: apsw.Connection, config: Config, lead: dict, *, actor: str, reason: str) -> None:
    """Erase a lead's personal information, in the caller's write transaction (its audio
    files are deleted once that transaction commits)."""
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
    for vm in list(conn.execute("SELECT id, business_id, audio_path FROM voicemails WHERE lead_id = ?",
                                (lead["id"],))):
        if voicemail.erase_personal(conn, config.audio_dir, vm["id"], now=now):
            audit.record(conn, actor=actor, action="voicemail.audio.delete", entity="voicemail",
                         entity_id=vm["id"], business_id=vm["business_id"], fields=["audio"])
    # The chat the lead came from holds the same words, and its session identifier would link back.
    for conv in list(conn.execute("SELECT id FROM chat_conversations WHERE lead_id = ? AND business_id = ?"
                                  " AND state != 'erased'", (lead["id"], lead["business_id"]))):
        chat.erase(conn, conv["id"], actor=actor, business_id=lead["business_id"], reason=reason)
    audit.record(conn, actor=actor, action=f"lead.anonymize.{reason}", entity="lead", entity_id=lead["id"],
                 business_id=lead["business_id"],
                 fields=[*ERASED_FIELDS, "custom_fields", "need", "session_id", "voicemail.transcript",
                         "voicemail.caller_id", "voicemail.extraction"])


def checkpoint(db: Database, config: Config) -> None:
    """Move everything out of the WAL and truncate it: erased values must not
    survive there either (with Litestream paused meanwhile, when it replicates capteo.db);
    nor in this process's formatting caches."""
    replication.truncate_wal(config, db)
    i18n.forget_formatted()


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
        # A lead's voicemail loses its audio; one that never became a lead loses everything
        # the caller left (also catching up on those whose audio an older sweep deleted alone).
        for vm in list(conn.execute(
                """SELECT * FROM voicemails WHERE created_at <= ? AND (audio_path IS NOT NULL OR (lead_id IS NULL
                   AND (caller_id IS NOT NULL OR transcript IS NOT NULL OR extraction IS NOT NULL))) ORDER BY id""",
                (audio_cutoff.isoformat(timespec="seconds"),))):
            if vm["lead_id"] is None:
                erase_voicemail(conn, config, vm, actor="system:retention", reason="retention", now=now)
                report.voicemails_erased.append(vm["id"])
            else:
                _delete_audio(conn, config, vm, actor="system:retention", now=now)
            if vm["audio_path"]:
                report.audio_deleted.append(vm["id"])
        chat_cutoff = (as_of - timedelta(days=config.chat.keep_days)).isoformat(timespec="seconds")
        # An open one that has a phone number is the chat sweep's to make a lead of first.
        for conv in list(conn.execute(
                "SELECT id, business_id FROM chat_conversations WHERE lead_id IS NULL AND state != 'erased'"
                " AND visitor_at < ? AND NOT (state = 'open'"
                " AND CASE WHEN json_valid(flow) THEN json_extract(flow, '$.values.phone') END IS NOT NULL)"
                " ORDER BY id", (chat_cutoff,))):
            chat.erase(conn, conv["id"], actor="system:retention", business_id=conv["business_id"],
                       reason="retention")
            report.chats_erased.append(conv["id"])
    for path in voicemail.orphan_audio(db, config.audio_dir, ORPHAN_AUDIO_GRACE):
        path.unlink(missing_ok=True)
        report.orphan_files_deleted.append(path.name)
    if report.changed:
        checkpoint(db, config)
    return report


def erase_person(db: Database, config: Config, business_id: int, lead_ids: list[int], *, actor: str,
                 reason: str = "erasure", voicemail_ids: list[int] | None = None,
                 conversation_ids: list[int] | None = None) -> list[int]:
    """Erase now (a person's request, a consent withdrawal): their leads of this business
    anonymized (with the chats they came from), their voicemails and chat conversations
    that never became a lead erased, the audio deleted once that is committed, then the
    WAL checkpointed. Returns the leads anonymized."""
    done = []
    now = clock.now_iso()
    with db.write() as conn:
        for lead_id in lead_ids:
            rows = list(conn.execute("SELECT * FROM leads WHERE id = ? AND business_id = ?", (lead_id, business_id)))
            if rows and rows[0]["status"] != "anonymized":
                anonymize(conn, config, rows[0], actor=actor, reason=reason)
                done.append(lead_id)
        for vm_id in voicemail_ids or []:
            for vm in list(conn.execute("SELECT * FROM voicemails WHERE id = ? AND business_id = ?",
                                        (vm_id, business_id))):
                erase_voicemail(conn, config, vm, actor=actor, reason=reason, now=now)
        for conversation_id in conversation_ids or []:
            for conv in list(conn.execute("SELECT id FROM chat_conversations WHERE id = ? AND business_id = ?"
                                          " AND state != 'erased'", (conversation_id, business_id))):
                chat.erase(conn, conv["id"], actor=actor, business_id=business_id, reason=reason)
    checkpoint(db, config)
    return done
