"""Routes of the chat: the visitor's page `/{lang}/c/{slug}` (and `?embed=1`), and the team's
conversations under `/{lang}/app/chats`.

The visitor's page works without JavaScript: every message is a plain form post answered
by the whole page. With JavaScript (static/js/chat.js) the same posts return only the new
messages, and the page polls for replies. The session token travels in the posted form,
never in a URL or a cookie; the start form's signed token (as on the request form) is its
protection against cross-site posts, the session token that of every later post.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from anyio import to_thread
from babel.dates import format_time
from litestar import Request, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

import jobs.chat
import jobs.intake
from app import billing, businesses, chat, clock, form, http, i18n, normalize
from app.businesses import hours
from app.businesses.ratelimit import client_ip
from app.chat import flow as flow_mod
from app.config import Config
from app.db import Database
from app.form.pages import _business, _frame_headers, _no_longer_online, public_door
from app.http import DB, Conf, Form, RateLimits, SignedIn, lang
from app.i18n import N_
from app.privacy import versions
from app.voicemail import models

log = logging.getLogger("capteo.chat")

SESSION_FIELD = "session"
TEXT_FIELD = "message"
# A plain-form post (no JavaScript) waits this long, at most, for the model's reply: the
# request awaits without holding a thread, and the page offers "check for a reply" after.
NO_SCRIPT_WAIT = 8.0


def _wants_fragment(request: Request) -> bool:
    return request.headers.get("x-capteo-chat") == "1"


def _first(sent: dict[str, list[str]], name: str) -> str:
    values = sent.get(name) or [""]
    return values[0]


def uses_assistant(config: Config) -> bool:
    """The model drives the chat when the operator allows it and it is known to work
    (the cached check: the web server never loads a model to decide)."""
    return config.chat.engine == "auto" and models.health(config)["llm"]["usable"] is True


# ---- context --------------------------------------------------------------------------------------

def _clock(value: str, tz: str) -> str:
    """A message's time as the visitor reads it beside a bubble: «14 h 05», "2:05 p.m."."""
    local = datetime.fromisoformat(value).astimezone(ZoneInfo(tz))
    return format_time(local.time(), i18n.FR_TIME if lang() == "fr" else "short", locale=i18n.LOCALES[lang()])


def message_views(db: Database, conversation_id: int, tz: str) -> list[dict]:
    """The conversation's messages as shown: an assistant message split from its quick
    answers, and a tapped quick answer shown by its label («Téléphone», not "fix:phone")."""
    views: list[dict] = []
    for message, text, choices in chat.as_read(chat.messages(db, conversation_id)):
        views.append({"id": message["id"], "role": message["role"], "text": text, "choices": choices,
                      "user_id": message["user_id"],
                      "datetime": message["created_at"], "time": _clock(message["created_at"], tz),
                      "at": i18n.format_datetime(message["created_at"], tz, "short")})
    return views


def _thread_context(db: Database, config: Config, business: dict, conversation: dict, *, after: int = 0,
                    error: str | None = None, draft: str = "") -> dict[str, Any]:
    # The whole thread is read (at most [chat] max_messages rows): a quick answer's label is
    # in the assistant message before it, which may be older than `after`.
    every = message_views(db, conversation["id"], business["timezone"])
    shown = [m for m in every if m["id"] > after]
    fresh = chat.get(db, business["id"], conversation["id"]) or conversation
    over, taken_over = fresh["state"] != "open", fresh["taken_over_by"] is not None
    # Quick answers belong to the last message, while the assistant wrote it and still leads.
    choices = every[-1]["choices"] if every and every[-1]["role"] == "assistant" else []
    visitor_ids = [m["id"] for m in shown if m["role"] == "visitor"]
    return {"messages": shown, "conversation": fresh, "waiting": chat.waiting_for_reply(fresh),
            "taken_over": taken_over, "over": over, "choices": [] if over or taken_over else choices,
            "error": error, "draft": draft, "anchor_id": visitor_ids[-1] if visitor_ids else None,
            "last_id": every[-1]["id"] if every else after, "max_length": config.chat.message_max_length}


