"""Deterministic first layer of voicemail extraction: rules, no ML.

A voicemail arrives as a Whisper transcript (Quebec French, English, or a mix of both)
plus the caller id from the phone network. This layer pulls out what can be pulled out
reliably by rules: the callback number, the caller's name, an email, a postal code, a
street address, whether the request is urgent, the dominant language, and a rough
`need` (the sentences that state the request). A language model may refine the result
later; this layer must stay fast, predictable and safe to run on every message, so
each rule is biased toward returning None rather than a wrong value: a missing field
costs the business one question on the callback, a wrong phone number costs the lead.

Each field has its own module, named for what it finds (phones, names, emails,
addresses, urgency, language, need), on top of numbers.py (spoken numbers → digits),
spelled.py (letters said one at a time) and text.py (shared clean-up); each module
explains why its rules look the way they do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from app.extraction.addresses import postal_code, street_address
from app.extraction.emails import email
from app.extraction.language import dominant_language
from app.extraction.names import caller_name
from app.extraction.need import stated_need
from app.extraction.numbers import normalize_spoken_digits
from app.extraction.phones import callback_phone
from app.extraction.text import prep, without_loops
from app.extraction.urgency import is_urgent

__all__ = ["Extracted", "extract"]


@dataclass
class Extracted:
    first_name: str | None
    last_name: str | None
    phone: str | None  # E.164
    email: str | None
    postal_code: str | None  # "A1A 1A1"
    street_address: str | None
    need: str | None
    urgent: bool
    language: str  # "fr" | "en"

    def as_dict(self) -> dict:
        """Same keys, same order and same formats as `expected` in the dev data."""
        return asdict(self)


def extract(transcript: str, caller_id: str | None, *, business: str | None = None) -> Extracted:
    """All fields of one voicemail. `business` (the business's name) is optional; when
    given, its words are never taken as the caller's name ("ici Plomberie Gagnon")."""
    text = prep(transcript)
    said_once = without_loops(text)  # "so-so-so-so…" counts once for the language and the need
    first, last = caller_name(text, business)
    return Extracted(
        first_name=first,
        last_name=last,
        phone=callback_phone(text, caller_id),
        email=email(text),
        postal_code=postal_code(text),
        # A civic number may be said in words ("quatre cent douze rue…").
        street_address=street_address(text) or street_address(normalize_spoken_digits(text)),
        need=stated_need(said_once),
        urgent=is_urgent(text),
        language=dominant_language(said_once),
    )
