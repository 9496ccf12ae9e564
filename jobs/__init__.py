"""The two Huey queues, and the resources tasks share.

`huey` (several worker threads) carries everything quick: the heartbeat, SMS, geocoding,
sweeps, polling. `models_huey` (one worker thread) carries only the work that holds the
speech and language models: a voicemail's transcription and extraction take seconds to
minutes each, and with both on one queue twenty voicemails kept every worker thread
waiting on the model lock while the heartbeat and the owners' SMS sat behind them. One
model worker per process is also what the models want: one process owns the GPU (or the
CPU cores), and the models load once.

Where the queues live is `[queue] backend`: "sqlite" (the default) keeps them in files of
the data directory (`queue.db`, `queue-models.db`); "redis" keeps them in Redis
(`PriorityRedisStorage`, so priorities still order the work), so that several
`run.py worker --models` processes share the models' queue. Either way a task carries ids
only and capteo.db holds the truth: a task lost with its worker (Redis hands a task over
once and forgets it) is found again by the sweeps.

Both start in immediate mode with in-memory storage so that importing this module
touches no file; `configure()` points them at their storage once the configuration
is known. Task modules import them from here and stay thin: they call domain functions
in `app/`, with ids, never personal data.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from huey import Huey
from huey.api import Result
from huey.consumer import Consumer
from huey.storage import PriorityRedisStorage, RedisStorage, SqliteStorage

from app.config import Config
from app.db import Database, relaxed_durability
from app.voicemail import models

log = logging.getLogger("capteo.queue")


class CapteoHuey(Huey):
    """A Huey whose storage `configure()` chooses. On Redis, a task that cannot be queued
    (Redis down or unreachable) is logged, not raised: what it would wake is committed in
    capteo.db already, the sweeps wake it once Redis answers again, and the request that
    asked (a form, an upload) must not fail for it.

    Nor wait for it more than once: an unreachable Redis costs each try its connect timeout
    (5 s), so after a failure no task is sent to it (each is lost as if refused; the sweeps
    find their work) until a PING from a thread of its own, every REDIS_PROBE_S, is answered:
    no request waits for a Redis that is down, and a passing failure costs a second or two of
    wake-ups, not more."""

    _redis_down: bool = False  # the breaker: open while True
    _redis_error: str = ""
    _probe: threading.Thread | None = None

    def enqueue(self, task: Any) -> Any:
        if not isinstance(self.storage, RedisStorage):
            return super().enqueue(task)
        if self._redis_down:
            return self._lost(task, self._redis_error)
        try:
            return super().enqueue(task)
        except redis.exceptions.RedisError as e:
            self._open_breaker(type(e).__name__)
            return self._lost(task, type(e).__name__)

    def _open_breaker(self, error: str) -> None:
        with _refused_lock:
            self._redis_error = error
            if self._redis_down:
                return
            self._redis_down = True
            storage = self.storage
            self._probe = threading.Thread(target=self._probe_until_answered, args=(storage,), daemon=True,
                                           name=f"capteo-redis-probe-{self.name}")
            self._probe.start()

    def _probe_until_answered(self, storage: Any) -> None:
        """PING the queue's Redis until it answers (on this thread: no request waits), then
        close the breaker. Ends too when the queue is bound elsewhere (`configure()`)."""
        while True:
            time.sleep(REDIS_PROBE_S)
            if self.storage is not storage or not self._redis_down:
                return
            try:
                storage.conn.ping()
            except Exception:  # whatever the failure, this thread goes on asking: it alone closes the breaker
                continue
            with _refused_lock:
                if self.storage is not storage:
                    return
                self._redis_down = False
            log.info("the queue's Redis answers again: tasks are queued again")
            return

    def _lost(self, task: Any, error: str) -> Any:
        with _refused_lock:
            _refused[0] += 1
            if time.monotonic() - _refused[1] >= 60:
                log.warning("the queue's Redis refused %d task(s) (the last: %s, %s): not queued; the sweeps "
                            "wake their work once Redis answers (said again in a minute if still down)",
                            _refused[0], task.name, error)
                _refused[:] = [0, time.monotonic()]
        return Result(self, task) if self.results else None

    def reset_breaker(self) -> None:
        with _refused_lock:
            self._redis_down, self._redis_error = False, ""


# After Redis failed a task, how often a thread of its own asks it whether it answers again
# (meanwhile no task is sent to it: each would wait up to the connect timeout).
REDIS_PROBE_S = 1.0
# Tasks Redis refused (or that were not sent) since the last warning, and when that was (one
# warning a minute at most).
_refused: list = [0, -60.0]
_refused_lock = threading.Lock()


class _RedisDownFilter(logging.Filter):
    """Huey's consumer logs a traceback each time a worker thread or the scheduler fails to
    read the queue: with Redis down, several a second. Keep one plain line a minute instead."""

    EVERY_S = 60.0

    def __init__(self) -> None:
        super().__init__()
        self._last = -self.EVERY_S
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
            return True
        with self._lock:
            if time.monotonic() - self._last < self.EVERY_S:
                return False
            self._last = time.monotonic()
        said = record.getMessage().rstrip(".")
        record.msg = "%s: the queue's Redis does not answer (%s); retrying (said again in a minute if still down)"
        record.args = (said, str(error).split("\n")[0] or type(error).__name__)
        record.exc_info = record.exc_text = None
        return True


_redis_down = _RedisDownFilter()
for _name in ("huey.consumer.Worker", "huey.consumer.Scheduler"):
    logging.getLogger(_name).addFilter(_redis_down)


class QueueFileStorage(SqliteStorage):
    """Huey's SQLite storage with `synchronous = NORMAL` (SQLite's default here is FULL: an fsync
    at every commit). A queued task is a wake-up, never the truth: a power cut may lose the last
    few (WAL with NORMAL never corrupts the file), and the sweeps find their work again in
    capteo.db, which keeps FULL. Each accepted form post queued and took two tasks, four fsyncs
    more than its own commit."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        relaxed_durability(conn)
        return conn


