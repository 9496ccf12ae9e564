"""Health of the service: database, queue, worker heartbeat, models on disk."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from functools import lru_cache

from app import clock
from app.config import Config
from app.db import Database

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


def whisper_model_name(config: Config, gpu: bool | None = None) -> str:
    name = config.get("models", "whisper")
    if name != "auto":
        return name
    if gpu is None:
        gpu = has_gpu()
    return "large-v3-turbo" if gpu else "small"


@lru_cache(maxsize=1)
def has_gpu() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # no CUDA runtime at all is the common CPU case
        return False


def models_present(config: Config) -> dict[str, dict]:
    whisper = whisper_model_name(config)
    whisper_dir = config.models_dir / f"whisper-{whisper}"
    llm = config.models_dir / config.get("models", "llm_file")
    return {
        "whisper": {"name": whisper, "path": str(whisper_dir),
                    "present": (whisper_dir / "model.bin").is_file()},
        "llm": {"name": llm.name, "path": str(llm), "present": llm.is_file()},
    }


def status(db: Database, config: Config, queue_depth: int | None) -> dict:
    """The JSON /healthz answers; `ok` is false when the database is unusable."""
    try:
        db.query_one("SELECT count(*) AS n FROM businesses")
        database = "ok"
    except Exception as e:  # any failure to read is what the operator must see
        database = f"error: {e}"
    beat_at = last_beat(db, "worker") if database == "ok" else None
    alive = bool(beat_at) and clock.now() - datetime.fromisoformat(beat_at) <= ALIVE_WITHIN
    models = models_present(config)
    return {
        "ok": database == "ok",
        "database": database,
        "queue_depth": queue_depth,
        "worker_alive": alive,
        "worker_last_beat": beat_at,
        "models": {k: {"name": v["name"], "present": v["present"]} for k, v in models.items()},
    }
