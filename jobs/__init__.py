"""The one Huey instance, and the resources tasks share.

Huey starts in immediate mode with in-memory storage so that importing this
module touches no file; `configure()` points it at `<data dir>/queue.db` once the
configuration is known. Task modules import `huey` from here and stay thin:
they call domain functions in `app/`, with ids, never personal data.
"""

from __future__ import annotations

from huey import SqliteHuey

from app.config import Config
from app.db import Database

huey = SqliteHuey("capteo", immediate=True)


class _Context:
    config: Config | None = None
    db: Database | None = None


context = _Context()


def configure(config: Config, db: Database) -> SqliteHuey:
    """Bind the queue to the data directory (its own file, WAL, 5 s busy timeout)."""
    context.config = config
    context.db = db
    huey.storage_kwargs = {
        "filename": str(config.queue_path),
        "journal_mode": "wal",
        "timeout": 5,
    }
    if huey.immediate:
        huey.immediate = False  # the setter builds the SQLite storage from storage_kwargs
    else:
        huey.storage = huey.create_storage()
    return huey


def queue_depth() -> int:
    return huey.pending_count()


# Importing the task modules registers their tasks on `huey`.
from jobs import intake, system, voicemail  # noqa: E402,F401
