"""Sign-up: a business owner creates their account and their business in one step, and
the first-run checklist that follows them on the dashboard until it is done.

`create` validates everything first (nothing is stored when anything is wrong), then makes
the account, the business, the owner's membership and the trial's end in ONE transaction,
each audited. The trial starts at sign-up; `billing_state` becomes 'trialing' only when
billing is configured (otherwise it stays 'none': nothing is billed, every door is open).
"""

from __future__ import annotations

import json
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

from app import audit, businesses, clock, i18n, normalize
from app.config import Config
from app.db import Database
from app.i18n import N_

PASSWORD_MIN = 10

GREETING = N_("You have reached %(business)s. Leave your name, your number and the reason for your call after "
              "the tone. Your message is recorded and processed by automated artificial intelligence on our own "
              "server in Canada, only to handle your request.")

# Form addresses nobody may take: words of the app's own URLs, and ones that would pass for us.
RESERVED_SLUGS = frozenset({
    "admin", "administrateur", "api", "app", "aide", "assets", "billing", "capteo", "compte", "connexion",
    "dashboard", "demo", "embed", "en", "f", "facturation", "fr", "healthz", "help", "ics", "inscription",
    "login", "logout", "operator", "operateur", "password", "privacy", "root", "security", "securite",
    "settings", "signup", "static", "status", "support", "system", "test", "www",
})

TIMEZONE_DEFAULT = "America/Toronto"  # Montréal and Québec keep Toronto's clock


def greeting_default(business_name: str, lang: str) -> str:
    """The phone greeting with the consent notice the privacy policy requires."""
    return i18n.gettext_in(lang, GREETING) % {"business": business_name}


def password_error(new: str, again: str) -> str | None:
    """The one rule for a chosen password (sign-up, the account page and a reset link alike): a msgid."""
    if len(new) < PASSWORD_MIN:
        return N_("The password must have at least 10 characters.")
    if new != again:
        return N_("The two passwords differ.")
    return None


def timezones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if z.startswith(("America/", "Canada/")))


def slug_from_name(name: str) -> str:
    """A form address suggested by the business's name: "Plomberie Gagnon & fils" -> plomberie-gagnon-fils."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")[:40].strip("-")


def billing_configured(config: Config) -> bool:
    return bool(config.billing.price_id and config.provider_secret("paddle_api_key")
                and config.provider_secret("paddle_webhook_secret"))


class SignupInvalid(ValueError):
    """What was typed cannot make an account; `errors` maps each field to a msgid."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(", ".join(sorted(errors)))
        self.errors = errors


@dataclass(frozen=True)
class Created:
    user_id: int
    business_id: int


def validate(data: dict[str, str], *, email: str | None = None, with_password: bool = True) -> tuple[dict, dict]:
    """(values, errors by field name, as msgids). `email`: the one Cloudflare Access verified."""
    values: dict = {}
    errors: dict[str, str] = {}
    typed_email = (email if email is not None else data.get("email", "")).strip()[:254]
    values["email"] = normalize.email(typed_email) or typed_email
    if not normalize.email(typed_email) or not businesses.EMAIL_RE.match(typed_email):
        errors["email"] = N_("Enter a valid email address, e.g. name@example.com.")
    if with_password:
        error = password_error(data.get("password", "")[:1024], data.get("password_again", "")[:1024])
        if error:
            errors["password"] = error
        values["password"] = data.get("password", "")[:1024]
    name = normalize.clean(data.get("name", ""))[:120]
    if not name:
        errors["name"] = N_("This field is required.")
    values["name"] = name
    values["trade"] = normalize.clean(data.get("trade", ""))[:200] or None
    slug = data.get("slug", "").strip().lower()[:80] or slug_from_name(name)
    values["slug"] = slug
    if not businesses.SLUG_RE.match(slug):
        errors["slug"] = N_("Use 1 to 40 lowercase letters, digits and hyphens.")
    elif slug in RESERVED_SLUGS:
        errors["slug"] = N_("This address is reserved. Choose another one.")
    phone_raw = normalize.clean(data.get("phone", ""))[:40]
    values["phone"] = normalize.phone(phone_raw) if phone_raw else None
    if phone_raw and not values["phone"]:
        errors["phone"] = N_("Enter a valid phone number, e.g. 514 555-0123.")
    tz = data.get("timezone", "") or TIMEZONE_DEFAULT
    values["timezone"] = tz
    if tz not in timezones():
        errors["timezone"] = N_("Choose a time zone from the list.")
    values["language"] = data.get("language") if data.get("language") in i18n.LANGUAGES else "fr"
    return values, errors


