"""The one Huey instance, and the resources tasks share.

Huey starts in immediate mode with in-memory storage so that importing this
module touches no file; `configure()` points it at `<data dir>/queue.db` once the
configuration is known. Task modules import `huey` from here and stay thin:
they call domain functions in `app/`, with ids, never personal data.
"""

from __future__ import annotations

import signal
import threading

from huey import SqliteHuey
from huey.consumer import Consumer

from app.config import Config
from app.db import Database

# Results stay on (store_none off): only a task that returns something stores a row, and only
# the heartbeat does (its id is what /healthz hands out); see jobs.system.heartbeat.
huey = SqliteHuey("capteo", immediate=True)

# Higher runs first: SqliteHuey dequeues by priority, then in order of arrival. A worker
# proves it is alive, an owner hears of a new lead and a voicemail is read even with
# thousands of geocoding tasks queued behind them.
PRIORITY_HEARTBEAT = 100
PRIORITY_SMS = 90
PRIORITY_VOICEMAIL = 80
PRIORITY_UPKEEP = 20  # retention, audit: due within the hour, never urgent
PRIORITY_BULK = 0  # geocoding


class _Context:
    """What tasks share once `configure()` ran: the configuration and capteo.db."""

    _config: Config | None = None
    _db: Database | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            raise RuntimeError("jobs.configure() was not called")
        return self._config

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("jobs.configure() was not called")
        return self._db


context = _Context()


def configure(config: Config, db: Database) -> SqliteHuey:
    """Bind the queue to the data directory (its own file, WAL, 5 s busy timeout)."""
    context._config = config
    context._db = db
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


def create_consumer(config: Config) -> Consumer:
    """The one worker configuration, in the web server's process or alone (`run.py worker`)."""
    return huey.create_consumer(
        workers=config.queue.workers,
        worker_type="thread",
        periodic=True,
        # Poll the queue at least every second: an idle worker still picks work up fast.
        initial_delay=0.1,
        backoff=1.15,
        max_delay=1.0,
        shutdown_timeout=config.queue.shutdown_timeout,
    )


class InProcessWorker:
    """The Huey consumer running on threads of the web server's process."""

    def __init__(self, config: Config):
        self.consumer = create_consumer(config)

    def start(self) -> None:
        # Huey installs its own SIGINT/SIGTERM/SIGHUP handlers; the web server owns
        # signals here, so put its handlers back once the threads are running.
        on_main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)} if on_main else {}
        try:
            self.consumer.start()
        except ValueError:
            # Off the main thread (a test client) signals cannot be set: the workers run anyway.
            pass
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Let running tasks finish, up to [queue] shutdown_timeout."""
        self.consumer.stop(graceful=True)


def catch_up() -> None:
    """At start-up, wake at once the work a crash left behind (the periodic sweeps
    would only find it at the next minute): tasks are wake-ups, capteo.db is the truth."""
    intake.sweep_outbox()
    intake.sweep_geocoding()
    voicemail.sweep_voicemail()


# Importing the task modules registers their tasks on `huey`.
from jobs import intake, system, voicemail  # noqa: E402,F401