def _page(db: Database, config: Config, business: dict, *, embed: bool, status_code: int = 200,
          session: str | None = None, conversation: dict | None = None, error: str | None = None,
          draft: str = "", declined: bool = False) -> Template:
    context: dict[str, Any] = {
        "business": business, "embed": embed, "declined": declined,
        "consent_text": chat.consent_text(business["name"], lang()),
        "token": form.issue_token(config.secret("chat"), business["id"]),
        "honeypot": form.HONEYPOT_FIELD, "session": session, "error": error,
        "callback_message": hours.callback_message(business["hours"], business["timezone"], clock.now()),
        "resume_minutes": config.chat.resume_minutes, "max_length": config.chat.message_max_length,
    }
    if conversation is not None:
        context |= _thread_context(db, config, business, conversation, error=error, draft=draft)
    return Template("chat/page.html", status_code=status_code, context=context,
                    headers={**_frame_headers(business, embed), "cache-control": "no-store"})


def _update(db: Database, config: Config, business: dict, conversation: dict, after: int, *, session: str,
            embed: bool, status_code: int = 200, error: str | None = None) -> Template:
    """What chat.js appends: the messages after `after`, and the conversation's state."""
    return Template("chat/_update.html", status_code=status_code,
                    context={"business": business, "session": session, "embed": embed,
                             **_thread_context(db, config, business, conversation, after=after, error=error)},
                    headers={**_frame_headers(business, True), "cache-control": "no-store"})


# ---- the visitor's page -------------------------------------------------------------------------------

@get("/c/{slug:str}", name="chat", sync_to_thread=True)
def chat_page(db: DB, config: Conf, slug: FromPath[str], embed: FromQuery[str | None] = None,
              declined: FromQuery[str | None] = None) -> Template | Redirect:
    is_embed = embed == "1"
    business = _business(db, slug, is_embed)
    elsewhere = public_door(config, business, slug, "c", is_embed)
    if elsewhere is not None:
        return elsewhere
    return _page(db, config, business, embed=is_embed, declined=declined == "1")


@post("/c/{slug:str}/start", name="chat_start", status_code=200)
async def chat_start(request: Request, db: DB, config: Conf, limits: RateLimits, slug: FromPath[str],
                     embed: FromQuery[str | None] = None) -> Template:
    sent = form.parse_form(list((await request.form()).multi_items()))
    return await to_thread.run_sync(_start_sync, client_ip(request), db, config, limits, slug, sent, embed == "1")


def _start_sync(ip: str, db: Database, config: Config, limits: Any, slug: str, sent: dict[str, list[str]],
                embed: bool) -> Template:
    business = _business(db, slug, embed)
    if not billing.public_doors_open(config, business, clock.now()):
        return _no_longer_online(business, embed, _frame_headers(business, embed), 410)
    if not form.check_token(config.secret("chat"), _first(sent, form.TOKEN_FIELD), business["id"],
                            config.forms.token_max_age):
        return _page(db, config, business, embed=embed, status_code=400,
                     error=i18n.gettext("This page has expired. Accept again to start the conversation."))
    if sent.get(form.CONSENT_FIELD) != [form.CONSENT_VALUE]:
        # Refused (or forged): nothing is stored, the page says so and offers the other doors.
        return _page(db, config, business, embed=embed, status_code=422, declined=True)
    if any(v.strip() for v in sent.get(form.HONEYPOT_FIELD, [])):
        return _page(db, config, business, embed=embed)  # a robot: the page again, nothing stored
    if limits.chat_starts.take(business["id"], ip) is None:
        return _page(db, config, business, embed=embed, status_code=429, error=i18n.gettext(
            "Too many conversations were started from this connection. Try again later, or call us."))
    policy = versions.in_effect(db)
    token, conversation_id = chat.start(db, business, lang(),
                                        consent_version=policy["version"] if policy else chat.CONSENT_VERSION)
    conversation = chat.get(db, business["id"], conversation_id)
    return _page(db, config, business, embed=embed, session=token, conversation=conversation)


