"""Businesses (the tenants), their users and memberships.

Passwords are hashed with argon2 (argon2-cffi): a memory-hard hash, and the
library rehash-checks old parameters for us.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from datetime import timedelta

import apsw
from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app import audit, clock
from app.db import Database

_hasher = PasswordHasher()
# Hash of a throwaway password, so an unknown email costs as much as a wrong password. Made
# once, off the start-up path (`warm_up`, a background thread at start: 0.15 s of argon2 that
# the first page no longer waits for); a sign-in before it is ready makes it then.
_DUMMY_HASH: str | None = None
_dummy_lock = threading.Lock()


def _dummy_hash() -> str:
    global _DUMMY_HASH
    with _dummy_lock:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = _hasher.hash("capteo-timing-equalizer")
        return _DUMMY_HASH


def warm_up(delay: float = 0.0) -> threading.Thread:
    """Make the dummy hash in a daemon thread (argon2 releases the GIL), after `delay`
    seconds: at start-up, once the first pages are served rather than competing with them
    for the CPU (argon2 keeps every core busy for a few tenths of a second)."""

    def run() -> None:
        if delay:
            time.sleep(delay)
        _dummy_hash()

    thread = threading.Thread(target=run, name="capteo-warm-up", daemon=True)
    thread.start()
    return thread


def use_password_profile(parameters: Parameters) -> None:
    """Hash passwords from now on with these argon2 parameters, in this process.

    For the test suite only (`argon2.profiles.CHEAPEST`: still a real argon2id hash,
    at a fraction of the time and memory); the app always runs with the library's
    default profile. Hashes made before keep verifying: each names its own parameters.
    """
    global _hasher, _DUMMY_HASH
    with _dummy_lock:
        _hasher = PasswordHasher.from_parameters(parameters)
        _DUMMY_HASH = None


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
    if slug_taken(conn, slug):
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
    password_hash: str | None = None,
) -> int:
    """Create the user if needed and give them `role` in the business (the operator's CLI,
    the demo). A membership that exists is never changed: a second call with another role
    is refused, so no one is demoted or promoted by being added again. `password_hash`:
    `hash_password(password)` made beforehand (the demo's, made off the write lock)."""
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
            (email, name, password_hash or _hasher.hash(password), language, clock.now_iso()),
        )
        user_id = conn.last_insert_rowid()
    held = list(conn.execute("SELECT role FROM memberships WHERE business_id = ? AND user_id = ?",
                             (business_id, user_id)))
    if held:
        if held[0]["role"] != role:
            raise BusinessError(f"{email!r} is already {held[0]['role']} of this business")
        return user_id
    conn.execute("INSERT INTO memberships (business_id, user_id, role) VALUES (?, ?, ?)",
                 (business_id, user_id, role))
    audit.record(conn, actor=actor, action="membership.create", entity="user",
                 entity_id=user_id, business_id=business_id, fields=["email", "role"])
    return user_id


def authenticate(db: Database, email: str, password: str) -> dict | None:
    """The user with this email and password, or None. Same cost either way."""
    user = db.query_one("SELECT * FROM users WHERE email = ?", (email.strip(),))
    try:
        _hasher.verify(user["password_hash"] if user and user["password_hash"] else _dummy_hash(), password)
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


def slug_taken(conn: apsw.Connection, slug: str, business_id: int | None = None) -> bool:
    """Whether a business other than `business_id` has this form address, or had it: an
    old address stays its business's (it redirects there), never another's to claim."""
    return any(True for _ in conn.execute(
        """SELECT 1 FROM businesses WHERE slug = ?1 AND id IS NOT ?2
           UNION ALL SELECT 1 FROM previous_slugs WHERE slug = ?1 AND business_id IS NOT ?2""",
        (slug, business_id)))


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
                   "greeting_fr", "greeting_en", "trade", "voipms_mailbox", "service_area", "callback_hours")


def get(db: Database, business_id: int) -> dict:
    """A business that exists (the signed-in person's, a lead's): LookupError otherwise."""
    return db.one("SELECT * FROM businesses WHERE id = ?", (business_id,))


def by_slug(db: Database, slug: str) -> dict | None:
    """The business whose public form (and privacy request page) has this address."""
    return db.query_one("SELECT * FROM businesses WHERE slug = ?", (slug,)) if slug else None


