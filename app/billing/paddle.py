"""Paddle Billing on the wire: the `Paddle-Signature` of its webhooks, and the one API call
Capteo makes (a customer-portal session). REFERENCE.md, "Paddle Billing webhooks".

Signature: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>…]` (several h1 while Paddle rotates
the secret); valid when HMAC_SHA256(secret, f"{ts}:{raw_body}") equals one h1 (constant-time
compare) and ts is within the tolerance. We also accept several secrets of our own (the
configured secret may list them, comma-separated) so that rotation never drops an event.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

SANDBOX_API = "https://sandbox-api.paddle.com"
PRODUCTION_API = "https://api.paddle.com"
TIMEOUT = 10.0


class SignatureError(ValueError):
    """The Paddle-Signature header is missing, malformed, stale or matches no secret."""


def sign(secret: str, timestamp: int, raw_body: bytes) -> str:
    """The h1 value Paddle computes for this body at this time."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b":" + raw_body, hashlib.sha256).hexdigest()


def parse_header(header: str | None) -> tuple[int, list[str]]:
    """(ts, [h1, …]) from the header; SignatureError when it is missing or malformed."""
    if not header:
        raise SignatureError("missing Paddle-Signature")
    ts: int | None = None
    h1: list[str] = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed Paddle-Signature")
        if key == "ts":
            if ts is not None or not value.isdigit() or len(value) > 12:
                raise SignatureError("malformed timestamp")
            ts = int(value)
        elif key == "h1":
            h1.append(value.strip().lower())
        # Other schemes (a future h2) are not ours to judge: skipped.
    if ts is None or not h1:
        raise SignatureError("malformed Paddle-Signature")
    return ts, h1


def verify(header: str | None, raw_body: bytes, secrets: Iterable[str], *, now: datetime,
           tolerance_seconds: int) -> None:
    """Raise SignatureError unless the header signs exactly `raw_body` with one of `secrets`,
    at a time within `tolerance_seconds` of `now` (either side)."""
    ts, signatures = parse_header(header)
    if abs(now.timestamp() - ts) > tolerance_seconds:
        raise SignatureError("stale timestamp")
    matched = False
    for secret in secrets:
        expected = sign(secret, ts, raw_body)
        for candidate in signatures:
            # Every comparison is made (no early exit): the time taken says nothing.
            matched |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("signature mismatch")


class PaddleError(Exception):
    """The Paddle API refused or could not be reached."""


class PaddleClient:
    """The customer-portal session: POST /customers/{customer_id}/portal-sessions."""

    def __init__(self, api_base: str, api_key: str, *, transport: httpx.BaseTransport | None = None):
        self.api_base = api_base.rstrip("/")
        self.api_key = api_key
        self.transport = transport

    def portal_session(self, customer_id: str, subscription_ids: list[str]) -> str:
        """The URL of a new portal session for this customer (the general overview)."""
        r = self._post(f"/customers/{_path_id(customer_id, 'customer')}/portal-sessions",
                       {"subscription_ids": subscription_ids})
        try:
            url = r.json()["data"]["urls"]["general"]["overview"]
        except (ValueError, KeyError, TypeError):
            raise PaddleError("unexpected answer from Paddle") from None
        if not isinstance(url, str) or not url.startswith("https://"):
            raise PaddleError("unexpected portal address")
        return url

    def cancel_subscription(self, subscription_id: str) -> None:
        """Cancel the subscription now (POST /subscriptions/{id}/cancel, effective immediately)."""
        self._post(f"/subscriptions/{_path_id(subscription_id, 'subscription')}/cancel",
                   {"effective_from": "immediately"})

    def _post(self, path: str, body: dict) -> httpx.Response:
        """One authenticated POST to Paddle's API; PaddleError unless it answered 2xx."""
        import httpx  # at the first call, not with the app (app.messaging.client says why)

        try:
            with httpx.Client(timeout=TIMEOUT, transport=self.transport) as client:
                r = client.post(f"{self.api_base}{path}", json=body,
                                headers={"Authorization": f"Bearer {self.api_key}",
                                         "Content-Type": "application/json", "Accept": "application/json"})
        except httpx.HTTPError as e:
            raise PaddleError(f"Paddle unreachable: {type(e).__name__}") from None
        if r.status_code >= 300:
            raise PaddleError(f"Paddle answered {r.status_code}")
        return r


def _path_id(value: str, what: str) -> str:
    """A Paddle id that can sit in a URL path as it is (no slash, no query)."""
    if not value or "/" in value or "?" in value or "#" in value:
        raise PaddleError(f"no valid {what} id")
    return value
