"""VoIP.ms REST API (REFERENCE.md): list, download (base64) and delete voicemail.

There is no webhook, so a periodic task polls. A message is deleted there only
after its audio file and row are committed here; a message seen twice (a crash
between the commit and the delete) is recognised by its external id.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass

from app import businesses, normalize, voicemail
from app.config import Config
from app.db import Database
from app.voicemail.audio import AudioRejected

log = logging.getLogger("capteo.voicemail")


class VoipmsError(Exception):
    pass


@dataclass
class VoipmsClient:
    api_url: str
    username: str
    password: str

    @classmethod
    def from_config(cls, config: Config) -> VoipmsClient | None:
        password = config.provider_secret("voipms_password")
        if not (config.voipms.username and password):
            return None
        return cls(config.voipms.api_url, config.voipms.username, password)

    def _call(self, method: str, **params) -> dict:
        import httpx  # at the first call, not with the app (app.messaging.client says why)

        try:
            response = httpx.get(self.api_url, params={"api_username": self.username, "api_password": self.password,
                                                       "method": method, **params},
                                 timeout=httpx.Timeout(30.0, connect=5.0))
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
    digits = "".join(c for c in (callerid or "") if c.isdigit())
    return normalize.phone(digits) if digits else None


def poll(db: Database, config: Config, client: VoipmsClient, on_new: Callable[[int], object]) -> int:
    """List each business's mailbox, keep each message here, then delete it there.
    `on_new(voicemail_id)` wakes the processing of each message kept for the first time.
    Returns how many were kept."""
    kept = 0
    for business in businesses.with_voipms_mailbox(db):
        mailbox = business["voipms_mailbox"]
        try:
            for message in client.messages(mailbox):
                folder, num = message.get("folder", "INBOX"), str(message["message_num"])
                try:
                    data = client.audio(mailbox, folder, num)
                    voicemail_id, created = voicemail.receive(
                        db, config, business_id=business["id"], data=data,
                        caller_id=caller_e164(message.get("callerid")), source="voipms",
                        external_id=external_id(mailbox, message), actor="system:voipms")
                except AudioRejected as e:
                    log.warning("VoIP.ms message %s/%s refused: %s; left there", mailbox, num, e)
                    continue
                # Committed here: only now may it go from VoIP.ms.
                client.delete(mailbox, folder, num)
                if created:
                    kept += 1
                    on_new(voicemail_id)
        except VoipmsError:
            log.exception("VoIP.ms polling failed for mailbox %s; next poll retries", mailbox)
    return kept
