"""Health of the service: database, queue, worker heartbeat, models (on disk and usable).

Models are validated once in the background (`models.validate_in_background`, started at
the first /healthz if nobody started it before); until then `usable` is null."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

from app import businesses, clock
from app.config import Config
from app.db import Database
from app.voicemail import models

# A worker beats every minute (periodic task) and whenever /healthz asks for one.
ALIVE_WITHIN = timedelta(seconds=90)
_ASK_EVERY_S = 15.0
_last_ask = 0.0
_ask_lock = threading.Lock()


def beat(db: Database, name: str) -> str:
    at = clock.now_iso()
    with db.write() as conn:
        conn.execute(
            "INSERT INTO heartbeats (name, at) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET at = excluded.at",
            (name, at),
        )
    return at


def last_beat(db: Database, name: str) -> str | None:
    row = db.query_one("SELECT at FROM heartbeats WHERE name = ?", (name,))
    return row["at"] if row else None


def should_ask_for_beat() -> bool:
    """At most one heartbeat task every few seconds, however often /healthz is polled."""
    global _last_ask
    with _ask_lock:
        if time.monotonic() - _last_ask < _ASK_EVERY_S:
            return False
        _last_ask = time.monotonic()
        return True


def status(db: Database, config: Config, queue_depth: int | None) -> dict:
    """The JSON /healthz answers; `ok` is false when the database is unusable."""
    try:
        businesses.count(db)
        database = "ok"
    except Exception as e:  # any failure to read is what the operator must see
        database = f"error: {e}"
    beat_at = last_beat(db, "worker") if database == "ok" else None
    alive = beat_at is not None and clock.now() - datetime.fromisoformat(beat_at) <= ALIVE_WITHIN
    state = models.health(config)  # never loads a model here
    return {
        "ok": database == "ok",
        "database": database,
        "queue_depth": queue_depth,
        "worker_alive": alive,
        "worker_last_beat": beat_at,
        "models": {k: {"name": v["name"], "present": v["present"], "usable": v["usable"],
                       "problem": v["code"] if v["usable"] is False else None} for k, v in state.items()},
    }
