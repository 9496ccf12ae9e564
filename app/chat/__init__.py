"""Chat: the third door. A conversation on the business's site that becomes a lead.

A conversation exists only once the visitor has accepted the consent notice (its exact
text and version are stored with it, as for the form). The page holds a random session
token; `capteo.db` keeps only its SHA-256 (`session_hash`, the "session identifier" of
the privacy policy), so a copy of the database cannot speak in a visitor's name, and
anonymization replaces it.

Every visitor message is committed before any reply is computed. Replies are written by
`respond()`, whoever calls it (the request thread for the guided engine, the models'
worker for the assistant, the page's poll or the sweep when the model is late): each
reply answers the oldest unanswered message and is written only if nobody answered it
meanwhile (`answered_through`), so a reply is never lost nor written twice.

A confirmed conversation becomes one lead in the same transaction as the confirmation
(channel `chat`, the thread as its transcript, the fields read from free text "to
verify"). A conversation left with a phone number becomes a lead after [chat]
quiet_minutes; one without any contact detail stays a conversation, and its messages
are erased after [chat] keep_days.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import apsw

from app import audit, clock, i18n, leads
from app.chat import answers
from app.chat import flow as flow_mod
from app.config import Config
from app.db import Database
from app.i18n import N_
from app.leads import custom_fields
from app.leads.fields import LEAD_FIELDS
from app.messaging import outbox
from app.ops import replication

log = logging.getLogger("capteo.chat")

CONSENT_VERSION = "chat-2026-12-01"
ROLES = ("visitor", "assistant", "team")
STUCK = N_("Thank you, your message is noted: the team will read it.")
NO_NEED = N_("Chat conversation left before the request was described.")
# Fields a lead shows "to verify" when they were read from free text rather than typed to their question.
TO_VERIFY = frozenset(f.name for f in LEAD_FIELDS if f.extracted) | {"callback_time"}

Responder = Callable[[flow_mod.Flow, str, flow_mod.Business, str], flow_mod.Reply]


def consent_text(business_name: str, lang: str) -> str:
    """The notice the visitor accepts before the first message (stored with the conversation)."""
    return i18n.gettext_in(
        lang,
        "This conversation goes to %(business)s, to handle your service request. An automated assistant, "
        "running on Capteo's own server in Canada, reads your messages to note your request; no artificial "
        "intelligence provider receives them. A team member may also read and answer them. Your information "
        "is handled as described in the privacy policy.",
    ) % {"business": business_name}


def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def business_view(db: Database, business: dict) -> flow_mod.Business:
    return flow_mod.Business(name=business["name"], fields=custom_fields.active_fields(db, business["id"]),
                             facts=answers.Facts.of(business), trade=business.get("trade") or None)


# ---- the visitor's side ----------------------------------------------------------------------------

def start(db: Database, business: dict, lang: str, *, consent_version: str) -> tuple[str, int]:
    """A new conversation, its greeting and first question. Returns (session token, id)."""
    token = secrets.token_urlsafe(32)
    now = clock.now_iso()
    view = business_view(db, business)
    flow, replies = flow_mod.start(view, lang)
    with db.write() as conn:
        conn.execute(
            """INSERT INTO chat_conversations (business_id, session_hash, language, flow, consent_text,
                   consent_version, consent_at, created_at, visitor_at, visitor_seen_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (business["id"], session_hash(token), lang, json.dumps(flow.dump()), consent_text(business["name"], lang),
             consent_version, now, now, now, now, now))
        conversation_id = conn.last_insert_rowid()
        for reply in replies:
            _insert(conn, conversation_id, business["id"], "assistant", _with_choices(reply), now)
    return token, conversation_id


def by_session(db: Database, business_id: int, token: str) -> dict | None:
    """The conversation this page's token opens, at this business only (else None)."""
    if not token or len(token) > 100:
        return None
    return db.query_one("SELECT * FROM chat_conversations WHERE business_id = ? AND session_hash = ?",
                        (business_id, session_hash(token)))