def by_form_address(db: Database, slug: str) -> dict | None:
    """The business whose form has this address now, or had it before. Its `slug` is the
    current one: a caller that finds it differs sends the person there."""
    if not slug:
        return None
    return db.query_one(
        """SELECT * FROM businesses WHERE slug = ?1
           UNION ALL
           SELECT b.* FROM previous_slugs p JOIN businesses b ON b.id = p.business_id WHERE p.slug = ?1
           LIMIT 1""", (slug,))


def with_voipms_mailbox(db: Database) -> list[dict]:
    """Businesses whose VoIP.ms mailbox Capteo polls."""
    return db.query("SELECT id, voipms_mailbox FROM businesses WHERE voipms_mailbox IS NOT NULL "
                    "AND voipms_mailbox != '' AND closed_at IS NULL")


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
    return db.query_one("SELECT * FROM businesses WHERE ics_token = ? AND closed_at IS NULL", (token,))


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
        if "slug" in changed:
            if slug_taken(conn, values["slug"], business_id):
                raise BusinessError("slug taken")
            # The old address stays this business's; taking back one of its own frees it.
            conn.execute("DELETE FROM previous_slugs WHERE slug = ? AND business_id = ?",
                         (values["slug"], business_id))
            conn.execute("INSERT INTO previous_slugs (slug, business_id, retired_at) VALUES (?, ?, ?)",
                         (current["slug"], business_id, clock.now_iso()))
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


# ---- invitations ---------------------------------------------------------------------------------
#
# Adding someone to a team never touches an account that exists: its owner must accept.
# The owner who adds an email is told the same thing, and shown a one-time password, whether
# the email had an account or not; both kinds wait in the team list as invitations until the
# person signs in (a new account joins at its first sign-in) or accepts.

INVITATION_LIFETIME = timedelta(days=14)
_PENDING = "accepted_at IS NULL AND declined_at IS NULL AND cancelled_at IS NULL"


class AlreadyInTeam(BusinessError):
    """The email is already a member of this business."""


class OwnEmail(BusinessError):
    """The owner typed their own email."""


def _unused_account_made_here(conn: apsw.Connection, business_id: int, user: dict) -> bool:
    """An account this business's invitation made, never signed in to (no business yet)."""
    return bool(user["must_change_password"]) and not list(conn.execute(
        "SELECT 1 FROM memberships WHERE user_id = ?", (user["id"],))) and bool(list(conn.execute(
            "SELECT 1 FROM invitations WHERE business_id = ? AND user_id = ?", (business_id, user["id"]))))


def invite(db: Database, business_id: int, email: str, *, inviter_id: int) -> str:
    """Invite an email to the team as a member; returns a one-time password to show once.

    With no account for the email, one is made with this password; it joins the business at
    its first sign-in. With an account, the person sees the invitation when they sign in and
    accepts or declines it; the password is then never used. The caller cannot tell which
    (same answer, same work: the password is hashed either way). Raises OwnEmail or
    AlreadyInTeam; never changes a membership."""
    email = email.strip()
    if not EMAIL_RE.match(email):
        raise BusinessError(f"{email!r} is not an email address")
    password = secrets.token_urlsafe(9)
    password_hash = _hasher.hash(password)
    now = clock.now()
    with db.write() as conn:
        inviter = next(iter(conn.execute("SELECT email FROM users WHERE id = ?", (inviter_id,))))
        if inviter["email"].casefold() == email.casefold():
            raise OwnEmail(email)
        if list(conn.execute("""SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
                                WHERE m.business_id = ? AND u.email = ?""", (business_id, email))):
            raise AlreadyInTeam(email)
        # One invitation at a time per email and business: a new one replaces the last.
        conn.execute(f"UPDATE invitations SET cancelled_at = ? WHERE business_id = ? AND email = ? AND {_PENDING}",
                     (now.isoformat(timespec="seconds"), business_id, email))
        users = list(conn.execute("SELECT id, must_change_password FROM users WHERE email = ?", (email,)))
        made_for = None
        if not users:
            conn.execute("INSERT INTO users (email, password_hash, must_change_password, created_at) "
                         "VALUES (?, ?, 1, ?)", (email, password_hash, now.isoformat(timespec="seconds")))
            made_for = conn.last_insert_rowid()
        elif _unused_account_made_here(conn, business_id, users[0]):
            # Added again before they ever signed in: the new password is the one that works.
            conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, users[0]["id"]))
            made_for = users[0]["id"]
        conn.execute(
            """INSERT INTO invitations (business_id, email, role, token_hash, user_id, created_by, created_at,
                                        expires_at) VALUES (?, ?, 'member', ?, ?, ?, ?, ?)""",
            (business_id, email, token_hash(password), made_for, inviter_id, now.isoformat(timespec="seconds"),
             (now + INVITATION_LIFETIME).isoformat(timespec="seconds")))
        audit.record(conn, actor=f"user:{inviter_id}", action="invitation.create", entity="invitation",
                     entity_id=conn.last_insert_rowid(), business_id=business_id, fields=["email", "role"])
    return password


