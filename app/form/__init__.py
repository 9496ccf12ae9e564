"""The public request form: validation, consent, abuse controls, and acceptance.

The server decides everything; the browser's checks are only a help. A submission
is accepted in one transaction (lead, audit entry, owner SMS in the outbox, the
lead marked for geocoding) and only then are the background tasks woken: if the
process dies in between, the sweepers find the work in `capteo.db`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from app import clock, i18n, leads, normalize
from app.db import Database
from app.i18n import N_
from app.leads import custom_fields
from app.leads.fields import LEAD_FIELDS
from app.messaging import outbox
from app.privacy import versions

CONSENT_VERSION = "web-2026-11-01"
CONSENT_FIELD = "consent"
CONSENT_VALUE = "yes"
HONEYPOT_FIELD = "website"
TOKEN_FIELD = "form_token"

# field -> (maximum length, multiline), in the form's order
# A field on the form always has a maximum length (fields.py checks it at import).
STANDARD_FIELDS = {f.name: (f.max_length or 0, f.multiline) for f in LEAD_FIELDS if f.on_form}
REQUIRED = tuple(f.name for f in LEAD_FIELDS if f.required)


def validate_field(name: str, raw: str) -> tuple[str | None, str | None]:
    """(clean value or None, error msgid or None) for one standard field."""
    max_len, multiline = STANDARD_FIELDS[name]
    value = normalize.clean(raw, multiline=multiline)
    if value == "":
        return None, (N_("This field is required.") if name in REQUIRED else None)
    if len(value) > max_len:
        return None, N_("This answer is too long.")
    if name == "phone":
        phone = normalize.phone(value)
        return (phone, None) if phone else (None, N_("Enter a valid phone number, e.g. 514 555-0123."))
    if name == "email":
        email = normalize.email(value)
        return (email, None) if email else (None, N_("Enter a valid email address, e.g. name@example.com."))
    if name == "postal_code":
        code = normalize.postal_code(value)
        return (code, None) if code else (None, N_("Enter a Canadian postal code, e.g. H2X 1Y4."))
    return value, None


def consent_text(business_name: str, lang: str) -> str:
    """The exact consent sentence shown beside the checkbox (stored with the lead)."""
    return i18n.gettext_in(
        lang,
        "I agree that %(business)s uses the information in this form to handle my service request, "
        "as described in the privacy policy.",
    ) % {"business": business_name}


# ---- submission tokens: one displayed form, at most one lead --------------------------------

def issue_token(secret: str, business_id: int, now: float | None = None) -> str:
    payload = f"{business_id}.{int(now or time.time())}.{secrets.token_urlsafe(12)}"
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=") + "." + \
        base64.urlsafe_b64encode(sig).decode().rstrip("=")


def check_token(secret: str, token: str, business_id: int, max_age: int, now: float | None = None) -> bool:
    """Signed by us, for this business, and not too old. Doubles as the form's CSRF
    protection: the form works in an iframe, where no cookie can be relied on."""
    try:
        payload_b64, sig_b64 = token.split(".")
        payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)).decode()
        sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
        bid, issued, _ = payload.split(".", 2)
        expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
        return (hmac.compare_digest(sig, expected) and int(bid) == business_id
                and 0 <= (now or time.time()) - int(issued) <= max_age)
    except (ValueError, UnicodeDecodeError):
        return False


# ---- a whole submission ------------------------------------------------------------------------

@dataclass
class Submission:
    values: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, dict] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # field name -> msgid

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(form: dict[str, list[str]], fields: list[custom_fields.CustomField]) -> Submission:
    """Validate every standard and custom field, and the consent. `form` maps each
    name to all the values sent under it (a forged second value must be seen)."""
    sub = Submission()
    for name in STANDARD_FIELDS:
        sent = form.get(name, [])
        if len(sent) > 1:
            sub.errors[name] = N_("Give a single answer.")
            continue
        value, error = validate_field(name, sent[0] if sent else "")
        if error:
            sub.errors[name] = error
        elif value is not None:
            sub.values[name] = value
    for cf in fields:
        value, error = custom_fields.validate(cf, form.get(cf.name, []), normalize.clean)
        if error:
            sub.errors[cf.name] = error
        elif value is not None:
            sub.custom[str(cf.id)] = custom_fields.snapshot(cf, value)
    # Exactly one consent value, exactly the expected one: whatever else the client sends is a no.
    if form.get(CONSENT_FIELD) != [CONSENT_VALUE]:
        sub.errors[CONSENT_FIELD] = N_("Your consent is needed to send this request.")
    return sub


def accept(
    db: Database,
    *,
    business: dict,
    submission: Submission,
    token: str,
    language: str,
    public_url: str,
) -> tuple[dict, bool]:
    """Store an accepted submission. Returns (lead {id, reference}, created); a token
    already used returns the lead it made, so a resubmitted form creates nothing."""
    now = clock.now_iso()
    # The policy version in effect is what the person accepts; before any, the shipped one.
    policy = versions.in_effect(db)
    with db.write() as conn:
        for row in conn.execute(
            "SELECT id, reference FROM leads WHERE business_id = ? AND submission_token = ?",
            (business["id"], token),
        ):
            return row, False
        values = dict(submission.values)
        lead = leads.create(
            conn,
            business_id=business["id"],
            channel="web",
            actor="public:form",
            language=language,
            custom_fields=submission.custom,
            consent_text=consent_text(business["name"], language),
            consent_version=policy["version"] if policy else CONSENT_VERSION,
            consent_at=now,
            submission_token=token,
            geocode_status="pending" if values.get("postal_code") else "none",
            geocode_next_at=now if values.get("postal_code") else None,
            **values,
        )
        outbox.queue_new_lead_sms(conn, business=business, lead_id=lead["id"], public_url=public_url)
    return lead, True


def parse_form(raw_pairs: list[tuple[str, Any]]) -> dict[str, list[str]]:
    """The posted fields, every value kept (a forged second `consent` must be seen).
    The form takes no files: a file part is not one of its fields, and is left out."""
    form: dict[str, list[str]] = {}
    for k, v in raw_pairs:
        if isinstance(v, str):
            form.setdefault(k, []).append(v)
    return form


def business_settings(business: dict) -> dict:
    return {
        "embed_domains": json.loads(business.get("embed_domains") or "[]"),
        "notify_phones": json.loads(business.get("notify_phones") or "[]"),
    }