def resumable(config: Config, conversation: dict, now: datetime | None = None) -> bool:
    """Still open and touched within [chat] resume_minutes: a visitor back on the same device goes on."""
    if conversation["state"] != "open":
        return False
    last = datetime.fromisoformat(conversation["visitor_seen_at"])
    return (now or clock.now()) - last <= timedelta(minutes=config.chat.resume_minutes)


class ChatRefused(Exception):
    """A message that cannot be taken: the msgid says why (shown translated, with a 4xx)."""

    def __init__(self, msgid: str, status: int = 422):
        super().__init__(msgid)
        self.msgid, self.status = msgid, status


def post(db: Database, config: Config, conversation: dict, text: str) -> int:
    """Store the visitor's message (committed before anything answers it). Returns its id."""
    now = clock.now_iso()
    if conversation["state"] != "open":
        raise ChatRefused(N_("This conversation is over. Start a new one to send another request."), 409)
    with db.write() as conn:
        row = next(iter(conn.execute(
            "SELECT state, (SELECT count(*) FROM chat_messages WHERE conversation_id = c.id) AS n,"
            " (SELECT count(*) FROM chat_messages WHERE conversation_id = c.id AND role = 'visitor'"
            "  AND created_at > ?) AS recent FROM chat_conversations c WHERE id = ?",
            ((clock.now() - timedelta(minutes=1)).isoformat(timespec="seconds"), conversation["id"]))))
        if row["state"] != "open":
            raise ChatRefused(N_("This conversation is over. Start a new one to send another request."), 409)
        if row["n"] >= config.chat.max_messages:
            raise ChatRefused(N_("This conversation is too long to go on here. Call us, or use the request "
                                 "form."), 409)
        if row["recent"] >= config.chat.messages_per_minute:
            raise ChatRefused(N_("You are sending messages too quickly. Wait a minute, then send it again."), 429)
        message_id = _insert(conn, conversation["id"], conversation["business_id"], "visitor", text, now)
        conn.execute(
            """UPDATE chat_conversations SET visitor_at = ?, visitor_seen_at = ?, updated_at = ?,
                   reply_due_at = CASE WHEN taken_over_by IS NULL THEN coalesce(reply_due_at, ?) END
               WHERE id = ?""", (now, now, now, now, conversation["id"]))
    return message_id


def seen(db: Database, conversation_id: int) -> None:
    """The visitor's page is still open (it polls): what the team sees as "on the page"."""
    with db.write() as conn:
        conn.execute("UPDATE chat_conversations SET visitor_seen_at = ? WHERE id = ?",
                     (clock.now_iso(), conversation_id))


def messages(db: Database, conversation_id: int, after: int = 0) -> list[dict]:
    return db.query("SELECT id, role, body, user_id, created_at FROM chat_messages"
                    " WHERE conversation_id = ? AND id > ? ORDER BY id", (conversation_id, after))


def waiting_for_reply(conversation: dict) -> bool:
    return conversation["state"] == "open" and conversation["reply_due_at"] is not None \
        and conversation["taken_over_by"] is None


def reply_late(config: Config, conversation: dict, now: datetime | None = None) -> bool:
    """The model has not answered within [chat] reply_timeout_seconds: the guided reply goes instead."""
    if not waiting_for_reply(conversation):
        return False
    due = datetime.fromisoformat(conversation["reply_due_at"])
    return (now or clock.now()) - due > timedelta(seconds=config.chat.reply_timeout_seconds)


# ---- replies ---------------------------------------------------------------------------------------

def _insert(conn: apsw.Connection, conversation_id: int, business_id: int, role: str, body: str, now: str,
            user_id: int | None = None) -> int:
    conn.execute("INSERT INTO chat_messages (conversation_id, business_id, role, body, user_id, created_at)"
                 " VALUES (?, ?, ?, ?, ?, ?)", (conversation_id, business_id, role, body, user_id, now))
    return conn.last_insert_rowid()


