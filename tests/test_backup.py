"""`run.py backup DEST` while another process keeps writing."""

import subprocess
import sys
import time

import apsw

from app import businesses, leads
from tests.support.app import ROOT

WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from app.db import Database
from app import leads
db = Database({path!r})
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with db.write() as conn:
        leads.create(conn, business_id=1, channel="web", actor="test:writer", need="x" * 200)
"""


def _run(config, *args):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_backup_during_concurrent_writes_holds_everything_committed_before(db, config, tmp_path):
    with db.write() as conn:
        businesses.create_business(conn, slug="b", name="B", timezone="America/Toronto")
    (config.audio_dir / "vm-1.wav").write_bytes(b"RIFF" + b"\0" * 1000)
    config.secret("csrf")
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(root=str(ROOT), path=str(config.db_path))])
    try:
        while leads.count(db) < 300:
            time.sleep(0.05)
        committed_before = db.query_one("SELECT max(id) AS m FROM leads")["m"]
        result = _run(config, "backup", str(tmp_path / "copy"))
        still_writing = writer.poll() is None
        after = db.query_one("SELECT max(id) AS m FROM leads")["m"]
    finally:
        writer.kill()
        writer.wait()
    assert result.returncode == 0, result.stderr
    assert "capteo.db ok" in result.stdout
    assert still_writing and after > committed_before  # writes went on during the backup

    copy = apsw.Connection(str(tmp_path / "copy" / "capteo.db"), flags=apsw.SQLITE_OPEN_READONLY)
    assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    ids = [r[0] for r in copy.execute("SELECT id FROM leads ORDER BY id")]
    assert ids[: committed_before] == list(range(1, committed_before + 1))
    # Each lead's audit entry came with it (same transaction): the copy is consistent.
    audited = copy.execute("SELECT count(*) FROM audit_log WHERE action = 'lead.create'").fetchone()[0]
    assert audited == len(ids)
    copy.close()
    assert (tmp_path / "copy" / "audio" / "vm-1.wav").read_bytes().startswith(b"RIFF")
    assert (tmp_path / "copy" / "secrets" / "csrf").read_text() == (config.data_dir / "secrets" / "csrf").read_text()
    assert not list((tmp_path / "copy").glob("*-wal"))


def test_backup_refuses_an_existing_destination(db, config, tmp_path):
    (tmp_path / "taken").mkdir()
    result = _run(config, "backup", str(tmp_path / "taken"))
    assert result.returncode == 1 and "already exists" in result.stderr
    result = _run(config, "backup", str(config.data_dir / "inside"))
    assert result.returncode == 1 and "outside the data directory" in result.stderr


def test_backup_leaves_litestreams_running_state_out(db, config, tmp_path):
    from app.ops import backup

    (config.data_dir / ".capteo.db-litestream" / "ltx" / "0").mkdir(parents=True)
    (config.data_dir / ".capteo.db-litestream" / "ltx" / "0" / "0000000000000001-0000000000000001.ltx").write_bytes(
        b"LTX")
    (config.data_dir / "litestream.yml").write_text("{}")
    (config.data_dir / "queue-id").write_text("0123456789ab\n")  # this box's Redis queues, not a copy's
    (config.audio_dir / "kept.wav").write_bytes(b"RIFF")
    report = backup.backup(config.data_dir, tmp_path / "copy")
    copied = {p.relative_to(report.dest).as_posix() for p in report.dest.rglob("*")}
    assert "capteo.db" in copied and any(p.endswith("kept.wav") for p in copied)
    assert not [p for p in copied if "litestream" in p] and "queue-id" not in copied
