"""Issue 13, the chat under Law 25: anonymizing a lead erases the conversation it came from;
the rights tools find, export and erase a person's conversations that never became a lead
(by phone or email, this business only); the retention sweep catches up on old ones; and in
every case no byte of what the visitor wrote is left in the database file or its WAL."""

from __future__ import annotations

import csv
import html
import io
import json
from datetime import timedelta

import pytest

from app import audit, businesses, chat, clock, leads, privacy
from app.privacy import retention
from tests.support.app import csrf_token
from tests.support.people import make_business, signed_in

# What the visitor types, each a marker that must be gone from the files after an erasure.
NEED = "Fuite Markerneed sous l'évier"
NAME = "Zéphyrinmarker Quillonmarker"
PHONE, PHONE_TYPED = "+15145559876", "514 555-9876"
EMAIL = "zephyrin.marker@example.com"
ADDRESS = "77 rue Markerville H2X 1Y4"
MARKERS = ("Markerneed", "Zéphyrinmarker", "Quillonmarker", "5559876", "555-9876", "zephyrin.marker",
           "Markerville")


@pytest.fixture
def shop(db):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    other, _ = make_business(db, "autre", "Autre", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password="x" * 12)
    return bid, other, owner


def converse(db, config, business_id, texts, lang="fr"):
    """A conversation through the real storage and the guided engine: (token, id)."""
    business = businesses.get(db, business_id)
    token, conversation_id = chat.start(db, business, lang, consent_version="t")
    for text in texts:
        chat.post(db, config, chat.get(db, business_id, conversation_id), text)
        chat.respond(db, config, business, conversation_id)
    return token, conversation_id


def full(config, db, bid, confirm=True):
    texts = [NEED, NAME, PHONE_TYPED, EMAIL, ADDRESS, "non"]
    return converse(db, config, bid, texts + (["oui"] if confirm else []))


def raw_files(config) -> bytes:
    return b"".join((config.data_dir / n).read_bytes() for n in ("capteo.db", "capteo.db-wal")
                    if (config.data_dir / n).exists())


def assert_no_trace(config, *extra: str):
    data = raw_files(config)
    for marker in (*MARKERS, *extra):
        assert marker.encode() not in data, f"{marker!r} still in the database files"


def assert_erased(db, conversation_id, old_hash):
    conv = db.one("SELECT * FROM chat_conversations WHERE id = ?", (conversation_id,))
    assert conv["state"] == "erased" and conv["flow"] == "{}" and conv["session_hash"] != old_hash
    assert db.one("SELECT count(*) AS n FROM chat_messages WHERE conversation_id = ?", (conversation_id,))["n"] == 0


# ---- anonymizing a chat lead erases its conversation ------------------------------------------------

def test_the_guided_conversation_stores_what_was_typed_to_each_question(db, config, shop):
    bid, *_ = shop
    _, conversation_id = full(config, db, bid)
    conv = chat.get(db, bid, conversation_id)
    assert conv["state"] == "lead" and conv["lead_id"]
    lead = leads.get(db, bid, conv["lead_id"])
    assert (lead["channel"], lead["phone"], lead["email"]) == ("chat", PHONE, EMAIL)
    assert lead["session_id"] == conv["session_hash"] and "Markerneed" in lead["transcript"]


def test_anonymizing_a_chat_lead_erases_its_conversation_and_leaves_no_trace(db, config, shop):
    bid, *_ = shop
    token, conversation_id = full(config, db, bid)
    conv = chat.get(db, bid, conversation_id)
    lead_id = conv["lead_id"]
    with db.write() as conn:
        conn.execute("UPDATE leads SET status = 'archived', archived_at = ? WHERE id = ?",
                     ((clock.now() - timedelta(days=31)).isoformat(timespec="seconds"), lead_id))
    report = retention.sweep(db, config)
    assert report.anonymized == [lead_id]
    assert_erased(db, conversation_id, conv["session_hash"])
    assert leads.get(db, bid, lead_id)["session_id"] != conv["session_hash"]
    assert chat.by_session(db, bid, token) is None  # the page's token opens nothing any more
    entry = db.one("SELECT * FROM audit_log WHERE action = 'chat.erase.retention'")
    assert entry["entity"] == "chat" and entry["entity_id"] == str(conversation_id)
    assert entry["actor"] == "system:retention" and "messages" in json.loads(entry["fields"])
    assert_no_trace(config, conv["session_hash"])
    # A second sweep has nothing left to do.
    assert not retention.sweep(db, config).changed