CHOICES_MARK = "\n\u241e"  # a reply's quick answers travel after this mark, as JSON


def _with_choices(reply: flow_mod.Reply) -> str:
    return reply.text + (CHOICES_MARK + json.dumps(reply.choices, ensure_ascii=False) if reply.choices else "")


def split_choices(body: str) -> tuple[str, list[tuple[str, str]]]:
    """A stored assistant message as (text, quick answers)."""
    text, mark, rest = body.partition(CHOICES_MARK)
    if not mark:
        return body, []
    try:
        return text, [(str(v), str(label)) for v, label in json.loads(rest)]
    except (ValueError, TypeError):
        return text, []


def as_read(rows: list[dict]) -> list[tuple[dict, str, list[tuple[str, str]]]]:
    """Each message with its text as a person reads it: an assistant message split from its
    quick answers, a tapped quick answer by its label («Téléphone», not "fix:phone")."""
    read: list[tuple[dict, str, list[tuple[str, str]]]] = []
    offered: dict[str, str] = {}
    for message in rows:
        text, choices = message["body"], list[tuple[str, str]]()
        if message["role"] == "assistant":
            text, choices = split_choices(message["body"])
            offered = dict(choices)
        elif message["role"] == "visitor":
            text, offered = offered.get(text, text), {}
        read.append((message, text, choices))
    return read


def guided(flow: flow_mod.Flow, text: str, business: flow_mod.Business, lang: str) -> flow_mod.Reply:
    return flow_mod.turn(flow, text, business, lang)


@dataclass
class Responded:
    replies: int = 0
    lead_id: int | None = None


def _answer(conv: dict, text: str, view: flow_mod.Business, responder: Responder
            ) -> tuple[flow_mod.Flow, flow_mod.Reply]:
    """The responder's reply; if it fails, the guided one; if that fails too (a defect), a
    plain acknowledgement with the flow unchanged: the visitor never sees an error, and the
    message is still answered (never answered again and again)."""
    lang = conv["language"]
    for attempt in (responder, guided):
        flow = flow_mod.Flow.load(json.loads(conv["flow"] or "{}"))
        try:
            return flow, attempt(flow, text, view, lang)
        except Exception:
            log.exception("chat: the reply to conversation %s failed", conv["id"])
    return flow_mod.Flow.load(json.loads(conv["flow"] or "{}")), flow_mod.Reply(i18n.gettext_in(lang, STUCK))


def respond(db: Database, config: Config, business: dict, conversation_id: int, responder: Responder = guided,
            *, engine: str = "guided") -> Responded:
    """Answer every unanswered visitor message of the conversation, oldest first."""
    done = Responded()
    view = business_view(db, business)
    while True:
        conv = db.query_one("SELECT * FROM chat_conversations WHERE id = ? AND business_id = ?",
                            (conversation_id, business["id"]))
        if conv is None or not waiting_for_reply(conv):
            return done
        pending = db.query_one("SELECT id, body FROM chat_messages WHERE conversation_id = ? AND role = 'visitor'"
                               " AND id > ? ORDER BY id LIMIT 1", (conversation_id, conv["answered_through"]))
        if pending is None:
            with db.write() as conn:
                conn.execute("UPDATE chat_conversations SET reply_due_at = NULL WHERE id = ? AND answered_through = ?",
                             (conversation_id, conv["answered_through"]))
            return done
        flow, reply = _answer(conv, pending["body"], view, responder)
        now = clock.now_iso()
        with db.write() as conn:
            current = next(iter(conn.execute(
                "SELECT answered_through, state, taken_over_by FROM chat_conversations WHERE id = ?",
                (conversation_id,))))
            if current["answered_through"] != conv["answered_through"] or current["state"] != "open" \
                    or current["taken_over_by"] is not None:
                continue  # answered meanwhile (the model and the fallback raced), or taken over: read again
            _insert(conn, conversation_id, business["id"], "assistant", _with_choices(reply), now)
            more = any(True for _ in conn.execute(
                "SELECT 1 FROM chat_messages WHERE conversation_id = ? AND role = 'visitor' AND id > ?",
                (conversation_id, pending["id"])))
            conn.execute(
                """UPDATE chat_conversations SET flow = ?, answered_through = ?, updated_at = ?, engine = ?,
                       reply_due_at = CASE WHEN ? THEN ? END WHERE id = ?""",
                (json.dumps(flow.dump()), pending["id"], now, engine, more, now, conversation_id))
            done.replies += 1
            if reply.done:
                done.lead_id = _create_lead(conn, config, business, {**conv, "flow": json.dumps(flow.dump())},
                                            actor="public:chat")


