"""Attacks on the audit log that a plain hash chain cannot see: a lost tail, a chain
rewritten whole. The keyed chain and its head kept outside the table catch both."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys

import pytest

from app import audit
from tests.support.app import ROOT

TRIGGERS = ("audit_log_no_update", "audit_log_no_delete")


@pytest.fixture
def keyed(config, db):
    """A data directory as the service leaves it: its audit key made, entries signed."""
    config.secret("audit")
    audit.start(db.reader())
    with db.write() as conn:
        for i in range(6):
            audit.record(conn, actor=f"user:{i}", action="lead.view", entity="lead", entity_id=i, business_id=1)
    return db


def _behind_sqlites_back(db, *statements):
    """What someone with the file can do: drop the append-only triggers, edit, put them back."""
    triggers = {r["name"]: r["sql"] for r in db.query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?)", TRIGGERS)}
    with db.write() as conn:
        for name in triggers:
            conn.execute(f"DROP TRIGGER {name}")
        for sql, params in statements:
            conn.execute(sql, params)
        for sql in triggers.values():
            conn.execute(sql)


def _verify_cli(config):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "audit", "verify"],
                          capture_output=True, text=True, cwd=ROOT)


def test_entries_are_signed_and_the_head_kept_outside_the_table(keyed, config):
    rows = keyed.query("SELECT id, hash FROM audit_log ORDER BY id")
    assert all(r["hash"].startswith(audit.KEYED) for r in rows)
    head = json.loads((config.data_dir / audit.HEAD_FILE).read_text())
    assert (head["id"], head["hash"]) == (6, rows[-1]["hash"])
    assert audit.verify(keyed.reader()).ok
    assert _verify_cli(config).returncode == 0


def test_a_deleted_tail_is_detected(keyed, config):
    """Deleting the last entries leaves a chain that is intact as far as it goes."""
    _behind_sqlites_back(keyed, ("DELETE FROM audit_log WHERE id > 4", ()))
    result = audit.verify(keyed.reader())
    assert not result.ok and result.checked == 4
    assert "entries 5 to 6 are missing" in result.reason
    cli = _verify_cli(config)
    assert cli.returncode == 1 and "entries 5 to 6 are missing" in cli.stdout
    # The head is never moved back to the shortened table.
    with keyed.write() as conn:
        audit.record(conn, actor="user:9", action="lead.view", entity="lead")
    assert not audit.verify(keyed.reader()).ok


def test_a_chain_rewritten_without_the_key_is_detected(keyed):
    """Rebuild every entry with a valid plain SHA-256 chain: only the key could sign it."""
    rows = keyed.query("SELECT * FROM audit_log ORDER BY id")
    prev, rewritten = audit.GENESIS, []
    for row in rows:
        row = {**row, "actor": "user:0", "prev_hash": prev}
        payload = json.dumps([row[k] for k in ("id", "at", "actor", "business_id", "action", "entity",
                                                "entity_id", "fields", "prev_hash")],
                             ensure_ascii=False, separators=(",", ":"))
        row["hash"] = prev = hashlib.sha256(payload.encode()).hexdigest()
        rewritten.append(row)
    _behind_sqlites_back(keyed, ("DELETE FROM audit_log", ()), *[(
        "INSERT INTO audit_log (id, at, actor, business_id, action, entity, entity_id, fields, prev_hash, hash)"
        " VALUES (:id, :at, :actor, :business_id, :action, :entity, :entity_id, :fields, :prev_hash, :hash)", r)
        for r in rewritten])
    result = audit.verify(keyed.reader())
    assert not result.ok and result.first_broken_id == 6 and "recorded head" in result.reason


def test_a_chain_signed_with_another_key_is_detected(keyed, config, monkeypatch):
    monkeypatch.setitem(audit._keys, str(config.data_dir), b"not the key")
    result = audit.verify(keyed.reader())
    assert not result.ok and result.first_broken_id == 1 and "does not match its hash" in result.reason


def test_a_removed_head_is_detected(keyed, config):
    (config.data_dir / audit.HEAD_FILE).unlink()
    result = audit.verify(keyed.reader())
    assert not result.ok and "missing or forged" in result.reason


def test_a_rolled_back_entry_does_not_move_the_head(keyed, config):
    with pytest.raises(RuntimeError), keyed.write() as conn:
        audit.record(conn, actor="user:1", action="lead.view", entity="lead")
        raise RuntimeError("the change it described failed")
    assert json.loads((config.data_dir / audit.HEAD_FILE).read_text())["id"] == 6
    assert audit.verify(keyed.reader()).ok


def test_the_daily_check_writes_the_head_to_the_journal(keyed, caplog):
    with caplog.at_level(logging.INFO, logger="capteo.audit"):
        assert audit.check_chain(keyed.reader())
    head = keyed.query_one("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
    assert f"head {head['id']} {head['hash']}" in caplog.text