def _conversation(db: Database, business: dict, sent: dict[str, list[str]], embed: bool = False
                  ) -> tuple[str, dict]:
    token = _first(sent, SESSION_FIELD)
    conversation = chat.by_session(db, business["id"], token)
    if conversation is None or conversation["state"] == "erased":
        raise NotFoundException(headers=_frame_headers(business, embed))
    return token, conversation


@post("/c/{slug:str}/send", name="chat_send", status_code=200)
async def chat_send(request: Request, db: DB, config: Conf, limits: RateLimits, slug: FromPath[str],
                    embed: FromQuery[str | None] = None) -> Template:
    sent = form.parse_form(list((await request.form()).multi_items()))
    ip, fragment, is_embed = client_ip(request), _wants_fragment(request), embed == "1"
    result = await to_thread.run_sync(_send_sync, ip, db, config, limits, slug, sent, fragment, is_embed)
    if isinstance(result, Template):
        return result
    business, token, conversation, after = result
    if not fragment:
        # No JavaScript: wait for the model's reply here (without holding a thread), then the whole page.
        with anyio.move_on_after(NO_SCRIPT_WAIT):
            while True:
                current = await to_thread.run_sync(chat.get, db, business["id"], conversation["id"])
                if current is None or not chat.waiting_for_reply(current):
                    break
                await anyio.sleep(0.25)
        return await to_thread.run_sync(lambda: _page(db, config, business, embed=is_embed, session=token,
                                                      conversation=conversation))
    return await to_thread.run_sync(lambda: _update(db, config, business, conversation, after, session=token,
                                                    embed=is_embed))


def _send_sync(ip: str, db: Database, config: Config, limits: Any, slug: str, sent: dict[str, list[str]],
               fragment: bool, embed: bool) -> Template | tuple[dict, str, dict, int]:
    business = _business(db, slug, embed)
    token, conversation = _conversation(db, business, sent, embed)
    after = _after(sent)
    if _first(sent, "check") == "1":
        # Without JavaScript, "Check for a reply": nothing is sent, the page comes back with what is
        # new; a model reply that is late is replaced by the guided one here, as the poll does.
        if chat.reply_late(config, conversation):
            _made_lead(chat.respond(db, config, business, conversation["id"]))
        return business, token, conversation, after
    text = normalize.clean(_first(sent, TEXT_FIELD), multiline=True)

    def refused(msgid: str, status: int) -> Template:
        error = i18n.gettext(msgid) % {"max": config.chat.message_max_length}
        if fragment:
            return _update(db, config, business, conversation, after, session=token, embed=embed,
                           status_code=status, error=error)
        return _page(db, config, business, embed=embed, status_code=status, session=token,
                     conversation=conversation, error=error, draft=_first(sent, TEXT_FIELD)[:20000])

    if not billing.public_doors_open(config, business, clock.now()):
        return refused(N_("This business no longer takes requests online. Call it instead."), 410)
    if any(v.strip() for v in sent.get(form.HONEYPOT_FIELD, [])):
        return refused(N_("Your message could not be sent."), 422)
    if not text:
        return refused(N_("Write a message first."), 422)
    if len(text) > config.chat.message_max_length:
        return refused(N_("This message is too long: %(max)d characters at most. Shorten it and send it again."),
                       422)
    if limits.chat_messages.take(ip) is None:
        return refused(N_("You are sending messages too quickly. Wait a minute, then send it again."), 429)
    try:
        chat.post(db, config, conversation, text)
    except chat.ChatRefused as refusal:
        return refused(refusal.msgid, refusal.status)
    _reply(db, config, business, conversation["id"])
    return business, token, conversation, after