def transcript(conn: apsw.Connection, conversation_id: int, lang: str) -> str:
    names = {"visitor": i18n.gettext_in(lang, "Visitor"), "assistant": i18n.gettext_in(lang, "Assistant"),
             "team": i18n.gettext_in(lang, "Team")}
    rows = list(conn.execute("SELECT role, body FROM chat_messages WHERE conversation_id = ? ORDER BY id",
                             (conversation_id,)))
    # Each message's own line breaks are indented: only the first line of a message names who
    # spoke, so a visitor cannot forge an "Assistant:" line.
    return "\n".join(f"{names[m['role']]}: " + text.replace("\n", "\n    ") for m, text, _ in as_read(rows))


def _create_lead(conn: apsw.Connection, config: Config, business: dict, conv: dict, *, actor: str) -> int | None:
    """The conversation's lead, in the caller's transaction; None if it already has one."""
    current = next(iter(conn.execute("SELECT lead_id, state FROM chat_conversations WHERE id = ?", (conv["id"],))))
    if current["lead_id"] is not None or current["state"] == "erased":
        return None
    flow = flow_mod.Flow.load(json.loads(conv["flow"]))
    values = flow_mod.lead_fields(flow)
    lang = conv["language"]
    values.setdefault("need", i18n.gettext_in(lang, NO_NEED))
    lead = leads.create(
        conn, business_id=business["id"], channel="chat", actor=actor, language=lang,
        custom_fields=flow_mod.lead_custom(flow), consent_text=conv["consent_text"],
        consent_version=conv["consent_version"], consent_at=conv["consent_at"], session_id=conv["session_hash"],
        transcript=transcript(conn, conv["id"], lang),
        geocode_status="pending" if values.get("postal_code") else "none",
        geocode_next_at=clock.now_iso() if values.get("postal_code") else None,
        **values)
    ai_fields = sorted((set(flow.found) & TO_VERIFY & set(values)) | ({"urgent"} if flow.urgent else set()))
    conn.execute("UPDATE leads SET urgent = ?, ai_fields = ? WHERE id = ?",
                 (int(flow.urgent), json.dumps(ai_fields), lead["id"]))
    conn.execute("UPDATE chat_conversations SET state = 'lead', lead_id = ?, reply_due_at = NULL, updated_at = ?"
                 " WHERE id = ?", (lead["id"], clock.now_iso(), conv["id"]))
    outbox.queue_new_lead_sms(conn, business=business, lead_id=lead["id"], public_url=config.public_url,
                              urgent=flow.urgent)
    return int(lead["id"])


# ---- the team's side -------------------------------------------------------------------------------

def recent(db: Database, business_id: int, limit: int = 50) -> list[dict]:
    return db.query(
        """SELECT c.id, c.state, c.language, c.created_at, c.updated_at, c.visitor_at, c.visitor_seen_at,
                  c.taken_over_by, c.lead_id, c.reply_due_at, c.flow,
                  (SELECT count(*) FROM chat_messages m WHERE m.conversation_id = c.id) AS message_count
           FROM chat_conversations c WHERE c.business_id = ? AND c.state != 'erased'
           ORDER BY c.updated_at DESC, c.id DESC LIMIT ?""", (business_id, limit))


