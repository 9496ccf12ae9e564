"""The two Huey queues, and the resources tasks share.

`huey` (`<data dir>/queue.db`, several worker threads) carries everything quick: the
heartbeat, SMS, geocoding, sweeps, polling. `models_huey` (`queue-models.db`, one worker
thread) carries only the work that holds the speech and language models: a voicemail's
transcription and extraction take seconds to minutes each, and with both on one queue
twenty voicemails kept every worker thread waiting on the model lock while the heartbeat
and the owners' SMS sat behind them. One model worker is also what the models want: one
process owns the GPU (or the CPU cores), and the models load once.

Both start in immediate mode with in-memory storage so that importing this module
touches no file; `configure()` points them at the data directory once the configuration
is known. Task modules import them from here and stay thin: they call domain functions
in `app/`, with ids, never personal data.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

from huey import SqliteHuey
from huey.consumer import Consumer

from app.config import Config
from app.db import Database
from app.voicemail import models

# Results stay on (store_none off): only a task that returns something stores a row, and only
# the heartbeat does (its id is what /healthz hands out); see jobs.system.heartbeat.
huey = SqliteHuey("capteo", immediate=True)
models_huey = SqliteHuey("capteo-models", immediate=True)
MODELS_QUEUE_FILE = "queue-models.db"

# Higher runs first: SqliteHuey dequeues by priority, then in order of arrival. A worker
# proves it is alive, an owner hears of a new lead and a voicemail is read even with
# thousands of geocoding tasks queued behind them.
PRIORITY_HEARTBEAT = 100
PRIORITY_SMS = 90
PRIORITY_CHAT = 85  # a visitor is waiting on the page for the assistant's reply
PRIORITY_VOICEMAIL = 80
PRIORITY_WEBHOOK = 50  # a business's own tools: soon, after what people wait for
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


def _bind(queue: SqliteHuey, path: Path) -> None:
    queue.storage_kwargs = {"filename": str(path), "journal_mode": "wal", "timeout": 5}
    if queue.immediate:
        queue.immediate = False  # the setter builds the SQLite storage from storage_kwargs
    else:
        queue.storage = queue.create_storage()


def configure(config: Config, db: Database) -> SqliteHuey:
    """Bind the queues to the data directory (their own files, WAL, 5 s busy timeout)."""
    context._config = config
    context._db = db
    _bind(huey, config.queue_path)
    _bind(models_huey, config.data_dir / MODELS_QUEUE_FILE)
    return huey


def queue_depth() -> int:
    return huey.pending_count() + models_huey.pending_count()


def _consumer(queue: SqliteHuey, config: Config, *, workers: int, periodic: bool) -> Consumer:
    return queue.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=periodic,
        # Poll the queue at least every second: an idle worker still picks work up fast.
        initial_delay=0.1,
        backoff=1.15,
        max_delay=1.0,
        shutdown_timeout=config.queue.shutdown_timeout,
    )


def create_consumer(config: Config) -> Consumer:
    """The quick work's consumer ([queue] workers threads, periodic tasks)."""
    return _consumer(huey, config, workers=config.queue.workers, periodic=True)


def create_model_consumer(config: Config) -> Consumer:
    """The models' consumer: one thread, so one voicemail at a time holds the models."""
    return _consumer(models_huey, config, workers=1, periodic=False)


class InProcessWorker:
    """Both consumers, on threads of the web server's process (or of `run.py worker`)."""

    def __init__(self, config: Config):
        self.config = config
        self.consumer = create_consumer(config)
        self.model_consumer = create_model_consumer(config)

    def start(self) -> None:
        # The models are loaded and checked once now, off the request path: the dashboard,
        # /healthz and `run.py check` then say in plain words what is wrong, if anything.
        models.validate_in_background(self.config)
        # Huey installs its own SIGINT/SIGTERM/SIGHUP handlers; the web server owns
        # signals here, so put its handlers back once the threads are running.
        on_main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)} if on_main else {}
        try:
            for consumer in (self.model_consumer, self.consumer):
                # Off the main thread (a test client) signals cannot be set: the workers run anyway.
                with contextlib.suppress(ValueError):
                    consumer.start()
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Let running tasks finish, up to [queue] shutdown_timeout (each queue in turn)."""
        self.consumer.stop(graceful=True)
        self.model_consumer.stop(graceful=True)

    def run(self) -> None:
        """`run.py worker`: until SIGTERM or SIGINT, then a graceful stop of both."""
        models.validate_in_background(self.config)
        self.model_consumer.start()
        try:
            self.consumer.run()  # its signal handlers replace the model consumer's
        finally:
            self.model_consumer.stop(graceful=True)


def catch_up() -> None:
    """At start-up, wake at once the work a crash left behind (the periodic sweeps
    would only find it at the next minute): tasks are wake-ups, capteo.db is the truth."""
    intake.sweep_outbox()
    intake.sweep_geocoding()
    voicemail.sweep_voicemail()
    integrations.sweep_webhooks()
    chat.sweep_chat()


# Importing the task modules registers their tasks on `huey`.
from jobs import chat, intake, integrations, system, voicemail  # noqa: E402,F401