def sent_invitations(db: Database, business_id: int) -> list[dict]:
    """The business's invitations still waiting for an answer, newest first."""
    return db.query(f"""SELECT id, email, role, created_at, expires_at FROM invitations
                        WHERE business_id = ? AND {_PENDING} AND expires_at > ? ORDER BY created_at DESC, id DESC""",
                    (business_id, clock.now_iso()))


def cancel_invitation(db: Database, business_id: int, invitation_id: int, *, actor: str) -> None:
    """The owner takes an invitation back. An account made for it and never used goes too.
    LookupError if the business has no such pending invitation."""
    with db.write() as conn:
        rows = list(conn.execute(f"SELECT id, user_id FROM invitations WHERE id = ? AND business_id = ? AND {_PENDING}",
                                 (invitation_id, business_id)))
        if not rows:
            raise LookupError(invitation_id)
        conn.execute("UPDATE invitations SET cancelled_at = ? WHERE id = ?", (clock.now_iso(), invitation_id))
        audit.record(conn, actor=actor, action="invitation.cancel", entity="invitation", entity_id=invitation_id,
                     business_id=business_id)
        made_for = rows[0]["user_id"]
        if made_for is None:
            return
        user = next(iter(conn.execute("SELECT id, must_change_password FROM users WHERE id = ?", (made_for,))))
        still_invited = list(conn.execute(f"SELECT 1 FROM invitations WHERE user_id = ? AND {_PENDING}", (made_for,)))
        if _unused_account_made_here(conn, business_id, user) and not still_invited:
            conn.execute("UPDATE invitations SET user_id = NULL WHERE user_id = ?", (made_for,))
            conn.execute("DELETE FROM users WHERE id = ?", (made_for,))
            audit.record(conn, actor=actor, action="user.delete", entity="user", entity_id=made_for,
                         business_id=business_id, fields=["email"])


def invitations_for(db: Database, email: str) -> list[dict]:
    """Invitations waiting for this person's answer, with the inviting business's name."""
    return db.query(f"""SELECT i.id, i.role, i.created_at, i.expires_at, b.name AS business_name
                        FROM invitations i JOIN businesses b ON b.id = i.business_id
                        WHERE i.email = ? AND i.{_PENDING.replace(' AND ', ' AND i.')} AND i.expires_at > ?
                        ORDER BY i.created_at, i.id""", (email, clock.now_iso()))


def _pending_for(conn: apsw.Connection, invitation_id: int, user_id: int) -> dict:
    rows = list(conn.execute(
        f"""SELECT i.id, i.business_id, i.role FROM invitations i JOIN users u ON u.email = i.email
            WHERE i.id = ? AND u.id = ? AND i.{_PENDING.replace(' AND ', ' AND i.')} AND i.expires_at > ?""",
        (invitation_id, user_id, clock.now_iso())))
    if not rows:
        raise LookupError(invitation_id)  # someone else's, answered, expired or unknown: all the same
    return rows[0]


def _join(conn: apsw.Connection, invitation: dict, user_id: int) -> None:
    # DO NOTHING: a role someone already holds is never changed by an invitation.
    conn.execute("INSERT INTO memberships (business_id, user_id, role) VALUES (?, ?, ?) "
                 "ON CONFLICT (business_id, user_id) DO NOTHING",
                 (invitation["business_id"], user_id, invitation["role"]))
    conn.execute("UPDATE invitations SET accepted_at = ? WHERE id = ?", (clock.now_iso(), invitation["id"]))
    audit.record(conn, actor=f"user:{user_id}", action="invitation.accept", entity="invitation",
                 entity_id=invitation["id"], business_id=invitation["business_id"], fields=["role"])


