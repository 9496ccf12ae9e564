"""Twilio's Messages API, over HTTP with httpx (REFERENCE.md has the wire format).

`send()` returns the message SID or raises `TwilioError`, which says whether a
later retry can succeed: 20429 (rate limited), 5xx, network failures and
credentials refused (20003: the operator may fix them) are retryable; an invalid,
opted-out or non-SMS number (21211, 21610, 21614, ...) is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.config import Config
from app.messaging import client

RETRYABLE_CODES = {20429, 20003}


class TwilioError(Exception):
    def __init__(self, code: str, message: str, retryable: bool):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass
class TwilioClient:
    account_sid: str
    auth_user: str
    auth_secret: str
    from_number: str = ""
    messaging_service_sid: str = ""
    api_base: str = "https://api.twilio.com"

    @classmethod
    def from_config(cls, config: Config) -> TwilioClient | None:
        """None when Twilio is not configured: messages then wait in the outbox."""
        sid = config.twilio.account_sid
        secret = config.provider_secret("twilio_auth_token")
        sender = config.twilio.from_number or config.twilio.messaging_service_sid
        if not (sid and secret and sender):
            return None
        return cls(
            account_sid=sid,
            auth_user=config.twilio.api_key_sid or sid,
            auth_secret=secret,
            from_number=config.twilio.from_number,
            messaging_service_sid=config.twilio.messaging_service_sid,
            api_base=config.twilio.api_base.rstrip("/"),
        )

    def send(self, to: str, body: str) -> str:
        import httpx  # at the first message, not with the app (app.messaging.client)

        data = {"To": to, "Body": body}
        if self.messaging_service_sid:
            data["MessagingServiceSid"] = self.messaging_service_sid
        else:
            data["From"] = self.from_number
        url = f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = client.shared().post(url, data=data, auth=(self.auth_user, self.auth_secret))
        except httpx.HTTPError as e:
            raise TwilioError("network", str(e) or type(e).__name__, retryable=True) from e
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code < 300 and payload.get("sid"):
            return payload["sid"]
        code = payload.get("code")
        message = payload.get("message") or f"HTTP {response.status_code}"
        retryable = response.status_code >= 500 or response.status_code == 429 or code in RETRYABLE_CODES
        raise TwilioError(str(code or response.status_code), message, retryable)