def _after(sent: dict[str, list[str]]) -> int:
    raw = _first(sent, "after")
    return int(raw) if raw.isdigit() and len(raw) < 18 else 0


def _reply(db: Database, config: Config, business: dict, conversation_id: int) -> None:
    """The guided reply now; the assistant's from the models' worker (never in this process's requests)."""
    if uses_assistant(config):
        try:
            jobs.chat.reply(conversation_id)
            return
        except Exception:  # the queue is unwritable: the visitor still gets an answer
            log.exception("could not queue the assistant's reply; answering with the guided engine")
    _made_lead(chat.respond(db, config, business, conversation_id))


def _made_lead(done: chat.Responded) -> None:
    if done.lead_id is not None:
        try:
            jobs.intake.wake_lead(done.lead_id)
        except Exception:  # the lead and its SMS are committed; the sweep sends it
            log.exception("could not wake the follow-up work of lead %s", done.lead_id)


@post("/c/{slug:str}/poll", name="chat_poll", status_code=200, sync_to_thread=True)
def chat_poll(request: Request, db: DB, config: Conf, slug: FromPath[str], data: Form,
              embed: FromQuery[str | None] = None) -> Template:
    """chat.js, every few seconds: the new messages. A model reply that is late is replaced
    by the guided one here, so the visitor never waits on a model that failed."""
    business = _business(db, slug)
    sent = {k: [v] for k, v in data.items()}
    token, conversation = _conversation(db, business, sent)
    chat.seen(db, conversation["id"])
    if chat.reply_late(config, conversation):
        _made_lead(chat.respond(db, config, business, conversation["id"]))
    return _update(db, config, business, conversation, _after(sent), session=token, embed=embed == "1")


@post("/c/{slug:str}/resume", name="chat_resume", status_code=200, sync_to_thread=True)
def chat_resume(request: Request, db: DB, config: Conf, slug: FromPath[str], data: Form,
                embed: FromQuery[str | None] = None) -> Template:
    """chat.js on load, with the token this device kept: the whole thread, if still resumable."""
    business = _business(db, slug)
    token, conversation = _conversation(db, business, {k: [v] for k, v in data.items()})
    if not chat.resumable(config, conversation):
        raise NotFoundException()
    chat.seen(db, conversation["id"])
    context = {"business": business, "embed": embed == "1", "session": token, "honeypot": form.HONEYPOT_FIELD,
               **_thread_context(db, config, business, conversation)}
    return Template("chat/_resumed.html", context=context,
                    headers={**_frame_headers(business, embed == "1"), "cache-control": "no-store"})


# ---- the team's side ----------------------------------------------------------------------------------

def _list_context(db: Database, config: Config, business_id: int) -> dict[str, Any]:
    rows = chat.recent(db, business_id)
    for row in rows:
        row["on_page"] = chat.on_page(config, row)
        values = flow_mod.Flow.load(json.loads(row["flow"] or "{}")).values
        row["has_phone"] = bool(values.get("phone"))
    return {"conversations": rows, "chat_slug": businesses.get(db, business_id)["slug"]}


@get("/app/chats", name="chats", sync_to_thread=True)
def chats_page(request: Request, session: SignedIn, db: DB, config: Conf) -> Template:
    return http.fragment_or_page(request, "chat/_list.html", "chat/list.html",
                                 {"session": session, **_list_context(db, config, session["business_id"])},
                                 target="chat-list")


def _owned(db: Database, session: dict, conversation_id: int) -> dict:
    conversation = chat.get(db, session["business_id"], conversation_id)
    if conversation is None or conversation["state"] == "erased":
        raise NotFoundException()
    return conversation


