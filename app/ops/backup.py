"""`run.py backup DEST`: a consistent copy of the data directory while the service runs.

The databases are copied with SQLite's online backup API (a snapshot, taken in
one step so that concurrent writers neither block nor restart it), then the
other files. The copy is written beside DEST and renamed into place only once
complete and checked, so a half-made backup never looks like a good one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import apsw

from app.db import BUSY_TIMEOUT_MS

DATABASES = ("capteo.db", "queue.db", "queue-models.db")


class BackupError(Exception):
    pass


@dataclass
class BackupReport:
    dest: Path
    databases: dict[str, str]
    files: int
    bytes: int


def _copy_database(src_path: Path, dst_path: Path) -> str:
    src = apsw.Connection(str(src_path), flags=apsw.SQLITE_OPEN_READONLY)
    src.set_busy_timeout(BUSY_TIMEOUT_MS)
    dst = apsw.Connection(str(dst_path))
    try:
        with dst.backup("main", src, "main") as b:
            while not b.done:
                b.step(-1)
        # A standalone file: no WAL to carry around.
        dst.execute("PRAGMA journal_mode = DELETE")
        result = [row[0] for row in dst.execute("PRAGMA integrity_check")]
    finally:
        dst.close()
        src.close()
    return "ok" if result == ["ok"] else "; ".join(map(str, result))


# Litestream's own state (its LTX files, generated config, control socket): it belongs to
# the running replication, not to a copy of the data.
REPLICATION_STATE = {".capteo.db-litestream", "litestream.yml", "litestream.sock"}


def _skip(rel: Path, include_models: bool) -> bool:
    if rel.parts and rel.parts[0] == "models" and not include_models:
        return True
    name = rel.name
    if len(rel.parts) == 1 and name in REPLICATION_STATE | {"queue-id", "models-worker.lock"}:
        # queue-id: a copy restored elsewhere must not share this box's Redis queues; the lock
        # says which processes run the models' work here now (jobs.claim_models_work).
        return True
    return name in DATABASES or (
        name.endswith(("-wal", "-shm", "-journal")) and name.rsplit("-", 1)[0] in DATABASES
    )


def backup(data_dir: Path, dest: Path, *, include_models: bool = False) -> BackupReport:
    """Copy `data_dir` to `dest` (which must not exist). Models are left out unless
    asked for: they are large and `run.py models pull` fetches them again."""
    data_dir = data_dir.resolve()
    dest = dest.resolve()
    if dest.exists():
        raise BackupError(f"{dest} already exists; choose a new destination")
    if dest == data_dir or data_dir in dest.parents:
        raise BackupError("the destination must be outside the data directory")
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    databases = {}
    for name in DATABASES:
        if (data_dir / name).exists():
            databases[name] = _copy_database(data_dir / name, partial / name)
    bad = {k: v for k, v in databases.items() if v != "ok"}
    if bad:
        raise BackupError(f"integrity check failed on the copy: {bad}")
    files = size = 0
    for root, dirs, names in os.walk(data_dir):
        rel_root = Path(root).relative_to(data_dir)
        dirs[:] = [d for d in dirs if not _skip(rel_root / d, include_models)]
        for name in names:
            rel = rel_root / name
            if _skip(rel, include_models):
                continue
            target = partial / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(data_dir / rel, target)
            except FileNotFoundError:
                continue  # deleted meanwhile (e.g. audio past retention): nothing to keep
            files += 1
            size += target.stat().st_size
    partial.rename(dest)
    return BackupReport(dest=dest, databases=databases, files=files, bytes=size)
