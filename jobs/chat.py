"""Chat tasks: each carries a conversation id, never a message."""

from __future__ import annotations

from huey import crontab

from app import businesses, chat
from jobs import PRIORITY_CHAT, PRIORITY_SMS, context, huey, intake, models_huey


@models_huey.task(priority=PRIORITY_CHAT)
def reply(conversation_id: int) -> None:
    """The assistant's reply, written by the models' worker (the web server never waits on
    the model). If it is late, the page's poll or the sweep sends the guided reply instead."""
    from app.chat import assistant
    from jobs.voicemail import engine

    conversation = chat.get_any(context.db, conversation_id)
    if conversation is None:
        return
    business = businesses.get(context.db, conversation["business_id"])
    done = chat.respond(context.db, context.config, business, conversation_id,
                        assistant.responder(engine()), engine="assistant")
    if done.lead_id is not None:
        intake.wake_lead(done.lead_id)


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_SMS)
def sweep_chat() -> int:
    """Late replies answered by the guided engine, quiet conversations with a phone number
    made leads, old conversations without a lead erased."""
    report = chat.sweep(context.db, context.config, lambda business_id: businesses.get(context.db, business_id))
    for lead_id in report.leads:
        intake.wake_lead(lead_id)
    return len(report.leads) + len(report.late)
