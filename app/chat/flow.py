"""The conversation itself: what is asked next, how an answer is read, what is said back.

Pure functions over a `Flow` (kept as JSON on the conversation): no database, no model.
Both engines go through `turn()`, so they behave the same: the guided engine reads
each answer with the public form's own checks; the assistant (app.chat.assistant) first
offers what the language model found in the visitor's words (grounded in them), then
lets the same `turn()` decide what to ask. So a question is never asked about a value
already given, whoever found it, and a reply never says anything this module does not
know: the business's facts come from its settings (app.chat.answers), nothing else.

Steps, in order: the need, the name, the callback phone (required, as on the form), the
email, the address, the business's own questions, a callback time, then a summary the
visitor confirms or corrects. Optional steps take "no" / "skip" for an answer.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from app import form, i18n, normalize
from app.chat import answers
from app.extraction import addresses, emails, grounding, phones, urgency
from app.extraction.text import prep
from app.i18n import N_
from app.leads import custom_fields as cf_mod

STANDARD_STEPS = ("need", "name", "phone", "email", "address")
OPTIONAL = frozenset({"email", "address", "callback_time"})

QUESTIONS = {
    "need": N_("How can we help you? Describe your request in a few words."),
    "name": N_("What is your name?"),
    "phone": N_("What phone number can we call you back at?"),
    "email": N_("What is your email address? (Answer “no” if you prefer not to give one.)"),
    "address": N_("Where is the work to be done? Give the street address and postal code "
                  "(or answer “no”)."),
    "callback_time": N_("When is the best time to call you back? (Or answer “no”.)"),
}
# What a summary line calls each value; also the choices offered for a correction.
SUMMARY_LABELS = {"need": N_("Request"), "name": N_("Name"), "phone": N_("Phone"), "email": N_("Email"),
                  "address": N_("Address"), "callback_time": N_("Best time to call you back")}

# "No" to an optional question, the ways people say it ("Non, merci", "j'en ai pas", "no email").
_NO = re.compile(
    r"^\W*(?:no+n?|nope|nan|aucune?|rien|none|n/?a|skip|passer|pas besoin|pas n[ée]cessaire|no need"
    r"|(?:je )?n?['’]?en ai pas|j['’]en ai pas|(?:je )?n['’]en ai pas|pas d['’e]\s*\w*|no \w+"
    r"|(?:i )?don['’]?t have (?:one|any|an? \w+)|i have none|je pr[ée]f[èe]re (?:ne )?pas|(?:i['’]?d )?rather not)"
    r"(?:\W+(?:merci|thanks?|thank you))?\W*$", re.IGNORECASE)
_SKIP = re.compile(r"^\W*(?:skip|passer)\W*$", re.IGNORECASE)
_YES = re.compile(r"^\W*(oui|ouais|ben oui|bien s[uû]r|yes|yep|yup|yeah|sure|ok(ay)?|d'accord|correct|exact\w*"
                  r"|c'est (bon|beau|correct|[çc]a|parfait|tout bon|exact)|tout est (bon|beau|correct)|parfait"
                  r"|confirm(e|er|é)?|that's (right|correct|it)|all good|looks good|sounds good|perfect|vas-y|go"
                  r"|envoy\w*|send\w*)\b(?!.*\b(pas|non|not|no|but|mais|sauf|except)\b)", re.IGNORECASE)
_CHANGE = re.compile(r"^\W*(non|no|change|modifier|corriger|correct(ion)? needed|pas correct|wrong|erreur)\b",
                     re.IGNORECASE)
_NAME_INTRO = re.compile(r"^\s*(?:(?:moi\s+)?c'est|je m'appelle|je suis|mon nom (?:c'est|est)|my name is|"
                         r"i am|i'm|this is|it's|name'?s)\s+", re.IGNORECASE)
# Said anywhere in a message ("Bonjour, je m'appelle Luc Martin"): what follows is a name.
_NAME_SAID = re.compile(r"\b(?:je m'appelle|mon nom (?:est|c'est)|moi c'est|my name is|my name's)\s+", re.IGNORECASE)
# Words that are not a name ("je préfère ne pas", "Bonjour", "oui", "pas maintenant").
_NOT_NAME_WORDS = frozenset(re.findall(r"\S+", """
    je j tu il elle on nous vous ils ne n pas plus oui non ouais ok okay bonjour bonsoir
    allo allô salut hello hi hey yes no nope merci thanks thank you i me my mine is am are the a an and or et ou
    maintenant now later tard préfère prefere prefer rather not don't dont sais know rien nothing skip passer c est ça
    ca ce cette qui que quoi what who why pourquoi comment how numéro numero phone téléphone telephone courriel
    email adresse address demande request aide help"""))
_NAME_WORD = re.compile(r"^[^\W\d_](?:[^\W\d_]|['’\-])*\.?$")
_POSTAL_IN_TEXT = re.compile(r"\b([A-Za-z]\d[A-Za-z])[\s\-]?(\d[A-Za-z]\d)\b")
FIELD_STEP = {"first_name": "name", "last_name": "name", "phone": "phone", "email": "email",
              "street_address": "address", "postal_code": "address", "need": "need",
              "callback_time": "callback_time"}


@dataclass
class Flow:
    """Where a conversation stands; stored as JSON on it."""

    step: str = "need"
    values: dict[str, str] = field(default_factory=dict)  # the lead's standard fields
    custom: dict[str, Any] = field(default_factory=dict)  # "cf_<id>" -> the form's snapshot of the answer
    done_steps: list[str] = field(default_factory=list)  # answered or declined: never asked again
    found: list[str] = field(default_factory=list)  # fields read from free text (or the model): "to verify"
    correcting: bool = False  # a correction from the summary: back to it once answered
    confirmed: bool = False
    urgent: bool = False

    @classmethod
    def load(cls, data: dict) -> Flow:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def dump(self) -> dict:
        return asdict(self)

    @property
    def has_contact(self) -> bool:
        return bool(self.values.get("phone"))


@dataclass
class Business:
    """What the conversation may know of the business: its settings, nothing more."""

    name: str
    fields: list[cf_mod.CustomField]
    facts: answers.Facts
    trade: str | None = None


@dataclass
class Reply:
    text: str
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value sent back, label shown)
    done: bool = False  # the visitor confirmed: the conversation becomes a lead


def steps(business: Business) -> list[str]:
    return [*STANDARD_STEPS, *(cf.name for cf in business.fields), "callback_time", "confirm"]


def _t(lang: str, msgid: str) -> str:
    return i18n.gettext_in(lang, msgid)


def _custom_field(business: Business, step: str) -> cf_mod.CustomField | None:
    return next((cf for cf in business.fields if cf.name == step), None)


def next_step(flow: Flow, business: Business) -> str:
    for step in steps(business):
        if step == "confirm" or step not in flow.done_steps:
            return step
    return "confirm"


def question(flow: Flow, business: Business, lang: str, step: str | None = None) -> Reply:
    """The question for `step` (the current one by default), with its choices."""
    step = step or flow.step
    if step == "confirm":
        return summary(flow, business, lang)
    if step.startswith("fix:"):
        return correction_choices(flow, business, lang)
    cf = _custom_field(business, step)
    if cf is not None:
        label = cf.label(lang)
        choices: list[tuple[str, str]] = []
        if cf.kind == "yes_no":
            choices = [("yes", _t(lang, "Yes")), ("no", _t(lang, "No"))]
        elif cf.kind in ("single_choice", "multiple_choice"):
            choices = [(o[lang], o[lang]) for o in cf.options]
        if not cf.required:
            choices.append(("skip", _t(lang, "Skip")))
            # "no" is an answer to a yes/no question: only "skip" skips it.
            if cf.kind == "yes_no":
                label += " " + _t(lang, "(Optional.)")
            else:
                label += " " + _t(lang, "(Optional: answer “no” to skip.)")
        elif cf.kind == "multiple_choice":
            label += " " + _t(lang, "(You may give several, separated by commas.)")
        return Reply(label, choices)
    if step not in QUESTIONS:  # a question of the business's removed since it was reached
        return question(flow, business, lang, next_step(flow, business))
    choices = [("no", _t(lang, "Skip"))] if step in OPTIONAL else []
    return Reply(_t(lang, QUESTIONS[step]), choices)


def greeting(business: Business, lang: str) -> str:
    return _t(lang, "Hello! You are writing to %(business)s. I am the automated assistant: I note your "
                    "request for the team, who will call you back.") % {"business": business.name}


def start(business: Business, lang: str) -> tuple[Flow, list[Reply]]:
    flow = Flow()
    return flow, [Reply(greeting(business, lang)), question(flow, business, lang)]


# ---- reading one answer -------------------------------------------------------------------------

def _split_name(text: str) -> tuple[str | None, str | None]:
    said = _NAME_SAID.search(text)
    if said:
        text = re.split(r"[,.;!?\n]", text[said.end():], maxsplit=1)[0]
    words = _NAME_INTRO.sub("", text).strip(" .,!").split()
    if not 1 <= len(words) <= 4 or not all(_NAME_WORD.match(w) for w in words) \
            or any(w.lower().strip(".'’") in _NOT_NAME_WORDS for w in words):
        return None, None
    words = [w.rstrip(".") for w in words]
    if len(words[0]) > 100 or len(" ".join(words[1:])) > 100:
        return None, None
    return words[0], (" ".join(words[1:]) or None)


def _phone_in(text: str) -> str | None:
    if len(text) <= 40 and (phone := normalize.phone(text)):
        return phone
    return phones.callback_phone(prep(text), None)


def _postal_in(text: str) -> tuple[str | None, str]:
    match = _POSTAL_IN_TEXT.search(text)
    if not match:
        return None, text
    code = normalize.postal_code(match.group(1) + " " + match.group(2))
    return code, (text[:match.start()] + text[match.end():]) if code else text


def harvest(text: str, flow: Flow, business: Business) -> dict[str, str]:
    """Values the visitor gave without being asked ("My name is Luc, call me at 514 555-0123"):
    only what the rules read unambiguously from what was typed."""
    found: dict[str, str] = {}
    prepared = prep(text)
    if "phone" not in flow.values and (phone := phones.callback_phone(prepared, None)):
        found["phone"] = phone
    if "email" not in flow.values and (email := normalize.email(emails.email(prepared) or "")):
        found["email"] = email
    if "postal_code" not in flow.values:
        code, _ = _postal_in(text)
        if code:
            found["postal_code"] = code
    if "first_name" not in flow.values and _NAME_SAID.search(text):
        first, last = _split_name(text)
        if first and not set(grounding.words(first)) <= set(grounding.words(business.name)):
            found["first_name"] = first
            if last:
                found["last_name"] = last
    return found


def offer(flow: Flow, values: dict[str, str]) -> list[str]:
    """Take values found in free text (by the rules or the model) for fields not yet
    known; marks them "to verify" and their steps done. Returns the fields taken."""
    taken = []
    for name, value in values.items():
        if not value or flow.values.get(name) or name not in FIELD_STEP:
            continue
        if name in form.STANDARD_FIELDS:
            clean, error = form.validate_field(name, value)
            if error or clean is None:
                continue
            value = clean
        flow.values[name] = value
        taken.append(name)
        if name not in flow.found:
            flow.found.append(name)
        step = FIELD_STEP[name]
        # An address step is done with the street; a postal code alone still asks for the street.
        if step not in flow.done_steps and (step != "address" or name == "street_address"):
            flow.done_steps.append(step)
    return taken


def _read(step: str, text: str, flow: Flow, business: Business, lang: str) -> tuple[dict, str | None]:
    """(fields to set, error msgid) for the answer to `step`."""
    cf = _custom_field(business, step)
    if cf is not None and cf.kind == "yes_no":
        if not cf.required and _SKIP.match(text):
            return {}, None  # "no" is an answer here, read below
    elif step in OPTIONAL | {c.name for c in business.fields if not c.required} and _NO.match(text):
        return {}, None
    if step == "need":
        value, error = form.validate_field("need", text)
        return ({"need": value} if value else {}), error
    if step == "name":
        first, last = _split_name(text)
        if not first:
            return {}, N_("Give your first name, and your last name if you wish (letters only).")
        return {"first_name": first, **({"last_name": last} if last else {})}, None
    if step == "phone":
        phone = _phone_in(text)
        return ({"phone": phone}, None) if phone else ({}, N_("Enter a valid phone number, e.g. 514 555-0123."))
    if step == "email":
        value, error = form.validate_field("email", text.strip().rstrip("."))
        if error and (said := normalize.email(emails.email(prep(text)) or "")):
            value, error = said, None  # "mon courriel c'est marie@gmail.com", "marie arobase gmail point com"
        return ({"email": value} if value else {}), error
    if step == "address":
        code, rest = _postal_in(text)
        street = normalize.clean(rest).strip(" ,.;-")
        street = addresses.street_address(prep(street)) or (street if any(c.isdigit() for c in street) else "")
        if len(street) > form.STANDARD_FIELDS["street_address"][0]:
            return {}, N_("This answer is too long.")
        if not code and not street:
            return {}, N_("Give the street address (number and street) or the postal code, e.g. H2X 1Y4.")
        return {k: v for k, v in (("street_address", street), ("postal_code", code)) if v}, None
    if step == "callback_time":
        value, error = form.validate_field("callback_time", text)
        return ({"callback_time": value} if value else {}), error
    if cf is None:
        return {}, None
    raw = _custom_answer(cf, text, lang)
    value, error = cf_mod.validate(cf, raw, normalize.clean)
    if error:
        return {}, error
    return ({step: cf_mod.snapshot(cf, value)} if value is not None else {}), None


def _custom_answer(cf: cf_mod.CustomField, text: str, lang: str) -> list[str]:
    """What the form would have posted for this question, read from a typed answer."""
    said = text.strip().strip(".!").lower()
    if cf.kind == "yes_no":
        if _YES.match(said) or said in ("yes", "oui"):
            return ["yes"]
        if _NO.match(said) or said in ("no", "non"):
            return ["no"]
        return [said]
    if cf.kind in ("single_choice", "multiple_choice"):
        parts = [p.strip() for p in re.split(r",|;| et | and ", said)] if cf.kind == "multiple_choice" else [said]
        chosen = []
        for part in parts:
            for option in cf.options:
                if part in (option["value"].lower(), option["fr"].lower(), option["en"].lower()):
                    chosen.append(option["value"])
        return chosen or [said]
    if cf.kind == "date":
        return [said]
    return [text.strip()]


# ---- the summary ------------------------------------------------------------------------------------

def summary_lines(flow: Flow, business: Business, lang: str) -> list[tuple[str, str]]:
    v = flow.values
    lines = [("need", v.get("need", ""))]
    name = " ".join(x for x in (v.get("first_name"), v.get("last_name")) if x)
    lines += [("name", name), ("phone", i18n.format_phone(v["phone"]) if v.get("phone") else ""),
              ("email", v.get("email", "")),
              ("address", ", ".join(x for x in (v.get("street_address"), v.get("postal_code")) if x))]
    for cf in business.fields:
        entry = flow.custom.get(cf.name)
        if entry:
            lines.append((cf.name, cf_mod.display(entry, lang, _t(lang, "Yes"), _t(lang, "No"))[1]))
    lines.append(("callback_time", v.get("callback_time", "")))
    return [(key, value) for key, value in lines if value]


def label_of(key: str, business: Business, lang: str) -> str:
    cf = _custom_field(business, key)
    return cf.label(lang) if cf else _t(lang, SUMMARY_LABELS[key])


def summary(flow: Flow, business: Business, lang: str) -> Reply:
    lines = "\n".join(f"• {label_of(k, business, lang)} : {v}" if lang == "fr" else
                      f"• {label_of(k, business, lang)}: {v}" for k, v in summary_lines(flow, business, lang))
    text = _t(lang, "Here is what I will send to the team:") + "\n" + lines + "\n" + \
        _t(lang, "Is everything correct?")
    return Reply(text, [("yes", _t(lang, "Yes, send my request")), ("change", _t(lang, "Change something"))])


def correction_choices(flow: Flow, business: Business, lang: str) -> Reply:
    keys = [k for k in ("need", "name", "phone", "email", "address")] + \
        [cf.name for cf in business.fields] + ["callback_time"]
    return Reply(_t(lang, "What should be changed?"),
                 [(f"fix:{k}", label_of(k, business, lang)) for k in keys])


# ---- one turn ---------------------------------------------------------------------------------------

_STEP_FIELDS = {"name": ("first_name", "last_name"), "address": ("street_address", "postal_code"),
                "email": ("email",), "callback_time": ("callback_time",)}


def _apply(flow: Flow, step: str, fields: dict[str, Any]) -> None:
    # An answer replaces the whole of what its question holds: a correction, or "no" to an
    # optional one, withdraws what was there (an email read from free text included).
    for name in _STEP_FIELDS.get(step, ()):
        flow.values.pop(name, None)
        if name in flow.found:
            flow.found.remove(name)
    if step.startswith("cf_") and not fields:
        flow.custom.pop(step, None)
    for name, value in fields.items():
        if name.startswith("cf_"):
            flow.custom[name] = value
        else:
            flow.values[name] = value
            if name in flow.found:
                flow.found.remove(name)  # answered to its own question: what the visitor typed, as typed
    if step not in flow.done_steps:
        flow.done_steps.append(step)


def turn(flow: Flow, text: str, business: Business, lang: str, *, offered: dict[str, str] | None = None) -> Reply:
    """Read the visitor's message, update `flow`, and say what comes next.
    `offered`: values the language model found, already grounded in the visitor's words."""
    text = normalize.clean(text, multiline=True)
    lead_in: list[str] = []
    if flow.step not in (*steps(business), "done") and not flow.step.startswith("fix:"):
        # The question it was at is one of the business's, removed since: on to the next one.
        flow.step = "confirm" if flow.correcting else next_step(flow, business)
        flow.correcting = False
    # A question about the business is answered from its settings, then the conversation goes on.
    asked = answers.answer(text, business.facts, lang)
    if asked is not None:
        # A question about the business is answered from its settings (a price or anything else:
        # "the team will answer"). It is also the answer to the step when it is the request
        # itself ("how much for a new water heater?") or carries a checked value ("my number is
        # 514 555-0123, are you open Saturday?"); otherwise the same question is asked again.
        carries = flow.step in ("phone", "email", "address") and _read(flow.step, text, flow, business, lang)[0]
        is_the_answer = (flow.step == "need" and asked.kind in ("other", "price")) \
            or (flow.step == "callback_time" and asked.kind == "other")  # "Quand vous voulez", "Whenever works?"
        if asked.kind != "other" or not (is_the_answer or carries):
            lead_in.append(asked.text)
        if not (is_the_answer or carries):
            reply = question(flow, business, lang)
            return Reply("\n".join([*lead_in, reply.text]), reply.choices)
    if urgency.is_urgent(prep(text)):
        flow.urgent = True
    if flow.step == "confirm":
        return _confirm_turn(flow, text, business, lang)
    if flow.step.startswith("fix:"):
        return _fix_choice(flow, text, business, lang)
    step = flow.step
    fields, error = _read(step, text, flow, business, lang)
    if error:
        reply = question(flow, business, lang)
        return Reply(_t(lang, error) + "\n" + reply.text, reply.choices)
    _apply(flow, step, fields)
    # What else the message said ("... call me at 514 555-0123") is not asked again.
    offer(flow, {**harvest(text, flow, business), **(offered or {})})
    if "postal_code" in fields:
        note = business.facts.area_note(fields["postal_code"], lang)
        if note:
            lead_in.append(note)
    flow.step = "confirm" if flow.correcting else next_step(flow, business)
    flow.correcting = False
    reply = question(flow, business, lang)
    if step == "need":
        lead_in.append(_t(lang, "Thank you, noted."))
    return Reply("\n".join([*lead_in, reply.text]), reply.choices)