def get(db: Database, business_id: int, conversation_id: int) -> dict | None:
    return db.query_one("SELECT * FROM chat_conversations WHERE id = ? AND business_id = ?",
                        (conversation_id, business_id))


def get_any(db: Database, conversation_id: int) -> dict | None:
    """For the worker, which holds an id from its own queue (never from a request)."""
    return db.query_one("SELECT * FROM chat_conversations WHERE id = ?", (conversation_id,))


def for_lead(db: Database, business_id: int, lead_id: int) -> dict | None:
    return db.query_one("SELECT * FROM chat_conversations WHERE lead_id = ? AND business_id = ?",
                        (lead_id, business_id))


def on_page(config: Config, conversation: dict, now: datetime | None = None) -> bool:
    """The visitor's page polled within the last 30 s: a team member can still reach them."""
    last = datetime.fromisoformat(conversation["visitor_seen_at"])
    return conversation["state"] == "open" and (now or clock.now()) - last <= timedelta(seconds=30)


def record_view(db: Database, business_id: int, conversation_id: int, *, actor: str) -> None:
    with db.write() as conn:
        audit.record(conn, actor=actor, action="chat.view", entity="chat", entity_id=conversation_id,
                     business_id=business_id, fields=["messages"])


def take_over(db: Database, business_id: int, conversation_id: int, *, user_id: int) -> bool:
    """A team member answers from now on; the assistant stops. False if not open here."""
    now = clock.now_iso()
    with db.write() as conn:
        conn.execute("UPDATE chat_conversations SET taken_over_by = ?, taken_over_at = ?, reply_due_at = NULL,"
                     " updated_at = ? WHERE id = ? AND business_id = ? AND state = 'open'"
                     " AND taken_over_by IS NULL", (user_id, now, now, conversation_id, business_id))
        if conn.changes() == 0:
            return False
        # Whatever the visitor wrote so far is the team's to answer now.
        conn.execute("UPDATE chat_conversations SET answered_through = coalesce((SELECT max(id) FROM chat_messages"
                     " WHERE conversation_id = ?), 0) WHERE id = ?", (conversation_id, conversation_id))
        audit.record(conn, actor=f"user:{user_id}", action="chat.take_over", entity="chat",
                     entity_id=conversation_id, business_id=business_id)
    return True


def team_reply(db: Database, business_id: int, conversation_id: int, text: str, *, user_id: int) -> int | None:
    """A message from the team member who took the conversation over (None: not theirs to write in)."""
    now = clock.now_iso()
    with db.write() as conn:
        rows = list(conn.execute("SELECT state, taken_over_by FROM chat_conversations WHERE id = ? AND business_id = ?",
                                 (conversation_id, business_id)))
        if not rows or rows[0]["state"] != "open" or rows[0]["taken_over_by"] != user_id:
            return None  # over, not taken over, or taken over by someone else
        message_id = _insert(conn, conversation_id, business_id, "team", text, now, user_id=user_id)
        conn.execute("UPDATE chat_conversations SET answered_through = ?, updated_at = ? WHERE id = ?",
                     (message_id, now, conversation_id))
        audit.record(conn, actor=f"user:{user_id}", action="chat.reply", entity="chat", entity_id=conversation_id,
                     business_id=business_id, fields=["messages"])
    return message_id