# Results stay on (store_none off): only a task that returns something stores a result, and only
# the heartbeat does (its id is what /healthz hands out); see jobs.system.heartbeat.
huey = CapteoHuey("capteo", immediate=True, storage_class=QueueFileStorage)
models_huey = CapteoHuey("capteo-models", immediate=True, storage_class=QueueFileStorage)
MODELS_QUEUE_FILE = "queue-models.db"
# With Redis, the queues' names carry this data directory's own id (made once, kept in this
# file): installations sharing a Redis server never take each other's tasks, and every process
# given the same data directory shares the same queues.
QUEUE_ID_FILE = "queue-id"

# Higher runs first: both storages dequeue by priority, then in order of arrival. A worker
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
    # True in a process that runs the quick work but not the models' (`run.py worker --quick`,
    # or the web server with [queue] models_in_process off): the models are not loaded here.
    models_elsewhere: bool = False

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


def _bind(queue: CapteoHuey, name: str, storage_class: type, **storage_kwargs: Any) -> None:
    old = queue.storage
    queue.reset_breaker()  # a new binding: what the last one's Redis did says nothing of this one
    queue.name = name
    queue.storage_class = storage_class
    queue.storage_kwargs = storage_kwargs
    if queue.immediate:
        queue.immediate = False  # the setter builds the storage from storage_class and storage_kwargs
    else:
        queue.storage = queue.create_storage()
    if isinstance(old, RedisStorage):
        old.pool.disconnect()  # configured again (each test does): the last binding's sockets go


def _redis_pool(config: Config) -> redis.ConnectionPool:
    # Bounded waits: a Redis that vanishes is an error the consumer logs and retries, never a
    # worker thread stuck forever. The socket timeout outlasts the 1 s blocking read.
    return redis.ConnectionPool.from_url(config.queue.redis_url, socket_connect_timeout=5, socket_timeout=10,
                                         health_check_interval=30)


def redis_address(config: Config) -> str:
    """The Redis server in words, without a password the URL may hold."""
    parts = urlsplit(config.queue.redis_url)
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


