"""Tasks that keep the service itself healthy."""

from __future__ import annotations

from huey import crontab

from app import audit, billing
from app.businesses import closing
from app.ops import health
from app.privacy import retention
from jobs import PRIORITY_HEARTBEAT, PRIORITY_UPKEEP, context, huey


@huey.task(priority=PRIORITY_HEARTBEAT)
def heartbeat() -> str:
    """Proves the queue round-trip works: a request (or the clock) enqueues it, a
    worker runs it, and /healthz reads the time it last ran. Its result (that time,
    under the id /healthz returned) is the only one queue.db keeps, until the next
    heartbeat: results of failed tasks (huey stores their errors) go with it."""
    # The result table holds results only: this queue takes no huey locks and revokes nothing.
    huey.storage.flush_results()
    return health.beat(context.db, "worker")


@huey.periodic_task(crontab(minute="*"), priority=PRIORITY_HEARTBEAT)
def heartbeat_every_minute() -> str:
    return health.beat(context.db, "worker")


@huey.periodic_task(crontab(minute="7"), priority=PRIORITY_UPKEEP)
def retention_sweep() -> dict:
    """Hourly, as a catch-up: whatever is due now, however long the server was down."""
    report = retention.sweep(context.db, context.config)
    closing.finalize_due(context.db, context.config)  # businesses closed more than 7 days ago
    return {"anonymized": len(report.anonymized), "audio_deleted": len(report.audio_deleted)}


@huey.periodic_task(crontab(minute="17", hour="4"), priority=PRIORITY_UPKEEP)
def audit_verify_daily() -> bool:
    return audit.check_chain(context.db.reader())


@huey.periodic_task(crontab(minute="27"), priority=PRIORITY_UPKEEP)
def billing_sweep() -> int:
    """Hourly: SMS the owners of a business whose billing grace period just ended (read-only)."""
    return billing.sweep(context.db, context.config)
