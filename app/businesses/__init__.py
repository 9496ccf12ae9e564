"""Businesses (the tenants), their users and memberships.

Passwords are hashed with argon2 (argon2-cffi): a memory-hard hash, and the
library rehash-checks old parameters for us.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import apsw
from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app import audit, clock
from app.db import Database

_hasher = PasswordHasher()
# Hash of a throwaway password, so an unknown email costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash("capteo-timing-equalizer")


def use_password_profile(parameters: Parameters) -> None:
    """Hash passwords from now on with these argon2 parameters, in this process.

    For the test suite only (`argon2.profiles.CHEAPEST`: still a real argon2id hash,
    at a fraction of the time and memory); the app always runs with the library's
    default profile. Hashes made before keep verifying: each names its own parameters.
    """
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(parameters)
    _DUMMY_HASH = _hasher.hash("capteo-timing-equalizer")


SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class BusinessError(ValueError):
    """A business or user could not be created; the message says why."""


def create_business(
    conn: apsw.Connection,
    *,
    slug: str,
    name: str,
    timezone: str,
    language: str = "fr",
    actor: str = "operator",
) -> int:
    if not SLUG_RE.match(slug):
        raise BusinessError(
            f"slug {slug!r}: use 1-40 lowercase letters, digits and hyphens (e.g. plomberie-gagnon)"
        )
    if not name.strip():
        raise BusinessError("the business name is empty")
    if any(True for _ in conn.execute("SELECT 1 FROM businesses WHERE slug = ?", (slug,))):
        raise BusinessError(f"slug {slug!r} is already taken")
    conn.execute(
        "INSERT INTO businesses (slug, name, timezone, language, created_at) VALUES (?, ?, ?, ?, ?)",
        (slug, name.strip(), timezone, language, clock.now_iso()),
    )
    business_id = conn.last_insert_rowid()
    audit.record(conn, actor=actor, action="business.create", entity="business",
                 entity_id=business_id, business_id=business_id, fields=["slug", "name"])
    return business_id


def add_user(
    conn: apsw.Connection,
    *,
    business_id: int,
    email: str,
    password: str,
    role: str = "owner",
    name: str = "",
    language: str = "fr",
    actor: str = "operator",
) -> int:
    """Create the user if needed and give them `role` in the business."""
    email = email.strip()
    if not EMAIL_RE.match(email):
        raise BusinessError(f"{email!r} is not an email address")
    if len(password) < 10:
        raise BusinessError("the password must have at least 10 characters")
    existing = list(conn.execute("SELECT id FROM users WHERE email = ?", (email,)))
    if existing:
        user_id = existing[0]["id"]
    else:
        conn.execute(
            "INSERT INTO users (email, name, password_hash, language, created_at) VALUES (?, ?, ?, ?, ?)",
            (email, name, _hasher.hash(password), language, clock.now_iso()),
        )
        user_id = conn.last_insert_rowid()
    conn.execute(
        "INSERT OR REPLACE INTO memberships (business_id, user_id, role) VALUES (?, ?, ?)",
        (business_id, user_id, role),
    )
    audit.record(conn, actor=actor, action="membership.create", entity="user",
                 entity_id=user_id, business_id=business_id, fields=["email", "role"])
    return user_id


def authenticate(db: Database, email: str, password: str) -> dict | None:
    """The user with this email and password, or None. Same cost either way."""
    user = db.query_one("SELECT * FROM users WHERE email = ?", (email.strip(),))
    try:
        _hasher.verify(user["password_hash"] if user and user["password_hash"] else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return user if user and user["password_hash"] else None


def memberships(db: Database, user_id: int) -> list[dict]:
    """The businesses a user belongs to, with their role, by name."""
    return db.query(
        """SELECT b.id, b.slug, b.name, b.timezone, b.language, m.role
           FROM memberships m JOIN businesses b ON b.id = m.business_id
           WHERE m.user_id = ? ORDER BY b.name""",
        (user_id,),
    )


def any_in(conn: apsw.Connection) -> bool:
    """Whether any business exists, read in the caller's transaction."""
    return any(True for _ in conn.execute("SELECT 1 FROM businesses LIMIT 1"))


def id_for_slug(conn: apsw.Connection, slug: str) -> int | None:
    rows = list(conn.execute("SELECT id FROM businesses WHERE slug = ?", (slug,)))
    return rows[0]["id"] if rows else None


def set_contact(conn: apsw.Connection, business_id: int, *, hours: str, notify_phones: str, phone: str) -> None:
    """Opening hours, the phones told of new leads, and the business's own phone (the demo sets them)."""
    conn.execute("UPDATE businesses SET hours = ?, notify_phones = ?, phone = ? WHERE id = ?",
                 (hours, notify_phones, phone, business_id))


def count(db: Database) -> int:
    return db.one("SELECT count(*) AS n FROM businesses")["n"]


SETTINGS_FIELDS = ("name", "slug", "phone", "timezone", "language", "hours", "notify_phones", "embed_domains",
                   "greeting_fr", "greeting_en", "trade", "voipms_mailbox")


def get(db: Database, business_id: int) -> dict:
    """A business that exists (the signed-in person's, a lead's): LookupError otherwise."""
    return db.one("SELECT * FROM businesses WHERE id = ?", (business_id,))