def check_queue(config: Config) -> str | None:
    """What is wrong with the queue's storage, in plain words (None: nothing). Only Redis is
    checked: the SQLite queues are files of the data directory, made at start-up."""
    if config.queue.backend != "redis":
        return None
    pool = _redis_pool(config)
    try:
        redis.Redis(connection_pool=pool).ping()
    except redis.exceptions.AuthenticationError:
        return (f"the queue's Redis at {redis_address(config)} refused the password in [queue] redis_url")
    except redis.exceptions.RedisError as e:
        reason = str(e).split("\n")[0] or type(e).__name__
        return (f"the queue's Redis at {redis_address(config)} does not answer ({reason}): start it, or fix "
                "[queue] redis_url")
    finally:
        pool.disconnect()
    return None


def _queue_id(data_dir: Path) -> str:
    path = data_dir / QUEUE_ID_FILE
    # Written whole then linked into place: a process starting meanwhile never reads it empty.
    partial = data_dir / f".{QUEUE_ID_FILE}.{os.getpid()}"
    partial.write_text(secrets.token_hex(6) + "\n")
    try:
        os.link(partial, path)
    except FileExistsError:
        pass  # another process made it first: theirs is the id
    finally:
        partial.unlink(missing_ok=True)
    return path.read_text().strip()


def configure(config: Config, db: Database) -> CapteoHuey:
    """Bind the queues: to the data directory (their own files, WAL, 5 s busy timeout), or to
    Redis. A Redis that does not answer is said in the log, not raised: the web server keeps
    taking requests (capteo.db holds them) and the consumers retry until it answers."""
    context._config = config
    context._db = db
    context.models_elsewhere = False
    if config.queue.backend == "redis":
        if problem := check_queue(config):
            log.warning("%s; background work waits until it does (capteo.db keeps everything)", problem)
        base = f"capteo_{_queue_id(config.data_dir)}"
        pool = _redis_pool(config)
        for queue, name in ((huey, base), (models_huey, f"{base}_models")):
            # Blocking reads: an idle worker takes a task the moment it is queued.
            _bind(queue, name, PriorityRedisStorage, connection_pool=pool, blocking=True, read_timeout=1)
    else:
        sqlite = {"journal_mode": "wal", "timeout": 5}
        _bind(huey, "capteo", QueueFileStorage, filename=str(config.queue_path), **sqlite)
        _bind(models_huey, "capteo-models", QueueFileStorage, filename=str(config.data_dir / MODELS_QUEUE_FILE),
              **sqlite)
    return huey


def queue_depth() -> int:
    return huey.pending_count() + models_huey.pending_count()


def _consumer(queue: CapteoHuey, config: Config, *, workers: int, periodic: bool,
              graceful_signal: str = "INT") -> Consumer:
    return queue.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=periodic,
        # Poll the queue at least every second: an idle worker still picks work up fast.
        initial_delay=0.1,
        backoff=1.15,
        max_delay=1.0,
        shutdown_timeout=config.queue.shutdown_timeout,
        graceful_signal=graceful_signal,
    )


def create_consumer(config: Config) -> Consumer:
    """The quick work's consumer ([queue] workers threads, periodic tasks)."""
    return _consumer(huey, config, workers=config.queue.workers, periodic=True)


def create_model_consumer(config: Config, *, graceful_on_sigterm: bool = False) -> Consumer:
    """The models' consumer: one thread, so one voicemail at a time holds the models. Run on
    its own (`run.py worker --models`), SIGTERM lets the running voicemail finish, up to
    [queue] shutdown_timeout; past it the process goes and the sweep redoes that step."""
    return _consumer(models_huey, config, workers=1, periodic=False,
                     graceful_signal="TERM" if graceful_on_sigterm else "INT")


