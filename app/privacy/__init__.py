"""A person's rights under Law 25: the register of requests, finding a person's records,
exporting them (portability), and the privacy policy text.

Export schema (version 1, stable; new keys may be added, none renamed or removed):
    {"schema": "capteo.person-export/1", "business": {"name", "slug"}, "generated_at",
     "query": {"phone", "email"},
     "leads": [{"reference", "received_at", "channel", "status", "language", "first_name",
                "last_name", "phone", "email", "street_address", "postal_code", "need",
                "callback_time", "custom_fields": [{"question", "answer"}], "consent":
                {"given_at", "text", "version"}, "notes": [{"at", "text"}],
                "appointments": [{"starts_at", "ends_at", "status"}],
                "voicemails": [{"received_at", "caller_id", "duration_s", "transcript"}],
                "chat_messages": [{"at", "role", "text"}]}],          (added: the chat it came from)
     "voicemails": [{"received_at", "caller_id", "duration_s", "transcript"}],   (those that never became a lead)
     "conversations": [{"started_at", "language", "state", "values": {field: value},   (added: chats that
                        "consent": {"given_at", "text", "version"},                      never became a lead)
                        "messages": [{"at", "role", "text"}]}]}
A message's role is "visitor", "assistant" or "team" (never which team member).
CSV: one row per lead with the scalar columns above (lists joined with " | "), then one per
voicemail that never became a lead (channel "voicemail", its caller id as phone), then one
per chat that never became a lead (channel "chat"); the last column, chat_messages, holds
"role: text" lines joined with " | ". UTF-8 with a
BOM (Excel reads the accents); a cell a spreadsheet would read as a formula (starting with
= + - @, a tab or a carriage return) is prefixed with an apostrophe. The JSON is never altered.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import date, datetime, timedelta

from markdown_it import MarkdownIt

from app import audit, chat, clock, normalize, voicemail
from app.config import Config
from app.db import Database
from app.i18n import N_, gettext_in
from app.leads import custom_fields
from app.leads.fields import LEAD_FIELDS
from app.privacy import versions

KINDS = {
    "access": N_("Access to my information"),
    "rectification": N_("Correction of my information"),
    "erasure": N_("Erasure of my information"),
    "portability": N_("A copy of my information (portability)"),
    "withdrawal": N_("Withdrawal of my consent"),
    "contest": N_("Review by a person of an automated extraction"),
    "deindexing": N_("De-indexing"),
}
ANSWER_WITHIN = timedelta(days=30)
EXPORT_SCHEMA = "capteo.person-export/1"
_EXPORTED_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.exported)
# The CSV's scalar columns, each the export's key of the same name; the lists follow.
_SCALAR_COLUMNS = ("reference", "received_at", "channel", "status", "language", *_EXPORTED_FIELDS)
CSV_COLUMNS = (*_SCALAR_COLUMNS, "custom_fields", "consent_given_at", "consent_text", "consent_version", "notes",
               "appointments", "voicemail_transcripts", "chat_messages")


class RequestError(ValueError):
    """The message is a msgid."""


def has_open_request(db: Database, business_id: int, kind: str, person: str) -> bool:
    return db.query_one("SELECT 1 AS x FROM privacy_requests WHERE business_id = ? AND kind = ? AND person = ? "
                        "AND status = 'open'", (business_id, kind, person)) is not None


def register_request(db: Database, *, business_id: int, kind: str, person: str, contact: str, details: str,
                     source: str, actor: str, received_on: date | None = None) -> int:
    if kind not in KINDS:
        raise RequestError(N_("Choose the kind of request."))
    person, contact = normalize.clean(person)[:200], normalize.clean(contact)[:254]
    if not person or not contact:
        raise RequestError(N_("Give a name and a way to reach the person."))
    received = received_on or clock.now().date()
    with db.write() as conn:
        conn.execute(
            "INSERT INTO privacy_requests (business_id, kind, person, contact, details, source, received_on,"
            " due_on, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (business_id, kind, person, contact, normalize.clean(details, multiline=True)[:4000], source,
             received.isoformat(), (received + ANSWER_WITHIN).isoformat(), clock.now_iso()),
        )
        request_id = conn.last_insert_rowid()
        audit.record(conn, actor=actor, action="privacy_request.create", entity="privacy_request",
                     entity_id=request_id, business_id=business_id, fields=["person", "contact", "details"])
    return request_id


def requests(db: Database, business_id: int) -> list[dict]:
    """The register, open ones first by due date."""
    today = clock.now().date().isoformat()
    return db.query(
        """SELECT *, (status = 'open' AND due_on < ?) AS overdue FROM privacy_requests
           WHERE business_id = ? ORDER BY status = 'answered', due_on, id""",
        (today, business_id),
    )


def answer(db: Database, business_id: int, request_id: int, text: str, *, actor: str) -> None:
    with db.write() as conn:
        if not list(conn.execute("SELECT 1 FROM privacy_requests WHERE id = ? AND business_id = ?",
                                 (request_id, business_id))):
            raise LookupError(request_id)
        conn.execute("UPDATE privacy_requests SET status = 'answered', answer = ?, answered_at = ? WHERE id = ?",
                     (normalize.clean(text, multiline=True)[:4000], clock.now_iso(), request_id))
        audit.record(conn, actor=actor, action="privacy_request.answer", entity="privacy_request",
                     entity_id=request_id, business_id=business_id, fields=["answer"])


def find_person(db: Database, business_id: int, *, phone: str | None, email: str | None) -> list[dict]:
    """This business's leads of a person, by phone (any usual writing) or email, also
    through the caller id of their voicemails. Not widened through their client: a
    stranger can type someone else's email next to their own phone in the public form, so
    what an export hands out or an erasure destroys is only what matches what the person
    proved; `related_requests` shows the owner the rest, to add by hand."""
    e164 = normalize.phone(phone) if phone else None
    email_norm = (email or "").strip().lower() or None
    if not e164 and not email_norm:
        return []
    return db.query(
        """WITH found AS (
             SELECT l.id, l.client_id FROM leads l
             LEFT JOIN voicemails v ON v.lead_id = l.id
             WHERE l.business_id = ? AND l.status != 'anonymized'
               AND ((? IS NOT NULL AND (l.phone = ? OR v.caller_id = ?)) OR (? IS NOT NULL AND lower(l.email) = ?)))
           SELECT l.* FROM leads l
           WHERE l.business_id = ? AND l.status != 'anonymized' AND l.id IN (SELECT id FROM found)
           ORDER BY l.created_at""",
        (business_id, e164, e164, e164, email_norm, email_norm, business_id),
    )


def related_requests(db: Database, business_id: int, found: list[dict]) -> list[dict]:
    """The other requests of the clients of what was found (same phone or email seen
    together once): shown to the owner as "check before including", never acted on."""
    client_ids = sorted({r["client_id"] for r in found if r.get("client_id")})
    found_ids = {r["id"] for r in found}
    if not client_ids:
        return []
    rows = db.query(
        f"""SELECT * FROM leads WHERE business_id = ? AND status != 'anonymized'
            AND client_id IN ({", ".join("?" for _ in client_ids)}) ORDER BY created_at""",
        (business_id, *client_ids))
    return [r for r in rows if r["id"] not in found_ids]


def voicemails_without_lead(db: Database, business_id: int, *, phone: str | None) -> list[dict]:
    """This business's voicemails from the person's number that never became a lead."""
    e164 = normalize.phone(phone) if phone else None
    return voicemail.without_lead_from(db, business_id, e164) if e164 else []


def conversations_without_lead(db: Database, business_id: int, *, phone: str | None, email: str | None
                               ) -> list[dict]:
    """This business's chat conversations in which the person gave this phone or email and
    that never became a lead (those that did are reached through their lead), or whose lead
    was anonymized before anonymization erased conversations too. Erased ones hold nothing."""
    e164 = normalize.phone(phone) if phone else None
    email_norm = (email or "").strip().lower() or None
    if not e164 and not email_norm:
        return []
    return db.query(
        """SELECT c.* FROM chat_conversations c LEFT JOIN leads l ON l.id = c.lead_id AND l.business_id = c.business_id
           WHERE c.business_id = ? AND c.state != 'erased' AND (c.lead_id IS NULL OR l.status = 'anonymized')
             AND ((? IS NOT NULL AND CASE WHEN json_valid(c.flow) THEN json_extract(c.flow, '$.values.phone') END = ?)
                  OR (? IS NOT NULL
                      AND lower(CASE WHEN json_valid(c.flow) THEN json_extract(c.flow, '$.values.email') END) = ?))
           ORDER BY c.created_at, c.id""",
        (business_id, e164, e164, email_norm, email_norm))


def _chat_messages(db: Database, business_id: int, conversation_ids: list[int]) -> list[dict]:
    """The messages as the person saw them (an assistant's quick answers left out, a tapped one by its label)."""
    if not conversation_ids:
        return []
    rows = db.query(
        f"""SELECT conversation_id, created_at, role, body FROM chat_messages WHERE business_id = ?
            AND conversation_id IN ({", ".join("?" for _ in conversation_ids)}) ORDER BY conversation_id, id""",
        (business_id, *conversation_ids))
    # As read: a tapped quick answer by its label («Téléphone», not "fix:phone").
    return [{"at": m["created_at"], "role": m["role"], "text": text}
            for _, group in itertools.groupby(rows, key=lambda r: r["conversation_id"])
            for m, text, _ in chat.as_read(list(group))]


def _conversation_export(db: Database, conv: dict) -> dict:
    try:
        values = json.loads(conv["flow"] or "{}").get("values") or {}
    except (ValueError, AttributeError):
        values = {}
    return {"started_at": conv["created_at"], "language": conv["language"], "state": conv["state"],
            "values": {k: v for k, v in values.items() if isinstance(v, str)},
            "consent": {"given_at": conv["consent_at"], "text": conv["consent_text"],
                        "version": conv["consent_version"]},
            "messages": _chat_messages(db, conv["business_id"], [conv["id"]])}


def _voicemail_export(vm: dict) -> dict:
    return {"received_at": vm["created_at"], "caller_id": vm["caller_id"], "duration_s": vm["duration_s"],
            "transcript": vm["transcript"]}


def _lead_export(db: Database, lead: dict) -> dict:
    answers = [{"question": custom_fields.display(e, lead["language"], "yes", "no")[0],
                "answer": custom_fields.display(e, lead["language"], "yes", "no")[1]}
               for e in json.loads(lead["custom_fields"] or "{}").values()]
    return {
        "reference": lead["reference"], "received_at": lead["created_at"], "channel": lead["channel"],
        "status": lead["status"], "language": lead["language"],
        **{k: lead[k] for k in _EXPORTED_FIELDS},
        "custom_fields": answers,
        "consent": {"given_at": lead["consent_at"], "text": lead["consent_text"], "version": lead["consent_version"]},
        "notes": [{"at": r["at"], "text": r["body"]} for r in db.query(
            "SELECT at, body FROM lead_events WHERE lead_id = ? AND kind = 'note' AND body IS NOT NULL ORDER BY id",
            (lead["id"],))],
        "appointments": db.query(
            "SELECT starts_at, ends_at, status FROM appointments WHERE lead_id = ? ORDER BY starts_at", (lead["id"],)),
        "voicemails": db.query(
            "SELECT created_at AS received_at, caller_id, duration_s, transcript FROM voicemails"
            " WHERE lead_id = ? ORDER BY id", (lead["id"],)),
        "chat_messages": _chat_messages(db, lead["business_id"], [r["id"] for r in db.query(
            "SELECT id FROM chat_conversations WHERE lead_id = ? AND business_id = ? AND state != 'erased'"
            " ORDER BY id", (lead["id"], lead["business_id"]))]),
    }


def export(db: Database, business: dict, rows: list[dict], *, phone: str | None, email: str | None,
           actor: str, voicemails: list[dict] | None = None, conversations: list[dict] | None = None) -> dict:
    """The person's data in the documented schema (`voicemails`, `conversations`: those that
    never became a lead); the export itself is audited."""
    voicemails = voicemails or []
    conversations = [c for c in conversations or [] if c["business_id"] == business["id"]]
    data = {"schema": EXPORT_SCHEMA, "business": {"name": business["name"], "slug": business["slug"]},
            "generated_at": clock.now_iso(), "query": {"phone": phone or None, "email": email or None},
            "leads": [_lead_export(db, lead) for lead in rows],
            "voicemails": [_voicemail_export(vm) for vm in voicemails],
            "conversations": [_conversation_export(db, conv) for conv in conversations]}
    with db.write() as conn:
        audit.record(conn, actor=actor, action="person.export", entity="lead",
                     entity_id=",".join(str(r["id"]) for r in rows), business_id=business["id"],
                     fields=list(CSV_COLUMNS))
        if voicemails:
            audit.record(conn, actor=actor, action="person.export", entity="voicemail",
                         entity_id=",".join(str(vm["id"]) for vm in voicemails), business_id=business["id"],
                         fields=["caller_id", "transcript"])
        if conversations:
            audit.record(conn, actor=actor, action="person.export", entity="chat",
                         entity_id=",".join(str(c["id"]) for c in conversations), business_id=business["id"],
                         fields=["messages", "phone", "email", "consent"])
    return data


# What a spreadsheet reads as the start of a formula (OWASP, CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """A cell a spreadsheet shows as text: what a stranger typed never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_csv(data: dict) -> str:
    """The export as CSV for a spreadsheet: BOM first, formulas neutralized (see the module's docstring)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for lead in data["leads"]:
        writer.writerow([_cell(v) for v in (
            *(lead[k] for k in _SCALAR_COLUMNS),
            " | ".join(f"{a['question']}: {a['answer']}" for a in lead["custom_fields"]),
            lead["consent"]["given_at"], lead["consent"]["text"], lead["consent"]["version"],
            " | ".join(n["text"] for n in lead["notes"]),
            " | ".join(f"{a['starts_at']} ({a['status']})" for a in lead["appointments"]),
            " | ".join(v["transcript"] or "" for v in lead["voicemails"]),
            _chat_cell(lead.get("chat_messages", [])),
        )])
    for vm in data.get("voicemails", []):
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update(received_at=vm["received_at"], channel="voicemail", phone=vm["caller_id"],
                   voicemail_transcripts=vm["transcript"])
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    for conv in data.get("conversations", []):
        row = dict.fromkeys(CSV_COLUMNS, "")
        row.update({k: v for k, v in conv["values"].items() if k in _EXPORTED_FIELDS})
        row.update(received_at=conv["started_at"], channel="chat", status=conv["state"], language=conv["language"],
                   consent_given_at=conv["consent"]["given_at"], consent_text=conv["consent"]["text"],
                   consent_version=conv["consent"]["version"], chat_messages=_chat_cell(conv["messages"]))
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return "\ufeff" + out.getvalue()


def _chat_cell(messages: list[dict]) -> str:
    return " | ".join(f"{m['role']}: {m['text']}" for m in messages)


def flag_for_review(db: Database, business_id: int, lead_ids: list[int], *, actor: str) -> None:
    """A person contests an automated extraction: a human must look at it again."""
    with db.write() as conn:
        for lead_id in lead_ids:
            conn.execute("UPDATE leads SET review_requested_at = ? WHERE id = ? AND business_id = ?",
                         (clock.now_iso(), lead_id, business_id))
            audit.record(conn, actor=actor, action="lead.review_requested", entity="lead", entity_id=lead_id,
                         business_id=business_id, fields=["review_requested_at"])


# No raw HTML and no images: the operator's Markdown never makes a reader's browser fetch
# another host (the page's CSP would block it too: img-src 'self').
_md = MarkdownIt("commonmark", {"html": False}).disable("image")


def policy_html(config: Config, lang: str, db: Database | None = None) -> str:
    """The privacy policy: with `db`, the published version in effect (app.privacy.versions);
    else the operator's Markdown in <data dir>/privacy/policy.<lang>.md when present, else
    the shipped default. Raw HTML in it is shown as text."""
    if db is not None:
        text = versions.text_of(db, config, versions.current_version(db, config), lang)
    else:
        text = versions.shipped_text(config, lang)
    # No operator contact configured: say so, and where to turn instead (never a bare "—").
    contact = config.privacy.contact or gettext_in(lang, N_(
        "no contact has been given yet by the operator of this service; write to the business "
        "that received your request"))
    return _md.render(text.replace("{contact}", contact))


# How far back a request received by mail or by phone may be entered in the register.
RECEIVED_WITHIN = timedelta(days=366)


def parse_day(value: str) -> date | None:
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        return None


def received_day(value: str, today: date) -> date:
    """The day a request was received, as entered: a real day, not after today and
    within the last year (a year-1 date once broke the register page for everyone)."""
    day = parse_day(value)
    if day is None or not today - RECEIVED_WITHIN <= day <= today:
        raise RequestError(N_("Enter the day the request was received: today or within the last year."))
    return day