def by_slug(db: Database, slug: str) -> dict | None:
    """The business whose public form (and privacy request page) has this address."""
    return db.query_one("SELECT * FROM businesses WHERE slug = ?", (slug,)) if slug else None


def with_voipms_mailbox(db: Database) -> list[dict]:
    """Businesses whose VoIP.ms mailbox Capteo polls."""
    return db.query("SELECT id, voipms_mailbox FROM businesses WHERE voipms_mailbox IS NOT NULL "
                    "AND voipms_mailbox != ''")


# ---- secrets in URLs and headers: the calendar feed, the phone system's token ----------------------

def feed_token(db: Database, business_id: int) -> str:
    """The secret in the business's calendar feed URL, made on first use."""
    row = db.one("SELECT ics_token FROM businesses WHERE id = ?", (business_id,))
    if row["ics_token"]:
        return row["ics_token"]
    token = secrets.token_urlsafe(24)
    with db.write() as conn:
        conn.execute("UPDATE businesses SET ics_token = coalesce(ics_token, ?) WHERE id = ?", (token, business_id))
    return db.one("SELECT ics_token FROM businesses WHERE id = ?", (business_id,))["ics_token"]


def by_feed_token(db: Database, token: str) -> dict | None:
    if len(token) < 20:
        return None
    return db.query_one("SELECT * FROM businesses WHERE ics_token = ?", (token,))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def by_pbx_token(db: Database, token: str) -> dict | None:
    """The business whose phone system presents this bearer token (only its hash is kept)."""
    if not token:
        return None
    business = db.query_one("SELECT * FROM businesses WHERE pbx_token_hash = ?", (token_hash(token),))
    if business is None or not hmac.compare_digest(business["pbx_token_hash"], token_hash(token)):
        return None
    return business


def new_pbx_token(db: Database, business_id: int, *, actor: str) -> str:
    """A new token for the business's phone system (the old one stops working); returned once."""
    token = secrets.token_urlsafe(32)
    with db.write() as conn:
        conn.execute("UPDATE businesses SET pbx_token_hash = ? WHERE id = ?", (token_hash(token), business_id))
        audit.record(conn, actor=actor, action="business.pbx_token", entity="business",
                     entity_id=business_id, business_id=business_id, fields=["pbx_token"])
    return token


def update_settings(db: Database, business_id: int, values: dict, *, actor: str) -> list[str]:
    """Save validated settings; returns the names of those that changed."""
    with db.write() as conn:
        current = next(iter(conn.execute("SELECT * FROM businesses WHERE id = ?", (business_id,))))
        changed = [k for k in SETTINGS_FIELDS if k in values and values[k] != current[k]]
        if "slug" in changed and any(True for _ in conn.execute(
                "SELECT 1 FROM businesses WHERE slug = ? AND id != ?", (values["slug"], business_id))):
            raise BusinessError("slug taken")
        if changed:
            conn.execute(f"UPDATE businesses SET {', '.join(f'{k} = ?' for k in changed)} WHERE id = ?",
                         (*[values[k] for k in changed], business_id))
            audit.record(conn, actor=actor, action="business.settings", entity="business", entity_id=business_id,
                         business_id=business_id, fields=changed)
    return changed


def team(db: Database, business_id: int) -> list[dict]:
    return db.query(
        """SELECT u.id, u.email, u.name, m.role, u.must_change_password FROM memberships m
           JOIN users u ON u.id = m.user_id WHERE m.business_id = ? ORDER BY m.role DESC, u.email""",
        (business_id,),
    )


def add_member(db: Database, business_id: int, email: str, *, actor: str) -> str | None:
    """Add a member by email. A new account gets a one-time password (returned, to be
    shown once and changed at first sign-in); an existing account returns None."""
    password = secrets.token_urlsafe(9)
    with db.write() as conn:
        existing = list(conn.execute("SELECT id FROM users WHERE email = ?", (email,)))
        user_id = add_user(conn, business_id=business_id, email=email, password=password, role="member",
                           actor=actor)
        if not existing:
            conn.execute("UPDATE users SET must_change_password = 1 WHERE id = ?", (user_id,))
    return None if existing else password


def remove_member(db: Database, business_id: int, user_id: int, *, actor: str) -> bool:
    """Members only: an owner is never removed here (a business keeps its owner)."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT role FROM memberships WHERE business_id = ? AND user_id = ?",
                                 (business_id, user_id)))
        if not rows:
            raise LookupError(user_id)
        if rows[0]["role"] == "owner":
            return False
        conn.execute("DELETE FROM memberships WHERE business_id = ? AND user_id = ?", (business_id, user_id))
        # Their open sessions in this business end now.
        conn.execute("DELETE FROM sessions WHERE business_id = ? AND user_id = ?", (business_id, user_id))
        audit.record(conn, actor=actor, action="membership.remove", entity="user", entity_id=user_id,
                     business_id=business_id, fields=["role"])
    return True


def set_password(db: Database, user_id: int, password: str) -> None:
    if len(password) < 10:
        raise BusinessError("the password must have at least 10 characters")
    with db.write() as conn:
        conn.execute("UPDATE users SET password_hash = ?, must_change_password = 0 WHERE id = ?",
                     (_hasher.hash(password), user_id))
        audit.record(conn, actor=f"user:{user_id}", action="user.password", entity="user", entity_id=user_id,
                     fields=["password"])
