import subprocess
import sys

import apsw
import pytest

from app import audit
from tests.support.app import ROOT


def _fill(db, n=5):
    with db.write() as conn:
        for i in range(n):
            audit.record(conn, actor=f"user:{i}", action="lead.view", entity="lead", entity_id=i,
                         business_id=1, fields=["phone", "first_name"])


def test_entries_chain_and_verify(db):
    _fill(db)
    rows = db.query("SELECT * FROM audit_log ORDER BY id")
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == audit.GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert rows[0]["fields"] == '["first_name", "phone"]'
    result = audit.verify(db.reader())
    assert result.ok and result.checked == 5


def test_record_outside_a_transaction_is_refused(db):
    with pytest.raises(RuntimeError, match="inside a write transaction"):
        audit.record(db.reader(), actor="x", action="a", entity="e")


@pytest.mark.parametrize("sql", [
    "UPDATE audit_log SET actor = 'someone else' WHERE id = 2",
    "DELETE FROM audit_log WHERE id = 2",
    "DELETE FROM audit_log",
])
def test_update_and_delete_are_refused_by_sqlite(db, sql):
    _fill(db)
    with pytest.raises(apsw.ConstraintError, match="append-only"), db.write() as conn:
        conn.execute(sql)
    assert db.query_one("SELECT count(*) AS n FROM audit_log")["n"] == 5


def _verify_cli(config):
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "audit", "verify"],
        capture_output=True, text=True, cwd=ROOT,
    )


def test_raw_file_edit_is_detected_and_named(db, config):
    """Bypass SQLite (and its triggers) entirely: flip bytes in the file itself."""
    with db.write() as conn:
        for i in range(6):
            audit.record(conn, actor=f"user:{i}", action=f"lead.view.{i:03d}", entity="lead",
                         entity_id=i, business_id=1)
    assert _verify_cli(config).returncode == 0
    db.reader().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    raw = config.db_path.read_bytes()
    target = b"lead.view.003"
    assert raw.count(target) == 1
    config.db_path.write_bytes(raw.replace(target, b"lead.edit.003"))

    result = _verify_cli(config)
    assert result.returncode == 1
    assert "BROKEN at entry 4: content does not match its hash" in result.stdout
    assert "3 entries before it are intact" in result.stdout


def test_two_processes_starting_at_once_both_record_the_head(config, db):
    """Found by a flaky test: the server and `run.py worker` starting at once on a data directory
    both record the audit head at start, through one temporary file name; one's rename took the
    other's file away (FileNotFoundError: the worker did not start). Here both start while the
    head is behind, each writing its temporary file slowly (0.5 s), so that the two overlap."""
    with db.write() as conn:  # an entry from before the audit key: no head recorded yet
        audit.record(conn, actor="test", action="lead.view", entity="lead", entity_id=1)
    config.secret("audit")  # the key made: each process records the head at start
    assert not audit.head_path(db.reader()).exists()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "write_text = Path.write_text\n"
        "def slow(self, *a, **k):\n"
        "    n = write_text(self, *a, **k)\n"
        "    time.sleep(0.5)\n"
        "    return n\n"
        "Path.write_text = slow\n"
        "from app import audit\n"
        "from app.db import Database\n"
        "audit.start(Database(sys.argv[1]).reader())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(config.db_path)], cwd=ROOT,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert audit.read_head(audit.head_path(db.reader()), audit.key_for(db.reader())) is not None
