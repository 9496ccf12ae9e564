"""Voicemail tasks: each carries a voicemail id, never audio or text."""

from __future__ import annotations

from huey import crontab

from app import voicemail
from app.voicemail import voipms
from app.voicemail.engine import ModelEngine
from app.voicemail.service import RemoteEngine
from jobs import PRIORITY_VOICEMAIL, context, huey, intake, models_huey

_engine: ModelEngine | RemoteEngine | None = None


def engine() -> ModelEngine | RemoteEngine:
    """One engine per process: models load once and stay loaded (a new one only when
    `jobs.configure()` was given another configuration, as each test does). With
    `[models] service_url` set, the models service on the GPU box does the work instead."""
    global _engine
    if _engine is None or _engine.config is not context.config:
        config = context.config
        _engine = RemoteEngine(config) if config.models.service_url else ModelEngine(config)
    return _engine


@models_huey.task(priority=PRIORITY_VOICEMAIL)
def process(voicemail_id: int) -> None:
    # The lead and its SMS were committed with the voicemail: the owner hears of it now,
    # not after the transcription (minutes, or never without a speech model).
    lead_id = voicemail.lead_id_of(context.db, voicemail_id)
    if lead_id is not None:
        intake.wake_lead(lead_id)
    result = voicemail.process(context.db, context.config, engine(), voicemail_id, context.config.public_url)
    lead_id = voicemail.lead_id_of(context.db, voicemail_id)
    if result.state == "lead_created" and lead_id is not None:
        intake.wake_lead(lead_id)  # a postal code to place on the map; an older voicemail's SMS


def release_leases() -> int:
    return voicemail.release_leases(context.db)


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_VOICEMAIL)
def sweep_voicemail() -> int:
    """Wake what is due or stuck; a voicemail waiting for the speech model is woken
    as soon as the model is on disk. Where the models run in other processes
    (`run.py worker --models`), this one does not load them to ask: every voicemail still
    to transcribe is woken, and the models' worker leaves it waiting if it has no model."""
    include_received = True if context.models_elsewhere else engine().speech_ready()
    ids = voicemail.due(context.db, include_received=include_received)
    for voicemail_id in ids:
        process(voicemail_id)
    return len(ids)


@huey.periodic_task(crontab(minute="*/2"), priority=PRIORITY_VOICEMAIL)
def poll_voipms() -> int:
    client = voipms.VoipmsClient.from_config(context.config)
    if client is None:
        return 0
    return voipms.poll(context.db, context.config, client, process)