def accept_invitation(db: Database, invitation_id: int, *, user_id: int) -> int:
    """The invited person joins; returns the business's id. LookupError unless the invitation
    is addressed to this user's email and still waiting."""
    with db.write() as conn:
        invitation = _pending_for(conn, invitation_id, user_id)
        _join(conn, invitation, user_id)
    return invitation["business_id"]


def decline_invitation(db: Database, invitation_id: int, *, user_id: int) -> None:
    with db.write() as conn:
        invitation = _pending_for(conn, invitation_id, user_id)
        conn.execute("UPDATE invitations SET declined_at = ? WHERE id = ?", (clock.now_iso(), invitation_id))
        audit.record(conn, actor=f"user:{user_id}", action="invitation.decline", entity="invitation",
                     entity_id=invitation_id, business_id=invitation["business_id"])


def join_on_first_sign_in(db: Database, user_id: int) -> None:
    """An account made by an invitation joins that business when its person first signs in
    (the invitation is what they were given the password for)."""
    if not db.query_one(f"SELECT 1 FROM invitations WHERE user_id = ? AND {_PENDING} AND expires_at > ?",
                        (user_id, clock.now_iso())):
        return
    with db.write() as conn:
        for invitation in list(conn.execute(
                f"SELECT id, business_id, role FROM invitations WHERE user_id = ? AND {_PENDING} AND expires_at > ?",
                (user_id, clock.now_iso()))):
            _join(conn, invitation, user_id)


def remove_member(db: Database, business_id: int, user_id: int, *, actor: str) -> bool:
    """Members only: an owner is never removed here (a business keeps its owner)."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT role FROM memberships WHERE business_id = ? AND user_id = ?",
                                 (business_id, user_id)))
        if not rows:
            raise LookupError(user_id)
        if rows[0]["role"] == "owner":
            return False
        # A trigger (m015) gives their leads back to "unassigned" in this same transaction.
        conn.execute("DELETE FROM memberships WHERE business_id = ? AND user_id = ?", (business_id, user_id))
        # Their open sessions in this business end now.
        conn.execute("DELETE FROM sessions WHERE business_id = ? AND user_id = ?", (business_id, user_id))
        audit.record(conn, actor=actor, action="membership.remove", entity="user", entity_id=user_id,
                     business_id=business_id, fields=["role"])
    return True


def set_phone(db: Database, user_id: int, phone: str | None) -> bool:
    """The person's own mobile number (E.164, already normalized; None: none); audited by
    field name only. False when nothing changed."""
    with db.write() as conn:
        rows = list(conn.execute("SELECT phone FROM users WHERE id = ?", (user_id,)))
        if not rows or rows[0]["phone"] == phone:
            return False
        conn.execute("UPDATE users SET phone = ? WHERE id = ?", (phone, user_id))
        audit.record(conn, actor=f"user:{user_id}", action="user.phone", entity="user", entity_id=user_id,
                     fields=["phone"])
    return True


def contact_of(conn: apsw.Connection, user_id: int) -> dict | None:
    """A person's mobile number and language, read in the caller's transaction."""
    rows = list(conn.execute("SELECT phone, language FROM users WHERE id = ?", (user_id,)))
    return rows[0] if rows else None


def phone_of(db: Database, user_id: int) -> str | None:
    row = db.query_one("SELECT phone FROM users WHERE id = ?", (user_id,))
    return row["phone"] if row else None


def named(conn: apsw.Connection, business_id: int) -> dict:
    """The business's id and name, read in the caller's transaction."""
    return next(iter(conn.execute("SELECT id, name FROM businesses WHERE id = ?", (business_id,))))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def set_password(db: Database, user_id: int, password: str, *, keep_session: str | None = None) -> None:
    """A new password for the user. Every session of theirs ends, except the one whose cookie
    is `keep_session` (the person changing it): whoever else held the old one is out."""
    if len(password) < 10:
        raise BusinessError("the password must have at least 10 characters")
    with db.write() as conn:
        conn.execute("UPDATE users SET password_hash = ?, must_change_password = 0 WHERE id = ?",
                     (_hasher.hash(password), user_id))
        conn.execute("DELETE FROM sessions WHERE user_id = ? AND token_hash IS NOT ?",
                     (user_id, token_hash(keep_session) if keep_session else None))
        # Every reset link still out for the account is spent by the new password.
        conn.execute("UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
                     (clock.now_iso(), user_id))
        audit.record(conn, actor=f"user:{user_id}", action="user.password", entity="user", entity_id=user_id,
                     fields=["password"])


# ---- billing state (app.billing decides; these read and write the columns) -------------------------

BILLING_COLUMNS = ("trial_ends_at", "billing_state", "billing_state_at", "billing_restricted_since",
                   "paddle_customer_id", "paddle_subscription_id")


def billing_in(conn: apsw.Connection, business_id: int) -> dict | None:
    """The business's billing columns (with its id, name, language, phone and notification
    phones), read in the caller's transaction; None when there is no such business."""
    rows = list(conn.execute(
        f"SELECT id, name, language, phone, notify_phones, {', '.join(BILLING_COLUMNS)} "
        "FROM businesses WHERE id = ?", (business_id,)))
    return rows[0] if rows else None