def test_an_erasure_request_reaches_the_chat_through_its_lead(client, db, config, shop):
    bid, other, owner = shop
    _, conversation_id = full(config, db, bid)
    old_hash = chat.get(db, bid, conversation_id)["session_hash"]
    token = signed_in(client, db, owner, bid)
    r = client.post("/fr/app/privacy/erase", data={"_csrf_token": token, "phone": PHONE_TYPED, "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert_erased(db, conversation_id, old_hash)
    assert db.one("SELECT count(*) AS n FROM audit_log WHERE action = 'chat.erase.erasure'")["n"] == 1
    assert_no_trace(config, old_hash)


# ---- the rights tools: conversations that never became a lead ----------------------------------------

def test_find_export_and_erase_a_conversation_without_lead_by_phone(client, db, config, shop):
    bid, other, owner = shop
    _, mine = full(config, db, bid, confirm=False)  # left at the summary: no lead
    _, elsewhere = converse(db, config, other, [NEED, NAME, PHONE_TYPED])  # same person, another business
    _, stranger = converse(db, config, bid, ["Autre demande", "Paul Tremblay", "438 555-0199"])
    assert chat.get(db, bid, mine)["lead_id"] is None
    token = signed_in(client, db, owner, bid)

    page = html.unescape(client.post("/fr/app/privacy/find", data={"_csrf_token": token, "phone": PHONE}).text)
    assert f"/fr/app/chats/{mine}" in page and f"/fr/app/chats/{stranger}" not in page
    assert f"/fr/app/chats/{elsewhere}" not in page
    search = db.one("SELECT * FROM audit_log WHERE action = 'person.search' AND entity = 'chat'")
    assert search["entity_id"] == str(mine)

    confirm = html.unescape(client.post("/fr/app/privacy/erase", data={"_csrf_token": token,
                                                                        "phone": PHONE_TYPED}).text)
    assert "1 conversation de clavardage" in confirm  # says what will be lost before it is
    assert chat.get(db, bid, mine)["state"] != "erased"

    old_hash = chat.get(db, bid, mine)["session_hash"]
    r = client.post("/fr/app/privacy/erase", data={"_csrf_token": token, "phone": PHONE_TYPED, "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert_erased(db, mine, old_hash)
    # Another business's conversation with the same phone, and another person's here, are untouched.
    assert chat.get(db, other, elsewhere)["state"] == "open" and chat.messages(db, elsewhere)
    assert chat.get(db, bid, stranger)["state"] == "open"
    entry = db.one("SELECT * FROM audit_log WHERE action = 'chat.erase.erasure'")
    assert entry["entity_id"] == str(mine) and entry["actor"] == f"user:{owner}" and entry["business_id"] == bid
    # The other business still holds its copy (its own client's words); erase it too, then no trace.
    with db.write() as conn:
        chat.erase(conn, elsewhere, actor="t", business_id=other, reason="erasure")
    retention.checkpoint(db, config)
    assert_no_trace(config, old_hash)


def test_a_conversation_is_found_by_email_in_any_case_and_withdrawal_erases_it(client, db, config, shop):
    bid, _, owner = shop
    _, mine = converse(db, config, bid, [NEED, NAME, PHONE_TYPED, EMAIL.upper()])
    assert json.loads(chat.get(db, bid, mine)["flow"])["values"]["email"].lower() == EMAIL
    assert [c["id"] for c in privacy.conversations_without_lead(db, bid, phone=None, email=" Zephyrin.Marker"
                                                                 "@Example.com ")] == [mine]
    assert privacy.conversations_without_lead(db, bid, phone=None, email=None) == []
    assert privacy.conversations_without_lead(db, bid, phone="not a phone", email="") == []
    token = signed_in(client, db, owner, bid)
    r = client.post("/fr/app/privacy/withdraw", data={"_csrf_token": token, "email": EMAIL, "confirm": "yes"},
                    follow_redirects=False)
    assert r.status_code == 303 and chat.get(db, bid, mine)["state"] == "erased"
    assert db.one("SELECT count(*) AS n FROM audit_log WHERE action = 'chat.erase.withdrawal'")["n"] == 1


def test_the_export_holds_the_conversations_and_the_chat_of_each_lead(client, db, config, shop):
    bid, other, owner = shop
    _, with_lead = full(config, db, bid)
    _, without = converse(db, config, bid, ["=HYPERLINK(\"http://x\") Markerneed", NAME, PHONE_TYPED])
    converse(db, config, other, [NEED, NAME, PHONE_TYPED])  # never in this business's export
    token = signed_in(client, db, owner, bid)
    r = client.post("/fr/app/privacy/export", data={"_csrf_token": token, "phone": PHONE, "format": "json"})
    assert r.status_code == 200
    data = r.json()
    # The schema only grows: every key of version 1 is still there.
    assert {"schema", "business", "generated_at", "query", "leads", "voicemails"} <= set(data)
    assert data["schema"] == privacy.EXPORT_SCHEMA
    (lead,) = data["leads"]
    assert lead["channel"] == "chat" and {"consent", "notes", "appointments", "voicemails"} <= set(lead)
    said = [m["text"] for m in lead["chat_messages"] if m["role"] == "visitor"]
    assert said[:3] == [NEED, NAME, PHONE_TYPED]
    assert all("\u241e" not in m["text"] for m in lead["chat_messages"])  # quick answers are not text
    assert {m["role"] for m in lead["chat_messages"]} == {"visitor", "assistant"}
    (conv,) = data["conversations"]
    assert conv["values"]["phone"] == PHONE and conv["consent"]["version"] == "t"
    assert "Plomberie Gagnon" in conv["consent"]["text"] and conv["started_at"]
    assert conv["messages"][0]["role"] == "assistant"
    assert any(m["text"].startswith("=HYPERLINK") for m in conv["messages"])  # the JSON is never altered
    entry = db.one("SELECT * FROM audit_log WHERE action = 'person.export' AND entity = 'chat'")
    assert entry["entity_id"] == str(without) and entry["actor"] == f"user:{owner}"

    r = client.post("/fr/app/privacy/export", data={"_csrf_token": token, "phone": PHONE, "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert list(rows[0])[:len(privacy.CSV_COLUMNS)] == list(privacy.CSV_COLUMNS)
    assert privacy.CSV_COLUMNS[-1] == "chat_messages"
    assert [row["channel"] for row in rows] == ["chat", "chat"]
    assert "visitor: Fuite Markerneed" in rows[0]["chat_messages"]
    assert rows[1]["phone"] == "'" + PHONE and rows[1]["consent_version"] == "t"
    assert rows[1]["chat_messages"].startswith("assistant: ")
    assert "visitor: =HYPERLINK" in rows[1]["chat_messages"]  # inside a cell that starts with text


def test_a_member_cannot_export_or_erase_conversations(client, db, config, shop):
    bid, _, _ = shop
    _, mine = converse(db, config, bid, [NEED, NAME, PHONE_TYPED])
    with db.write() as conn:
        member = businesses.add_user(conn, business_id=bid, email="m@gagnon.ca", password="x" * 12, role="member")
    token = signed_in(client, db, member, bid)
    for path in ("/fr/app/privacy/export", "/fr/app/privacy/erase"):
        r = client.post(path, data={"_csrf_token": token, "phone": PHONE, "confirm": "yes"})
        assert r.status_code == 403
    assert chat.get(db, bid, mine)["state"] == "open"


def test_erase_person_never_erases_another_business_conversation(db, config, shop):
    bid, other, _ = shop
    _, theirs = converse(db, config, other, [NEED, NAME, PHONE_TYPED])
    retention.erase_person(db, config, bid, [], conversation_ids=[theirs], actor="user:1")
    assert chat.get(db, other, theirs)["state"] == "open" and chat.messages(db, theirs)


# ---- retention -----------------------------------------------------------------------------------

def _age(db, conversation_id, days):
    at = (clock.now() - timedelta(days=days)).isoformat(timespec="seconds")
    with db.write() as conn:
        conn.execute("UPDATE chat_conversations SET created_at = ?, visitor_at = ?, visitor_seen_at = ? WHERE id = ?",
                     (at, at, at, conversation_id))


def test_the_retention_sweep_catches_up_on_old_conversations_without_lead(db, config, shop):
    bid, *_ = shop
    _, old = converse(db, config, bid, [NEED, "Zéphyrinmarker"])  # no phone: never a lead
    _, young = converse(db, config, bid, ["Autre chose"])
    _, old_with_phone = converse(db, config, bid, ["Une demande", "Paul Tremblay", "438 555-0199"])
    old_hash = chat.get(db, bid, old)["session_hash"]
    _age(db, old, config.chat.keep_days + 1)
    _age(db, old_with_phone, config.chat.keep_days + 1)
    report = retention.sweep(db, config)
    assert report.chats_erased == [old]
    assert_erased(db, old, old_hash)
    assert chat.get(db, bid, young)["state"] == "open"
    # An open one with a phone is the chat sweep's to make a lead of, never erased before.
    assert chat.get(db, bid, old_with_phone)["state"] == "open"
    assert db.one("SELECT actor FROM audit_log WHERE action = 'chat.erase.retention'")["actor"] == "system:retention"
    assert_no_trace(config, old_hash)
    assert not retention.sweep(db, config).changed


def test_the_chat_sweep_leaves_no_trace_of_what_it_erases(db, config, shop):
    bid, *_ = shop
    _, old = converse(db, config, bid, [NEED, "Zéphyrinmarker"])
    _age(db, old, config.chat.keep_days + 1)
    report = chat.sweep(db, config, lambda business_id: businesses.get(db, business_id))
    assert report.erased == [old]
    assert_no_trace(config)


# ---- the audit log ---------------------------------------------------------------------------------

def test_every_chat_action_has_a_label():
    for action in ("chat.view", "chat.take_over", "chat.reply", "chat.erase.retention", "chat.erase.erasure",
                   "chat.erase.withdrawal", "chat.erase.closing"):
        assert action in audit.ACTION_LABELS
    assert "chat" in audit.ENTITY_LABELS and {"messages", "session_id"} <= set(audit.FIELD_LABELS)


def test_the_team_views_and_takes_over_are_audited(db, config, shop):
    bid, _, owner = shop
    _, conversation_id = converse(db, config, bid, [NEED])
    chat.record_view(db, bid, conversation_id, actor=f"user:{owner}")
    assert chat.take_over(db, bid, conversation_id, user_id=owner)
    assert chat.team_reply(db, bid, conversation_id, "Bonjour, ici Marc", user_id=owner)
    actions = [r["action"] for r in db.query("SELECT action FROM audit_log WHERE entity = 'chat' ORDER BY id")]
    assert actions == ["chat.view", "chat.take_over", "chat.reply"]
    # Entries name fields, never what was written.
    assert not db.query("SELECT 1 FROM audit_log WHERE fields LIKE '%Marc%' OR fields LIKE '%Markerneed%'")


def test_opening_a_conversation_on_the_dashboard_is_audited(client, db, config, shop):
    bid, _, owner = shop
    _, conversation_id = converse(db, config, bid, [NEED])
    signed_in(client, db, owner, bid)
    r = client.get(f"/fr/app/chats/{conversation_id}")
    entry = db.one("SELECT * FROM audit_log WHERE action = 'chat.view'")
    assert entry["actor"] == f"user:{owner}" and entry["entity_id"] == str(conversation_id)
    assert r.status_code == 200 and "Markerneed" in r.text
    assert csrf_token(client)


def test_a_conversation_with_unreadable_flow_breaks_neither_the_sweep_nor_the_search(db, config, shop):
    bid, *_ = shop
    _, broken = converse(db, config, bid, [NEED])
    with db.write() as conn:
        conn.execute("UPDATE chat_conversations SET flow = 'not json {' WHERE id = ?", (broken,))
    assert privacy.conversations_without_lead(db, bid, phone=PHONE, email=EMAIL) == []
    _age(db, broken, config.chat.keep_days + 1)
    assert retention.sweep(db, config).chats_erased == [broken]
