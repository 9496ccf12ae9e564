"""VoIP.ms REST API (REFERENCE.md): list, download (base64) and delete voicemail.

There is no webhook, so a periodic task polls. A message is deleted there only
after its audio file and row are committed here; a message seen twice (a crash
between the commit and the delete) is recognised by its external id.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import httpx

from app.config import Config

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class VoipmsError(Exception):
    pass


@dataclass
class VoipmsClient:
    api_url: str
    username: str
    password: str

    @classmethod
    def from_config(cls, config: Config) -> "VoipmsClient | None":
        password = config.provider_secret("voipms_password")
        if not (config.get("voipms", "username") and password):
            return None
        return cls(config.get("voipms", "api_url"), config.get("voipms", "username"), password)

    def _call(self, method: str, **params) -> dict:
        try:
            response = httpx.get(self.api_url, params={"api_username": self.username, "api_password": self.password,
                                                       "method": method, **params}, timeout=TIMEOUT)
            payload = response.json()
        except (httpx.HTTPError, ValueError) as e:
            raise VoipmsError(f"{method}: {e}") from e
        status = payload.get("status")
        if status == "no_messages":
            return {"messages": []}
        if status != "success":
            raise VoipmsError(f"{method}: {status or response.status_code}")
        return payload

    def messages(self, mailbox: str, folder: str = "INBOX") -> list[dict]:
        return self._call("getVoicemailMessages", mailbox=mailbox, folder=folder).get("messages", [])

    def audio(self, mailbox: str, folder: str, message_num: str) -> bytes:
        payload = self._call("getVoicemailMessageFile", mailbox=mailbox, folder=folder, message_num=message_num,
                             format="wav")
        message = payload.get("message")
        if isinstance(message, list):  # sometimes an object, sometimes a one-item list
            message = message[0] if message else {}
        data = (message or {}).get("data")
        if not data:
            raise VoipmsError("getVoicemailMessageFile: no data")
        return base64.b64decode(data)

    def delete(self, mailbox: str, folder: str, message_num: str) -> None:
        self._call("delMessages", mailbox=mailbox, folder=folder, message_num=message_num)


def external_id(mailbox: str, message: dict) -> str:
    # message_num is renumbered when messages are deleted; the date and caller id are not.
    return f"voipms:{mailbox}:{message.get('folder', 'INBOX')}:{message.get('date')}:{message.get('callerid')}"


def caller_e164(callerid: str | None) -> str | None:
    from app import forms

    digits = "".join(c for c in (callerid or "") if c.isdigit())
    return forms.normalize_phone(digits) if digits else None