def billing_of(db: Database, business_id: int) -> dict | None:
    return billing_in(db.reader(), business_id)


def set_billing(conn: apsw.Connection, business_id: int, **columns: str | None) -> None:
    """Write billing columns (only those named in BILLING_COLUMNS), in the caller's transaction."""
    unknown = set(columns) - set(BILLING_COLUMNS)
    if unknown:
        raise ValueError(f"not billing columns: {sorted(unknown)}")
    if columns:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(f"UPDATE businesses SET {assignments} WHERE id = ?", (*columns.values(), business_id))


def billing_restricted(db: Database, until: str) -> list[int]:
    """Businesses whose billing restriction began at or before `until` (an ISO instant)."""
    return [r["id"] for r in db.query(
        "SELECT id FROM businesses WHERE billing_restricted_since IS NOT NULL AND billing_restricted_since <= ? "
        "AND billing_state IN ('past_due', 'paused', 'canceled')", (until,))]


# ---- closing the account (app.businesses.closing decides; these read and write the columns) --------

def closed_at_in(conn: apsw.Connection, business_id: int) -> str | None:
    rows = list(conn.execute("SELECT closed_at FROM businesses WHERE id = ?", (business_id,)))
    return rows[0]["closed_at"] if rows else None


def set_closed(conn: apsw.Connection, business_id: int, closed_at: str | None) -> None:
    """Close (an ISO instant) or reopen (None) the business, in the caller's transaction."""
    conn.execute("UPDATE businesses SET closed_at = ? WHERE id = ?", (closed_at, business_id))


def closed_before(db: Database, until: str) -> list[int]:
    """Businesses closed at or before `until` (an ISO instant)."""
    return [r["id"] for r in db.query(
        "SELECT id FROM businesses WHERE closed_at IS NOT NULL AND closed_at <= ? ORDER BY id", (until,))]


def erase_contact(conn: apsw.Connection, business_id: int) -> None:
    """A closed business, finally: its phones, greetings and secrets go. Its row and its form
    address stay, so that the address is never anyone else's (slug_taken)."""
    conn.execute("""UPDATE businesses SET phone = NULL, notify_phones = '[]', embed_domains = '[]',
                    greeting_fr = NULL, greeting_en = NULL, ics_token = NULL, pbx_token_hash = NULL,
                    voipms_mailbox = NULL WHERE id = ?""", (business_id,))


# ---- the operator's view (app.ops.operator) ----------------------------------------------------------

def overview(db: Database) -> list[dict]:
    """Every business for the operator: no person's data, only the business's own columns and
    the last time someone signed in to it (its latest session)."""
    return db.query(
        """SELECT b.id, b.slug, b.name, b.billing_state, b.trial_ends_at, b.closed_at, b.created_at,
                  (SELECT max(s.created_at) FROM sessions s WHERE s.business_id = b.id) AS last_session_at
           FROM businesses b ORDER BY b.id""")