def _owner_thread(db: Database, config: Config, session: dict, conversation: dict, after: int = 0) -> dict:
    business = businesses.get(db, session["business_id"])
    names = {m["id"]: m["name"] or m["email"] for m in businesses.team(db, session["business_id"])}
    # What the conversation gathered so far, as its summary says it (for whoever takes over).
    flow, view = flow_mod.Flow.load(json.loads(conversation["flow"] or "{}")), chat.business_view(db, business)
    gathered = [(flow_mod.label_of(key, view, lang()), value)
                for key, value in flow_mod.summary_lines(flow, view, lang())]
    return {"session": session, "conversation": conversation, "on_page": chat.on_page(config, conversation),
            "names": names, "gathered": gathered,
            "messages": [m for m in message_views(db, conversation["id"], business["timezone"]) if m["id"] > after],
            "mine": conversation["taken_over_by"] == session["user_id"], "after": after,
            "max_length": config.chat.message_max_length}


@get("/app/chats/{conversation_id:int}", name="chat_conversation", sync_to_thread=True)
def conversation_page(request: Request, session: SignedIn, db: DB, config: Conf,
                      conversation_id: FromPath[int], after: FromQuery[int] = 0) -> Template:
    conversation = _owned(db, session, conversation_id)
    if not http.is_htmx(request):
        chat.record_view(db, session["business_id"], conversation_id, actor=f"user:{session['user_id']}")
    return http.fragment_or_page(request, "chat/_conversation_messages.html", "chat/conversation.html",
                                 _owner_thread(db, config, session, conversation, after if after >= 0 else 0),
                                 target="chat-poll")


@post("/app/chats/{conversation_id:int}/take-over", name="chat_take_over", sync_to_thread=True)
def take_over(session: SignedIn, db: DB, conversation_id: FromPath[int]) -> Redirect:
    _owned(db, session, conversation_id)
    chat.take_over(db, session["business_id"], conversation_id, user_id=session["user_id"])
    return Redirect(f"/{lang()}/app/chats/{conversation_id}#reply", status_code=303)


@post("/app/chats/{conversation_id:int}/reply", name="chat_team_reply", sync_to_thread=True, status_code=200)
def team_reply(session: SignedIn, db: DB, config: Conf, conversation_id: FromPath[int], data: Form
               ) -> Template | Redirect:
    conversation = _owned(db, session, conversation_id)
    text = normalize.clean(data.get(TEXT_FIELD, ""), multiline=True)
    error = None
    if not text:
        error = i18n.gettext("Write a message first.")
    elif len(text) > config.chat.message_max_length:
        error = i18n.gettext("This message is too long: %(max)d characters at most. Shorten it and send it "
                             "again.") % {"max": config.chat.message_max_length}
    elif conversation["taken_over_by"] != session["user_id"] or chat.team_reply(
            db, session["business_id"], conversation_id, text, user_id=session["user_id"]) is None:
        error = i18n.gettext("This conversation is over, or nobody took it over: the message was not sent.")
    if error:
        context = _owner_thread(db, config, session, conversation) | {"error": error, "draft": text}
        return Template("chat/conversation.html", status_code=422, context=context)
    return Redirect(f"/{lang()}/app/chats/{conversation_id}#reply", status_code=303)


@post("/app/chats/{conversation_id:int}/lead", name="chat_make_lead", sync_to_thread=True)
def make_lead(session: SignedIn, db: DB, config: Conf, conversation_id: FromPath[int]) -> Redirect:
    _owned(db, session, conversation_id)
    business = businesses.get(db, session["business_id"])
    lead_id = chat.make_lead(db, config, business, conversation_id, user_id=session["user_id"])
    if lead_id is None:
        conversation = _owned(db, session, conversation_id)
        lead_id = conversation["lead_id"]
    if lead_id is None:
        return Redirect(f"/{lang()}/app/chats/{conversation_id}", status_code=303)
    _made_lead(chat.Responded(lead_id=lead_id))
    return Redirect(f"/{lang()}/app/leads/{lead_id}", status_code=303)


routes: http.Routes = [
    http.localized(chat_page, chat_start, chat_send, chat_poll, chat_resume),
    http.dashboard(chats_page, conversation_page, take_over, team_reply, make_lead),
]
