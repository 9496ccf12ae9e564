"""Clean and normalize what people type: text, phone numbers, emails, postal codes.

Used wherever a value enters Capteo (the form, a correction on a lead, settings,
the voicemail extractor), so a phone number is stored the same way whatever door
it came through.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

POSTAL_RE = re.compile(r"^([ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z])\s*(\d[ABCEGHJ-NPRSTV-Z]\d)$")


def clean(value: str, *, multiline: bool = False) -> str:
    """Unicode NFC, control and format characters removed (newlines kept where the
    field is multi-line), outer whitespace trimmed."""
    value = unicodedata.normalize("NFC", value)
    kept = []
    for ch in value:
        if ch in "\n\t" and multiline:
            kept.append(ch)
        elif ch in "\r":
            continue
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            if ch in "\n\t":
                kept.append(" ")
            continue
        else:
            kept.append(ch)
    return "".join(kept).strip()


def phone(value: str) -> str | None:
    """E.164 for a valid number written any usual way (default region Canada)."""
    try:
        number = phonenumbers.parse(value, "CA")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def postal_code(value: str) -> str | None:
    m = POSTAL_RE.match(value.upper().replace("-", " ").strip())
    return f"{m.group(1)} {m.group(2)}" if m else None


def email(value: str) -> str | None:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None