def _confirm_turn(flow: Flow, text: str, business: Business, lang: str) -> Reply:
    said = text.strip()
    if said.lower().startswith("fix:"):
        return _fix_choice(flow, said, business, lang)
    # A value typed straight away ("the phone is 438 555-0199", even "oui, le bon numéro est
    # 438 555-0199") replaces the one it corrects, and the summary is read back again.
    if _direct_correction(flow, said, business):
        return summary(flow, business, lang)
    if _YES.match(said) or said == "yes":
        flow.confirmed = True
        flow.step = "done"
        return Reply(_t(lang, "Thank you! Your request has been sent to %(business)s. "
                              "The team will call you back.") % {"business": business.name}, done=True)
    if _CHANGE.match(said) or said == "change":
        flow.step = "fix:"
        return correction_choices(flow, business, lang)
    reply = summary(flow, business, lang)
    return Reply(_t(lang, "Answer “yes” to send your request, or “change” to correct it.") + "\n" + reply.text,
                 reply.choices)


def _direct_correction(flow: Flow, text: str, business: Business) -> bool:
    fresh = Flow()
    found = harvest(text, fresh, business)
    changed = False
    for name in ("phone", "email", "postal_code"):
        if found.get(name) and found[name] != flow.values.get(name):
            flow.values[name] = found[name]
            if name in flow.found:
                flow.found.remove(name)
            changed = True
    return changed


def _fix_choice(flow: Flow, text: str, business: Business, lang: str) -> Reply:
    said = text.strip()
    key = said[4:] if said.lower().startswith("fix:") else None
    if key is None:
        # Typed rather than tapped: the label or the field's name.
        lowered = said.lower()
        for candidate in ("need", "name", "phone", "email", "address", *(cf.name for cf in business.fields),
                          "callback_time"):
            if lowered in (candidate, label_of(candidate, business, lang).lower()):
                key = candidate
    if key not in {"need", "name", "phone", "email", "address", "callback_time",
                   *(cf.name for cf in business.fields)}:
        flow.step = "fix:"
        return correction_choices(flow, business, lang)
    flow.step = key
    flow.correcting = True
    return question(flow, business, lang)


# ---- the lead ---------------------------------------------------------------------------------------

def lead_fields(flow: Flow) -> dict[str, str]:
    """The lead's standard fields from what the conversation gathered."""
    return {k: v for k, v in flow.values.items() if k in form.STANDARD_FIELDS and v}


def lead_custom(flow: Flow) -> dict[str, Any]:
    """The answers to the business's own questions, keyed as the form keys them (the field's id)."""
    return {name.removeprefix("cf_"): entry for name, entry in flow.custom.items()}
