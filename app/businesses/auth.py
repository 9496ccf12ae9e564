"""Sign-in sessions: a random token in an HttpOnly cookie, its SHA-256 in `sessions`.

A token is created only at sign-in (so a session id planted before sign-in is
worthless: no fixation) and its row is deleted at sign-out (the cookie is dead
even if someone kept a copy). Rows live in `capteo.db`: sessions survive a restart.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta

from app import audit, businesses, clock
from app.db import Database

COOKIE = "capteo_session"
# With the person's other businesses (the header's switcher) and how many invitations wait
# for their answer (the inbox's banner): two small indexed reads per request.
_SESSION_COLUMNS = """u.id AS user_id, m.business_id, u.email, u.name AS user_name, m.role, u.must_change_password,
                      b.slug, b.name AS business_name, b.timezone, b.language AS business_language,
                      b.closed_at AS business_closed_at,
                      (SELECT json_group_array(json_object('id', o.id, 'name', o.name)) FROM (
                          SELECT ob.id, ob.name FROM memberships om JOIN businesses ob ON ob.id = om.business_id
                          WHERE om.user_id = u.id ORDER BY ob.name, ob.id) o) AS businesses_json,
                      (SELECT count(*) FROM invitations i WHERE i.email = u.email AND i.accepted_at IS NULL
                          AND i.declined_at IS NULL AND i.cancelled_at IS NULL AND i.expires_at > :now)
                          AS invitations_waiting"""


def _with_businesses(row: dict | None) -> dict | None:
    if row is not None:
        row["businesses"] = json.loads(row.pop("businesses_json") or "[]")
    return row

LIFETIME = timedelta(days=14)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(db: Database, *, user_id: int, business_id: int) -> str:
    """A new session token for a user working in a business."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    with db.write() as conn:
        conn.execute(
            "INSERT INTO sessions (token_hash, user_id, business_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (_hash(token), user_id, business_id, now.isoformat(timespec="seconds"),
             (now + LIFETIME).isoformat(timespec="seconds")),
        )
        conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now.isoformat(timespec="seconds"),))
        audit.record(conn, actor=f"user:{user_id}", action="session.start", entity="user",
                     entity_id=user_id, business_id=business_id)
    return token


def session_for(db: Database, token: str | None) -> dict | None:
    """The live session (with user and business) for a cookie value, or None."""
    if not token:
        return None
    return _with_businesses(db.query_one(
        f"""SELECT {_SESSION_COLUMNS}
           FROM sessions s
           JOIN users u ON u.id = s.user_id
           JOIN memberships m ON m.user_id = s.user_id AND m.business_id = s.business_id
           JOIN businesses b ON b.id = s.business_id
           WHERE s.token_hash = :token AND s.expires_at > :now""",
        {"token": _hash(token), "now": clock.now_iso()},
    ))


def switch_business(db: Database, *, user_id: int, business_id: int, token: str | None) -> bool:
    """Work in another of the user's businesses: the session `token` moves there (and, for
    Cloudflare Access mode, which has no session rows, the user's choice is kept). False,
    and nothing changes, when the user is not a member of that business."""
    with db.write() as conn:
        if not list(conn.execute("SELECT 1 FROM memberships WHERE user_id = ? AND business_id = ?",
                                 (user_id, business_id))):
            return False
        if token:
            conn.execute("UPDATE sessions SET business_id = ? WHERE token_hash = ? AND user_id = ?",
                         (business_id, _hash(token), user_id))
        conn.execute("UPDATE users SET current_business_id = ? WHERE id = ?", (business_id, user_id))
        audit.record(conn, actor=f"user:{user_id}", action="session.switch", entity="user",
                     entity_id=user_id, business_id=business_id)
    return True


def end_session(db: Database, token: str | None) -> None:
    if not token:
        return
    with db.write() as conn:
        for row in list(conn.execute(
            "SELECT user_id, business_id FROM sessions WHERE token_hash = ?", (_hash(token),)
        )):
            audit.record(conn, actor=f"user:{row['user_id']}", action="session.end", entity="user",
                         entity_id=row["user_id"], business_id=row["business_id"])
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (_hash(token),))



def session_for_email(db: Database, email: str) -> dict | None:
    """Cloudflare Access mode: the verified email's user, in the business they last switched
    to, else their first. An account made by an invitation joins its business on first use."""
    query = f"""SELECT {_SESSION_COLUMNS} FROM users u
                JOIN memberships m ON m.user_id = u.id JOIN businesses b ON b.id = m.business_id
                WHERE u.email = :email ORDER BY b.id IS NOT u.current_business_id, b.name LIMIT 1"""
    found = db.query_one(query, {"email": email, "now": clock.now_iso()})
    if found is None:
        user = db.query_one("SELECT id FROM users WHERE email = ?", (email,))
        if user is None:
            return None
        businesses.join_on_first_sign_in(db, user["id"])
        found = db.query_one(query, {"email": email, "now": clock.now_iso()})
    return _with_businesses(found)


class SignInRequired(Exception):
    """Raised by the `signed_in` guard (app/http.py); the app answers with the sign-in page (or a 401 in
    Cloudflare mode, where Cloudflare itself signs people in)."""


class PasswordChangeDue(Exception):
    """A person signed in with a one-time password: they choose their own before anything else."""


class BusinessClosed(Exception):
    """The business was closed by its owner (app.businesses.closing): only the pages to export,
    reopen and leave answer; the owner is sent to the reopen page, a member is told."""


class OwnersOnly(Exception):
    """A member asked for an owner's page (settings, team)."""