def make_lead(db: Database, config: Config, business: dict, conversation_id: int, *, user_id: int) -> int | None:
    """A team member makes an open conversation a lead now, with what it gathered so far (the
    visitor may have given their details to the person who took it over)."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT * FROM chat_conversations WHERE id = ? AND business_id = ? AND state = 'open'",
                                 (conversation_id, business["id"])))
        if not rows:
            return None
        return _create_lead(conn, config, business, rows[0], actor=f"user:{user_id}")


# ---- the sweep: quiet conversations, retention ---------------------------------------------------------

@dataclass
class SweepReport:
    leads: list[int]
    closed: list[int]
    erased: list[int]
    late: list[int]


def sweep(db: Database, config: Config, businesses_by_id: Callable[[int], dict], now: datetime | None = None,
          ) -> SweepReport:
    now = now or clock.now()
    report = SweepReport([], [], [], [])
    quiet = (now - timedelta(minutes=config.chat.quiet_minutes)).isoformat(timespec="seconds")
    late = (now - timedelta(seconds=config.chat.reply_timeout_seconds)).isoformat(timespec="seconds")
    # Each conversation on its own: one that fails (logged) never stops the others, at any business.
    for conv in db.query("SELECT id, business_id FROM chat_conversations WHERE state = 'open'"
                         " AND reply_due_at IS NOT NULL AND reply_due_at < ? AND taken_over_by IS NULL", (late,)):
        try:
            respond(db, config, businesses_by_id(conv["business_id"]), conv["id"])
            report.late.append(conv["id"])
        except Exception:
            log.exception("chat sweep: the late reply of conversation %s failed", conv["id"])
    for conv in db.query("SELECT id, business_id FROM chat_conversations WHERE state = 'open' AND visitor_at < ?"
                         " AND visitor_seen_at < ?", (quiet, quiet)):
        try:
            _quiet(db, config, businesses_by_id(conv["business_id"]), conv["id"], quiet, now, report)
        except Exception:
            log.exception("chat sweep: quiet conversation %s failed", conv["id"])
    cutoff = (now - timedelta(days=config.chat.keep_days)).isoformat(timespec="seconds")
    old = db.query("SELECT id, business_id FROM chat_conversations WHERE lead_id IS NULL AND state != 'erased'"
                   " AND visitor_at < ?", (cutoff,))
    if old:
        with db.write() as conn:
            for conv in old:
                erase(conn, conv["id"], actor="system:retention", business_id=conv["business_id"], reason="retention")
                report.erased.append(conv["id"])
        # secure_delete overwrote the rows in the file; the WAL must not keep them either.
        replication.truncate_wal(config, db)
        i18n.forget_formatted()
    return report


def _quiet(db: Database, config: Config, business: dict, conversation_id: int, quiet: str, now: datetime,
           report: SweepReport) -> None:
    """A conversation silent since `quiet`: a lead if it gave a phone number, else closed. Read
    again under the write lock: the visitor may have written since the sweep listed it."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT * FROM chat_conversations WHERE id = ? AND state = 'open'"
                                 " AND visitor_at < ? AND visitor_seen_at < ?", (conversation_id, quiet, quiet)))
        if not rows:
            return
        conv = rows[0]
        if flow_mod.Flow.load(json.loads(conv["flow"])).has_contact:
            lead_id = _create_lead(conn, config, business, conv, actor="system:chat")
            if lead_id:
                report.leads.append(lead_id)
        else:
            conn.execute("UPDATE chat_conversations SET state = 'closed', reply_due_at = NULL, updated_at = ?"
                         " WHERE id = ?", (now.isoformat(timespec="seconds"), conversation_id))
            report.closed.append(conversation_id)


def erase(conn: apsw.Connection, conversation_id: int, *, actor: str, business_id: int, reason: str) -> None:
    """No trace of what the visitor wrote: the messages deleted, what was gathered and the
    consent cleared, the session identifier replaced (in the caller's transaction)."""
    conn.execute("DELETE FROM chat_messages WHERE conversation_id = ?", (conversation_id,))
    conn.execute("UPDATE chat_conversations SET state = 'erased', flow = '{}', session_hash = ?, reply_due_at = NULL,"
                 " updated_at = ? WHERE id = ?", (secrets.token_hex(32), clock.now_iso(), conversation_id))
    audit.record(conn, actor=actor, action=f"chat.erase.{reason}", entity="chat", entity_id=conversation_id,
                 business_id=business_id, fields=["messages", "session_id"])
