"""Webhook tasks: each carries a delivery id, never a body."""

from __future__ import annotations

import logging

from huey import crontab

from app import db as db_mod
from app import integrations
from jobs import PRIORITY_WEBHOOK, context, huey

log = logging.getLogger("capteo.webhooks")


@huey.task(priority=PRIORITY_WEBHOOK)
def dispatch() -> None:
    """Events committed by the triggers of m016 into deliveries, each then sent."""
    for delivery_id in integrations.dispatch(context.db, context.config):
        deliver(delivery_id)


@huey.task(priority=PRIORITY_WEBHOOK)
def deliver(delivery_id: int) -> None:
    integrations.send(context.db, context.config, delivery_id)


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_WEBHOOK)
def sweep_webhooks() -> int:
    """What a lost wake-up or a crash left, and the retries that are due."""
    ids = integrations.dispatch(context.db, context.config) + integrations.due(context.db)
    for delivery_id in ids:
        deliver(delivery_id)
    integrations.prune(context.db)
    return len(ids)


def wake() -> None:
    """After a commit: never raises into the transaction's caller (the data is committed;
    a lost wake-up is found by the minute sweep)."""
    try:
        dispatch()
    except Exception:  # the queue unwritable or not configured (a CLI command, a test)
        log.warning("webhook dispatch not woken; the sweep will find the events")


# An event row (written by a trigger, with the change) wakes the dispatcher after the commit.
db_mod.on_insert("webhook_events", wake)
