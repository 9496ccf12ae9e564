"""A way back in without the operator: a one-time link by email (when the operator set up
SMTP), or an owner resetting a member's password from the team page.

The link's token is random, kept only as its SHA-256, valid one hour and once. Asking for
a link answers the same whether or not the email has an account, and takes the same time:
the email is sent from a background thread either way.
"""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import timedelta

import apsw

from app import audit, clock, i18n
from app.businesses import hash_password, set_password, token_hash
from app.db import Database
from app.i18n import N_
from app.messaging.email import EmailError, Mailer
from app.messaging.twilio import TwilioClient, TwilioError

LIFETIME = timedelta(hours=1)
log = logging.getLogger("capteo.recovery")

SUBJECT = N_("Your Capteo password")
BODY = N_("Someone (we hope you) asked to choose a new password for your Capteo account. Open this link "
          "within an hour to choose it:\n\n%(link)s\n\nIf it was not you, ignore this message: your "
          "password stays as it is.")
SMS_BODY = N_("Capteo: to choose a new password, open this link within an hour: %(link)s "
              "(not you? ignore this message)")


def request_link(db: Database, mailer: Mailer | None, email: str, *, lang: str, public_url: str,
                 sms: TwilioClient | None = None) -> None:
    """Make a link for this email's account, if there is one, and send it; by SMS too when
    the account has a mobile number and Twilio is configured (`sms`). Returns the same
    nothing in every case; the sending happens in the background. The link is never
    stored (only its token's hash): the SMS goes straight to Twilio, not through the outbox."""
    user = db.query_one("SELECT id, email, phone FROM users WHERE email = ?", (email.strip()[:254],))
    phone = user["phone"] if user is not None and sms is not None else None
    if user is None or (mailer is None and not phone):
        return
    token = secrets.token_urlsafe(32)
    now = clock.now()
    with db.write() as conn:
        conn.execute("INSERT INTO password_resets (user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?)",
                     (user["id"], token_hash(token), now.isoformat(timespec="seconds"),
                      (now + LIFETIME).isoformat(timespec="seconds")))
        audit.record(conn, actor="public:password-reset", action="user.password_reset_link", entity="user",
                     entity_id=user["id"], fields=(["email"] if mailer else []) + (["phone"] if phone else []))
    link = f"{public_url}/{lang}/password/reset/{token}"
    subject = i18n.gettext_in(lang, SUBJECT)
    body = i18n.gettext_in(lang, BODY) % {"link": link}
    text = i18n.gettext_in(lang, SMS_BODY) % {"link": link} if phone else ""
    threading.Thread(target=_send, args=(mailer, user["email"], subject, body, sms, phone, text),
                     daemon=True).start()


def _send(mailer: Mailer | None, to: str, subject: str, body: str, sms: TwilioClient | None = None,
          phone: str | None = None, text: str = "") -> None:
    if mailer is not None:
        try:
            mailer.send(to, subject, body)
        except Exception as e:  # the address stays out of the log; the SMS still goes
            log.warning("password-reset email not sent: %s", type(e).__name__ if not isinstance(e, EmailError) else e)
    if sms is not None and phone:
        try:
            sms.send(phone, text)
        except TwilioError as e:  # the number stays out of the log (Twilio's message may quote it)
            log.warning("password-reset SMS not sent: %s", e.code)


def user_for(db: Database, token: str) -> dict | None:
    """The user a live, unused link belongs to."""
    if not token or len(token) > 100:
        return None
    return db.query_one(
        "SELECT u.id, u.email FROM password_resets r JOIN users u ON u.id = r.user_id "
        "WHERE r.token_hash = ? AND r.used_at IS NULL AND r.expires_at > ?",
        (token_hash(token), clock.now_iso()))


def reset_with_link(db: Database, token: str, password: str) -> bool:
    """Set the password from a link (once); every session of the account ends."""
    with db.write() as conn:
        user = user_for(db, token)
        if user is None:
            return False
        conn.execute("UPDATE password_resets SET used_at = ? WHERE token_hash = ?",
                     (clock.now_iso(), token_hash(token)))
        set_password(db, user["id"], password)  # the same transaction: every session of the account ends
        audit.record(conn, actor=f"user:{user['id']}", action="user.password_reset", entity="user",
                     entity_id=user["id"], fields=["password"])
    return True


def spend_links(conn: apsw.Connection, user_id: int) -> None:
    """A new password, however it was set, ends every reset link still out for the account."""
    conn.execute("UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL",
                 (clock.now_iso(), user_id))


def reset_by_operator(db: Database, email: str) -> str | None:
    """The operator's way (`run.py user password EMAIL`) for someone with no owner to ask:
    a new one-time password, to be changed at the next sign-in; every session ends.
    None when no account has this email."""
    password = secrets.token_urlsafe(9)
    with db.write() as conn:
        rows = list(conn.execute("SELECT id FROM users WHERE email = ?", (email.strip(),)))
        if not rows:
            return None
        user_id = rows[0]["id"]
        conn.execute("UPDATE users SET password_hash = ?, must_change_password = 1 WHERE id = ?",
                     (hash_password(password), user_id))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        spend_links(conn, user_id)
        audit.record(conn, actor="operator", action="user.password_reset_by_operator", entity="user",
                     entity_id=user_id, fields=["password"])
    return password


def reset_member(db: Database, business_id: int, user_id: int, *, actor: str) -> str:
    """An owner gives a member a new one-time password (shown once, to be changed at the
    next sign-in); the member's sessions end. LookupError for anyone but a member of this
    business and of no other: a password is account-wide, so resetting someone who also
    works elsewhere would hand this owner their other businesses (they use the link)."""
    password = secrets.token_urlsafe(9)
    with db.write() as conn:
        rows = list(conn.execute("SELECT business_id, role FROM memberships WHERE user_id = ?", (user_id,)))
        if [(r["business_id"], r["role"]) for r in rows] != [(business_id, "member")]:
            raise LookupError(user_id)
        conn.execute("UPDATE users SET password_hash = ?, must_change_password = 1 WHERE id = ?",
                     (hash_password(password), user_id))
        conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        spend_links(conn, user_id)
        audit.record(conn, actor=actor, action="user.password_reset_by_owner", entity="user", entity_id=user_id,
                     business_id=business_id, fields=["password"])
    return password
