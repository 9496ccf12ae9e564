"""Voicemail tasks: each carries a voicemail id, never audio or text."""

from __future__ import annotations

import logging

from huey import crontab

from app import voicemail
from app.voicemail import audio as vm_audio
from app.voicemail.engine import ModelEngine
from app.voicemail.voipms import VoipmsClient, VoipmsError, caller_e164, external_id
from jobs import context, huey

log = logging.getLogger("capteo.voicemail")
_engine: ModelEngine | None = None


def engine() -> ModelEngine:
    """One engine per process: models load once and stay loaded."""
    global _engine
    if _engine is None:
        _engine = ModelEngine(context.config)
    return _engine


@huey.task()
def process(voicemail_id: int) -> str:
    result = voicemail.process(context.db, context.config, engine(), voicemail_id, context.config.public_url)
    if result.state == "lead_created":
        _wake_follow_ups(voicemail_id)
    return result.state


def _wake_follow_ups(voicemail_id: int) -> None:
    from jobs import intake

    row = context.db.query_one("SELECT lead_id FROM voicemails WHERE id = ?", (voicemail_id,))
    intake.wake_lead(row["lead_id"])


@huey.periodic_task(crontab(minute="*"))
def sweep_voicemail() -> int:
    """Wake what is due or stuck; a voicemail waiting for the speech model is woken
    as soon as the model is on disk."""
    ids = voicemail.due(context.db, include_received=engine().speech_ready())
    for voicemail_id in ids:
        process(voicemail_id)
    return len(ids)


@huey.periodic_task(crontab(minute="*/2"))
def poll_voipms() -> int:
    """List each business's mailbox, keep each message here, then delete it there."""
    client = VoipmsClient.from_config(context.config)
    if client is None:
        return 0
    kept = 0
    for business in context.db.query("SELECT id, voipms_mailbox FROM businesses WHERE voipms_mailbox IS NOT NULL "
                                     "AND voipms_mailbox != ''"):
        mailbox = business["voipms_mailbox"]
        try:
            for message in client.messages(mailbox):
                folder, num = message.get("folder", "INBOX"), str(message["message_num"])
                try:
                    data = client.audio(mailbox, folder, num)
                    voicemail_id, created = voicemail.receive(
                        context.db, context.config, business_id=business["id"], data=data,
                        caller_id=caller_e164(message.get("callerid")), source="voipms",
                        external_id=external_id(mailbox, message), actor="system:voipms")
                except vm_audio.AudioRejected as e:
                    log.warning("VoIP.ms message %s/%s refused: %s; left there", mailbox, num, e)
                    continue
                # Committed here: only now may it go from VoIP.ms.
                client.delete(mailbox, folder, num)
                if created:
                    kept += 1
                    process(voicemail_id)
        except VoipmsError:
            log.exception("VoIP.ms polling failed for mailbox %s; next poll retries", mailbox)
    return kept