def create(db: Database, config: Config, data: dict[str, str], *, email: str | None = None) -> Created:
    """Validate and create account + business + owner membership + trial, in one transaction.
    `email`: Cloudflare Access mode's verified email (the account has no password).
    Raises SignupInvalid (nothing stored) when anything is wrong."""
    values, errors = validate(data, email=email, with_password=email is None)
    if errors:
        raise SignupInvalid(errors)
    now = clock.now()
    trial_ends = (now + timedelta(days=config.signup.trial_days)).isoformat(timespec="seconds")
    state = "trialing" if billing_configured(config) else "none"
    with db.write() as conn:
        if any(True for _ in conn.execute("SELECT 1 FROM users WHERE email = ? COLLATE NOCASE",
                                          (values["email"],))):
            raise SignupInvalid({"email": N_("An account already uses this email. Sign in instead.")})
        if businesses.slug_taken(conn, values["slug"]):
            raise SignupInvalid({"slug": N_("This address is already taken.")})
        password_hash = businesses.hash_password(values["password"]) if email is None else None
        conn.execute("INSERT INTO users (email, password_hash, language, created_at) VALUES (?, ?, ?, ?)",
                     (values["email"], password_hash, values["language"], now.isoformat(timespec="seconds")))
        user_id = conn.last_insert_rowid()
        actor = f"user:{user_id}"
        business_id = businesses.create_business(conn, slug=values["slug"], name=values["name"],
                                                 timezone=values["timezone"], language=values["language"],
                                                 actor=actor)
        conn.execute("UPDATE businesses SET trade = ?, phone = ?, trial_ends_at = ?, billing_state = ? WHERE id = ?",
                     (values["trade"], values["phone"], trial_ends, state, business_id))
        audit.record(conn, actor=actor, action="business.settings", entity="business", entity_id=business_id,
                     business_id=business_id, fields=["trade", "phone", "trial_ends_at", "billing_state"])
        conn.execute("INSERT INTO memberships (business_id, user_id, role) VALUES (?, ?, 'owner')",
                     (business_id, user_id))
        audit.record(conn, actor=actor, action="membership.create", entity="user",
                     entity_id=user_id, business_id=business_id, fields=["email", "role"])
    return Created(user_id=user_id, business_id=business_id)


def slug_available(db: Database, slug: str) -> bool:
    slug = slug.strip().lower()
    if not businesses.SLUG_RE.match(slug) or slug in RESERVED_SLUGS:
        return False
    with db.write() as conn:
        return not businesses.slug_taken(conn, slug)


# ---- the first-run checklist -----------------------------------------------------------------------

# In the order the owner meets them; "test" is done by itself when the first lead arrives.
CHECKLIST = ("form", "greeting", "notify", "test")
DISMISSED = "dismissed"


def _done(business: dict) -> list[str]:
    try:
        done = json.loads(business.get("checklist_done") or "[]")
    except ValueError:
        return []
    return [d for d in done if isinstance(d, str)]


def first_run(db: Database, business_id: int, *, has_lead: bool, business: dict | None = None) -> dict | None:
    """The checklist to show, or None once every item is done or it was dismissed."""
    business = business or businesses.get(db, business_id)
    done = set(_done(business))
    if has_lead:
        done.add("test")
    if DISMISSED in done or all(item in done for item in CHECKLIST):
        return None
    return {
        "done": done, "items": CHECKLIST, "count_done": sum(item in done for item in CHECKLIST),
        "slug": business["slug"], "name": business["name"],
        "greeting_fr": business["greeting_fr"] or greeting_default(business["name"], "fr"),
        "greeting_en": business["greeting_en"] or greeting_default(business["name"], "en"),
        "notify_phones": [i18n.format_phone(p) for p in json.loads(business["notify_phones"] or "[]")],
    }


def mark(db: Database, business_id: int, item: str, *, actor: str) -> bool:
    """Mark a checklist item done (or the whole list dismissed); False for an unknown item."""
    if item not in (*CHECKLIST, DISMISSED):
        return False
    with db.write() as conn:
        row = next(iter(conn.execute("SELECT checklist_done FROM businesses WHERE id = ?", (business_id,))))
        done = _done(row)
        if item not in done:
            done.append(item)
            conn.execute("UPDATE businesses SET checklist_done = ? WHERE id = ?", (json.dumps(done), business_id))
            audit.record(conn, actor=actor, action="business.checklist", entity="business", entity_id=business_id,
                         business_id=business_id, fields=["checklist_done"])
    return True


def trial_end(business: dict) -> datetime | None:
    """When the trial ends, while the business is trialing and it has not ended."""
    if business.get("billing_state") != "trialing" or not business.get("trial_ends_at"):
        return None
    ends = datetime.fromisoformat(business["trial_ends_at"])
    return ends if ends > clock.now() else None


def dashboard_extras(db: Database, session: dict, *, has_lead: bool) -> dict:
    """What the inbox page shows above the leads: the first-run checklist (owners) and the trial's end."""
    if session.get("role") != "owner":
        return {"first_run": None, "trial_ends": None}
    business = businesses.get(db, session["business_id"])
    return {"first_run": first_run(db, session["business_id"], has_lead=has_lead, business=business),
            "trial_ends": trial_end(business)}