class InProcessWorker:
    """The consumers, on threads of the web server's process (or of `run.py worker`): the
    quick work's and, unless `models` is false, the models' (default: [queue] models_in_process)."""

    def __init__(self, config: Config, *, quick: bool = True, models: bool | None = None):
        if models is None:
            models = config.queue.models_in_process
        if not (quick or models):
            raise ValueError("a worker runs the quick work, the models' work, or both")
        self.config = config
        self.consumer = create_consumer(config) if quick else None
        self.model_consumer = create_model_consumer(config, graceful_on_sigterm=not quick) if models else None
        context.models_elsewhere = not models

    def _consumers(self) -> list[Consumer]:
        return [c for c in (self.model_consumer, self.consumer) if c is not None]

    def start(self) -> None:
        # The models are loaded and checked once now, off the request path: the dashboard,
        # /healthz and `run.py check` then say in plain words what is wrong, if anything.
        if self.model_consumer is not None:
            claim_models_work(self.config)  # before its consumer takes a voicemail
            models.validate_in_background(self.config)
        # Huey installs its own SIGINT/SIGTERM/SIGHUP handlers; the web server owns
        # signals here, so put its handlers back once the threads are running.
        on_main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)} if on_main else {}
        try:
            for consumer in self._consumers():
                # Off the main thread (a test client) signals cannot be set: the workers run anyway.
                with contextlib.suppress(ValueError):
                    consumer.start()
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Let running tasks finish, up to [queue] shutdown_timeout (each queue in turn)."""
        for consumer in reversed(self._consumers()):
            consumer.stop(graceful=True)
        if self.model_consumer is not None:
            _release_models_work(self.config)

    def run(self) -> None:
        """`run.py worker`: until SIGTERM or SIGINT, then a graceful stop."""
        if self.model_consumer is not None:
            claim_models_work(self.config)
            models.validate_in_background(self.config)
        if self.consumer is None:
            assert self.model_consumer is not None
            self.model_consumer.run()  # `--models`: its one thread; SIGTERM lets its voicemail finish
            return
        if self.model_consumer is not None:
            self.model_consumer.start()
        try:
            self.consumer.run()  # its signal handlers replace the model consumer's
        finally:
            if self.model_consumer is not None:
                self.model_consumer.stop(graceful=True)


# This process's hold on MODELS_LOCK, by data directory: an open file with a shared flock,
# released by the kernel when the process ends, however it ends.
MODELS_LOCK = "models-worker.lock"
_models_locks: dict[str, int] = {}


def claim_models_work(config: Config) -> bool:
    """This process runs the models' work on `config`'s data directory from now on: it holds
    MODELS_LOCK (shared, with any other process that runs it there) while it lives. When no
    living process held it, the leases in capteo.db are a killed predecessor's: they are let
    go at once, not after STUCK_AFTER. When one did, they may be that process's, at work on
    a voicemail now: they are left to it (a killed holder's run out, and the sweep wakes them).
    True when the leases were let go."""
    path = str(config.data_dir / MODELS_LOCK)
    _release_models_work(config)  # this process's own earlier worker (an app started again in-process)
    try:
        # Read-only is all flock needs (the file may be another account's: a worker run as root).
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        log.warning("could not open %s (%s): the leases of a killed models' worker run out instead of being "
                    "let go now", MODELS_LOCK, type(e).__name__)
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        fcntl.flock(fd, fcntl.LOCK_SH)  # from exclusive: others may start beside this one now
    except OSError as e:
        os.close(fd)
        log.warning("could not lock %s (%s): the leases of a killed models' worker run out instead of being "
                    "let go now", MODELS_LOCK, type(e).__name__)
        return False
    _models_locks[path] = fd
    if alone:
        voicemail.release_leases()
    return alone


def _release_models_work(config: Config) -> None:
    """This process no longer runs the models' work there (its worker stopped)."""
    fd = _models_locks.pop(str(config.data_dir / MODELS_LOCK), None)
    if fd is not None:
        os.close(fd)


def catch_up() -> None:
    """At start-up, wake at once the work a crash left behind (the periodic sweeps
    would only find it at the next minute): tasks are wake-ups, capteo.db is the truth.
    (A killed predecessor's leases were let go when the models' consumer started.)"""
    intake.sweep_outbox()
    intake.sweep_geocoding()
    voicemail.sweep_voicemail()
    integrations.sweep_webhooks()
    chat.sweep_chat()


# Importing the task modules registers their tasks on `huey`.
from jobs import chat, intake, integrations, system, voicemail  # noqa: E402,F401
