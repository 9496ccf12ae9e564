"""The chat's language-model engine: the same conversation as the guided one, with the
model reading each visitor message for values the visitor gave unasked.

For each visitor message the local model is asked once (under the models' lock, so the
voicemail work and the chat never use it at once) for JSON: the values it sees in the
message and a short acknowledging sentence. Nothing it says is trusted:

- every value must be grounded in what the visitor typed in this very message (whole
  words, the rules of voicemail extraction: app/extraction/grounding), names must also
  be introduced as names, and the rules' own reading of the message wins over the
  model's; what is left is *offered* to `flow.turn()`, the same state machine as the
  guided engine, which validates it like the form, marks it "to verify" and decides
  what to ask next (never a question already answered);
- the sentence is at most a lead-in before the state machine's own reply, and only
  when it passes a strict filter (`acceptable_lead_in`): short, no question, no digit,
  no price, promise, date or business fact, no URL, no name the visitor did not type,
  nothing copied from the system prompt or the visitor's message, in the visitor's
  language. Questions about the business are answered by `flow.turn()` from its
  settings (app.chat.answers), never by the model.

No model, a model that fails, an answer cut at `MAX_TOKENS` or not of the expected
shape: the guided reply, exactly as `flow.turn()` gives it. The visitor never sees an
error. The flow is left untouched until the one call to `flow.turn()`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol

from app import normalize
from app.chat import Responder
from app.chat import flow as flow_mod
from app.extraction import grounding
from app.extraction.names import _TRADE_WORDS, split_full_name

log = logging.getLogger("capteo.chat")

# A whole answer is ~60 tokens of JSON plus the sentence; a model that repeats itself is
# cut here and the guided reply goes instead.
MAX_TOKENS = 200
REPEAT_PENALTY = 1.1
LOCK_WAIT_S = 30.0  # a voicemail being read holds the model: after this, the guided reply
MESSAGE_CHARS = 1000  # what of one visitor message the model reads

VALUE_FIELDS = ("first_name", "last_name", "phone", "email", "street_address", "postal_code", "need",
                "callback_time")
_MAX_LENGTH = {"first_name": 40, "last_name": 40, "phone": 25, "email": 80, "street_address": 80,
               "postal_code": 10, "need": 100, "callback_time": 40}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "values": {
            "type": "object",
            "properties": {name: {"type": ["string", "null"], "maxLength": _MAX_LENGTH[name]} for name in VALUE_FIELDS},
            "required": list(VALUE_FIELDS),
        },
        "reply": {"type": "string", "maxLength": 200},  # schema(lang) narrows it to ACKNOWLEDGEMENTS
    },
    "required": ["values", "reply"],
}

PROMPT = (
    "You are the automated chat assistant of {business}{trade}, a small business in Quebec. A visitor is "
    "leaving a service request; the team will call them back.\n"
    "Answer in JSON about the visitor's last message only.\n"
    "\"values\": what the visitor wrote in that message: first_name, last_name, phone, email, street_address "
    "(number and street), postal_code, need (the request, in their words), callback_time (when to call them "
    "back). Copy exactly as written. Use null for anything not written there. Never guess.\n"
    "\"reply\": the one of these {language} sentences that best acknowledges the message, or \"\": {acks}\n"
    "The assistant asked: \"{asked}\"\n"
    "Still to ask: {still}.\n"
    "{facts}"
)
_STEP_NAMES = {"need": "the request", "name": "name", "phone": "phone number", "email": "email",
               "address": "address and postal code", "callback_time": "best time to call back"}


class Engine(Protocol):
    """What the assistant uses of app.voicemail.engine.ModelEngine."""

    _lock: Any

    def llm_ready(self) -> bool: ...

    def _llm_model(self) -> Any: ...


# ---- the prompt -------------------------------------------------------------------------------------

def system_prompt(flow: flow_mod.Flow, business: flow_mod.Business, lang: str) -> str:
    still = [_STEP_NAMES.get(step) or (cf.label("en") if (cf := _custom(business, step)) else step)
             for step in flow_mod.steps(business) if step != "confirm" and step not in flow.done_steps]
    facts = business.facts
    known = []
    if facts.area:
        known.append("Service area: " + ", ".join(facts.area[:10]) + ".")
    if facts.callback_hours:
        known.append(f"Usual call-back delay: {facts.callback_hours} hours.")
    known.append("Hours, area and delays are answered by the system, not by you.")
    trade = business.trade
    return PROMPT.format(business=business.name, trade=f" ({trade})" if trade else "",
                         language="French" if lang == "fr" else "English",
                         acks=" | ".join(ACKNOWLEDGEMENTS[lang]),
                         asked=flow_mod.question(flow, business, lang).text.replace("\n", " "),
                         still=", ".join(still) or "nothing", facts=" ".join(known))


def _custom(business: flow_mod.Business, step: str) -> Any:
    return next((cf for cf in business.fields if cf.name == step), None)


def messages(flow: flow_mod.Flow, text: str, business: flow_mod.Business, lang: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system_prompt(flow, business, lang)},
            {"role": "user", "content": normalize.clean(text)[:MESSAGE_CHARS]}]


def schema(lang: str) -> dict[str, Any]:
    """SCHEMA with the reply limited to the acknowledgements of `lang` (or nothing)."""
    reply = {"type": "string", "enum": ["", *ACKNOWLEDGEMENTS[lang]]}
    return {**SCHEMA, "properties": {**SCHEMA["properties"], "reply": reply}}


def completion_options(lang: str = "fr") -> dict[str, Any]:
    return {"response_format": {"type": "json_object", "schema": schema(lang)}, "temperature": 0,
            "max_tokens": MAX_TOKENS, "repeat_penalty": REPEAT_PENALTY}


def ask(engine: Engine, chat: list[dict[str, str]], lang: str = "fr") -> dict | None:
    """The model's answer as {"values": {...}, "reply": str}; None when it is cut, not
    JSON or not of that shape, or the model is busy too long. A model error raises."""
    if not engine._lock.acquire(timeout=LOCK_WAIT_S):
        log.warning("the language model stayed busy %.0f s; the chat's guided reply goes instead", LOCK_WAIT_S)
        return None
    try:
        result = engine._llm_model().create_chat_completion(messages=chat, **completion_options(lang))
    finally:
        engine._lock.release()
    choice = result["choices"][0]
    if choice.get("finish_reason") == "length":
        log.warning("the chat model's answer was cut at %d tokens; guided reply", MAX_TOKENS)
        return None
    try:
        data = json.loads(choice["message"]["content"] or "", strict=False)  # the grammar admits raw controls
    except (ValueError, TypeError):
        log.warning("the chat model returned no valid JSON; guided reply")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("values"), dict) \
            or not isinstance(data.get("reply", ""), str):
        log.warning("the chat model's answer is not of the expected shape; guided reply")
        return None
    return data


# ---- grounding --------------------------------------------------------------------------------------

# "je m'appelle luc": a name even in lower case. After a weak cue ("c'est", "i'm"), only a
# capitalized word is a name ("c'est Luc", not "c'est cassé", "i'm stuck").
_STRONG_CUE = re.compile(
    r"\b(?:je m['’]appelle|je me nomme|mon nom (?:c['’]est|est)|mon nom de famille (?:c['’]est|est)|"
    r"moi c['’]est|my name is|my name['’]s|name['’]s|name is|last name is)[\s,:]*$", re.IGNORECASE)
_WEAK_CUE = re.compile(r"(?:^|[\s,.!;:])(?:c['’]est|ici|this is|it['’]s|i['’]m|i am)[\s,:]*$", re.IGNORECASE)
_TIME_WORDS = frozenset(grounding.words(
    "matin avant-midi midi après-midi soir soirée journée heure heures morning noon afternoon evening night "
    "tonight anytime lundi mardi mercredi jeudi vendredi samedi dimanche monday tuesday wednesday thursday "
    "friday saturday sunday semaine week weekend demain tomorrow aujourd today importe"))
_CLOCK = re.compile(r"\b\d{1,2}(?:\s*(?:h|am|pm|a\.m\.|p\.m\.)(?![^\W\d_])|:\d{2})", re.IGNORECASE)


def _introduced(value: str, text: str) -> bool:
    """A name the visitor introduced as one: right after a cue ("je m'appelle luc", "c'est
    Luc"), or a full name capitalized as typed ("..., Luc Tremblay, 514 ..."). A lone
    word, even capitalized ("Appelez Marc au bureau", "Fuite sous l'évier"), or a trade
    word ("Tremblay Roofing") is not enough."""
    want = grounding.words(value)
    if any(w in _TRADE_WORDS for w in want):
        return False
    toks = [(m.group(0), m.start()) for m in re.finditer(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*", text)]
    flat: list[tuple[int, str]] = [(i, w) for i, (tok, _) in enumerate(toks) for w in grounding.words(tok)]
    for start in range(len(flat) - len(want) + 1):
        if [w for _, w in flat[start:start + len(want)]] != want:
            continue
        span = sorted({i for i, _ in flat[start:start + len(want)]})
        word, at = toks[span[0]]
        if span[-1] + 1 < len(toks) and set(grounding.words(toks[span[-1] + 1][0])) & _TRADE_WORDS:
            continue  # "c'est Tremblay Toitures": a business
        capitalized = all(toks[i][0][:1].isupper() for i in span)
        if _STRONG_CUE.search(text[:at]) or (word[:1].isupper() and _WEAK_CUE.search(text[:at])):
            return True
        if len(span) >= 2 and capitalized:
            return True
    return False


def _not_the_business(value: str, business: flow_mod.Business) -> bool:
    said = grounding.words(value)
    return not (said and set(said) <= set(grounding.words(business.name)))


def grounded_values(answer: dict, text: str, business: flow_mod.Business) -> dict[str, str]:
    """What the model found that the visitor typed in `text`, field by field; the rest dropped."""
    raw = answer.get("values")
    if not isinstance(raw, dict):
        raw = {}
    got = {k: v.strip() for k, v in raw.items() if k in VALUE_FIELDS and isinstance(v, str) and v.strip()}
    text = normalize.clean(text, multiline=True)
    found: dict[str, str] = {}
    first, last = got.get("first_name"), got.get("last_name")
    if first and not last:
        first, last = split_full_name(first)  # a full name given as the first name
    if set(grounding.words(f"{first or ''} {last or ''}")) & _TRADE_WORDS:
        first = last = None  # a business ("Tremblay Roofing"), whoever is writing for it
    if first and (name := grounding.name_grounded(first, text)) and _introduced(name, text) \
            and _not_the_business(name, business):
        found["first_name"] = name
        # A last name alone would close the name question without a first name.
        if last and (surname := grounding.name_grounded(last, text)) and _not_the_business(surname, business) \
                and _introduced(f"{name} {surname}", text):
            found["last_name"] = surname
    if got.get("phone") and (phone := grounding.phone_grounded(got["phone"], text, None)):
        found["phone"] = phone
    if got.get("email") and (email := grounding.email_grounded(got["email"], text, None)):
        found["email"] = email
    if got.get("postal_code") and (code := grounding.postal_grounded(got["postal_code"], text, None)):
        found["postal_code"] = code
    if got.get("street_address") and (street := grounding.address_grounded(got["street_address"], text)):
        found["street_address"] = street
    if got.get("need") and (need := grounding.text_grounded(got["need"], text)):
        found["need"] = need
    when = got.get("callback_time")
    if when and grounding.text_grounded(when, text) and (
            set(grounding.words(when)) & _TIME_WORDS or _CLOCK.search(when)) \
            and not grounding.phone_grounded(when, text, None):
        found["callback_time"] = when
    return found


# ---- the lead-in ------------------------------------------------------------------------------------

# The model's only words: one of these, chosen to fit the message. They are an enum in the
# answer's JSON schema, so the grammar cannot produce anything else, and checked again here.
# A filter of forbidden words was tried first and leaked: "Bonne nouvelle, vous ne débourserez
# rien" promised a price in words it did not list (hostile review, tests/test_chat_attacks.py).
ACKNOWLEDGEMENTS = {
    "fr": ("Merci.", "Merci, c'est noté.", "Merci pour ces précisions.", "D'accord.", "Je comprends.",
           "Désolé d'apprendre cela.", "Désolé pour ce désagrément."),
    "en": ("Thank you.", "Thank you, noted.", "Thanks for the details.", "All right.", "I understand.",
           "Sorry to hear that.", "Sorry for the trouble."),
}
# A message that tells the assistant what to say or to be: no lead-in at all for it.
_INSTRUCTING = re.compile(
    r"\b(ignore[rz]?|instructions?|syst[eè]me?|prompt|say|dis|dites|[ée]cri[st]|[ée]crivez|repeat|r[ée]p[èe]te[rz]?|"
    r"print|affiche[rz]?|pretend|semblant|act as|you are now|tu es maintenant|vous [êe]tes maintenant|r[ôo]le|"
    r"jailbreak|developer mode|reply with|answer with|r[ée]ponds?|r[ée]pondez)\b", re.IGNORECASE)


def acceptable_lead_in(sentence: str, *, text: str, lang: str) -> str | None:
    """The model's sentence when it is one of the fixed acknowledgements of the visitor's
    language (and the visitor's message does not tell the assistant what to say); else None."""
    said = " ".join(normalize.clean(sentence or "").split())
    if said not in ACKNOWLEDGEMENTS[lang] or _INSTRUCTING.search(text):
        return None
    return said


# ---- one turn ---------------------------------------------------------------------------------------

def _asks_the_model(flow: flow_mod.Flow, text: str, business: flow_mod.Business, lang: str) -> bool:
    """Only a message that may hold something to read: not a tapped choice, a one-word
    answer the state machine reads itself, nor the summary's yes/change."""
    if flow.step in ("confirm", "done") or flow.step.startswith("fix:"):
        return False
    said = text.strip().lower()
    choices = flow_mod.question(flow, business, lang).choices
    if said in {v.lower() for v, _ in choices} | {label.lower() for _, label in choices}:
        return False
    return len(grounding.words(text)) >= 2


def reply(engine: Engine, flow: flow_mod.Flow, text: str, business: flow_mod.Business, lang: str) -> flow_mod.Reply:
    """The assistant's reply to one visitor message (updates `flow` as `flow.turn()` does)."""
    if not _asks_the_model(flow, text, business, lang):
        return flow_mod.turn(flow, text, business, lang)
    try:
        if not engine.llm_ready():
            return flow_mod.turn(flow, text, business, lang)
        chat = messages(flow, text, business, lang)
        answer = ask(engine, chat, lang)
    except Exception:  # the visitor never sees a model error
        log.exception("the chat model failed; guided reply")
        return flow_mod.turn(flow, text, business, lang)
    if answer is None:
        return flow_mod.turn(flow, text, business, lang)
    offered = grounded_values(answer, text, business)
    # What the rules read in the message wins over the model's reading of the same field.
    for name in flow_mod.harvest(normalize.clean(text, multiline=True), flow, business):
        offered.pop(name, None)
    lead_in = acceptable_lead_in(str(answer.get("reply") or ""), text=text, lang=lang)
    saved = json.loads(json.dumps(flow.dump()))
    before = flow.step
    try:
        result = flow_mod.turn(flow, text, business, lang, offered=offered)
    except Exception:
        log.exception("the chat's turn failed with the model's values; guided reply")
        restored = flow_mod.Flow.load(saved)
        for key in saved:
            setattr(flow, key, getattr(restored, key))
        return flow_mod.turn(flow, text, business, lang)
    if lead_in and flow.step != before and not result.done:
        return flow_mod.Reply(f"{lead_in}\n{result.text}", result.choices, result.done)
    return result


def responder(engine: Engine) -> Responder:
    """The Responder for app.chat.respond(): the assistant with `engine`'s language model."""

    def respond(flow: flow_mod.Flow, text: str, business: flow_mod.Business, lang: str) -> flow_mod.Reply:
        return reply(engine, flow, text, business, lang)

    return respond
