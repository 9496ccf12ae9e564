"""Keep only what the language model says that the caller actually said.

A model can invent a plausible phone number or a name. Every value it returns is
checked against the transcript (or, for the phone, the caller id the network
gave); anything it cannot point to is dropped and the rules' value stays.
"""

from __future__ import annotations

import re
import unicodedata

from app import normalize
from app.extraction.phones import phone_candidates


def _fold(text: str) -> str:
    """Lowercase, accents removed, only letters and digits kept."""
    text = unicodedata.normalize("NFKD", text or "")
    return re.sub(r"[^a-z0-9]", "", "".join(c for c in text if not unicodedata.combining(c)).lower())


def phone_grounded(phone: str, transcript: str, caller_id: str | None) -> str | None:
    e164 = normalize.phone(phone or "")
    if not e164:
        return None
    return e164 if e164 == caller_id or e164 in phone_candidates(transcript) else None


def text_grounded(value: str | None, transcript: str) -> str | None:
    value = (value or "").strip()
    return value if value and _fold(value) and _fold(value) in _fold(transcript) else None


def postal_grounded(value: str | None, transcript: str, rules_value: str | None) -> str | None:
    code = normalize.postal_code(value or "")
    if not code:
        return None
    return code if code == rules_value or _fold(code) in _fold(transcript) else None


_SPOKEN_EMAIL_WORDS = re.compile(r"\b(arobas|arobase|at|point|dot|tiret|dash|underscore)\b", re.IGNORECASE)


def email_grounded(value: str | None, transcript: str, rules_value: str | None) -> str | None:
    """The whole address must have been said: written, or spelled out ("… arobas … point com")."""
    email = normalize.email(value or "")
    if not email:
        return None
    spoken = _fold(_SPOKEN_EMAIL_WORDS.sub(" ", transcript))
    return email if email == rules_value or _fold(email) in spoken or _fold(email) in _fold(transcript) else None


def address_grounded(value: str | None, transcript: str) -> str | None:
    value = (value or "").strip()
    number = re.match(r"\d+", value)
    return value if number and number.group(0) in transcript and text_grounded(value[number.end():], transcript) \
        else None


def merge(base: dict, answer: dict, transcript: str, caller_id: str | None) -> dict:
    """The rules' fields, each replaced by the model's only when the model's is grounded."""
    merged = dict(base)
    checks = {
        "first_name": text_grounded(answer.get("first_name"), transcript),
        "last_name": text_grounded(answer.get("last_name"), transcript),
        "phone": phone_grounded(answer.get("callback_phone") or "", transcript, caller_id),
        "email": email_grounded(answer.get("email"), transcript, base.get("email")),
        "postal_code": postal_grounded(answer.get("postal_code"), transcript, base.get("postal_code")),
        "street_address": address_grounded(answer.get("street_address"), transcript),
    }
    for key, value in checks.items():
        if value:
            merged[key] = value
    need = normalize.clean(str(answer.get("need") or ""))[:200]
    if need:
        merged["need"] = need  # a summary, not a fact: not groundable, shown as "to verify"
    if isinstance(answer.get("urgent"), bool):
        merged["urgent"] = base.get("urgent") or answer["urgent"]
    return merged
