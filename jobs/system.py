"""Tasks that keep the service itself healthy."""

from __future__ import annotations

from huey import crontab

from app import health
from jobs import context, huey


@huey.task()
def heartbeat() -> str:
    """Proves the queue round-trip works: a request (or the clock) enqueues it, a
    worker runs it, and /healthz reads the time it last ran."""
    return health.beat(context.db, "worker")


@huey.periodic_task(crontab(minute="*"))
def heartbeat_every_minute() -> str:
    return health.beat(context.db, "worker")
