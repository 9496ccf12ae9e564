"""Tasks that finish a lead's arrival: the owner's SMS and the map coordinates.

Each task carries an id only. The rows in capteo.db are the truth; the periodic
sweeps re-wake anything a lost task (a worker killed mid-run) left behind.
"""

from __future__ import annotations

from huey import crontab

from app.messaging import geocoding, outbox
from app.messaging.twilio import TwilioClient
from jobs import PRIORITY_BULK, PRIORITY_SMS, context, huey

# The tasks return nothing: the outcome is in capteo.db, and a returned value would be a
# row in queue.db that nobody reads.


@huey.task(priority=PRIORITY_SMS)
def send_sms(message_id: int) -> None:
    outbox.send(context.db, TwilioClient.from_config(context.config), message_id)


@huey.task(priority=PRIORITY_BULK)
def geocode(lead_id: int) -> None:
    geocoding.geocode_lead(context.db, geocoding.GeocoderClient.from_config(context.config), lead_id)


def wake_lead(lead_id: int) -> None:
    """Wake the follow-up work of a committed lead (its pending SMS, its geocoding).
    If this is lost (queue unwritable, process killed), the sweeps find the work anyway."""
    for message_id in outbox.pending_for_lead(context.db, lead_id):
        send_sms(message_id)
    if geocoding.is_pending(context.db, lead_id):
        geocode(lead_id)


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_SMS)
def sweep_outbox() -> int:
    if TwilioClient.from_config(context.config) is None:
        return 0  # not configured: messages wait, visible as "not sent"
    ids = outbox.due(context.db)
    for message_id in ids:
        send_sms(message_id)
    return len(ids)


@huey.periodic_task(crontab(minute="*/5"), priority=PRIORITY_BULK)
def sweep_geocoding() -> int:
    ids = geocoding.pending(context.db)
    for lead_id in ids:
        geocode(lead_id)
    return len(ids)
