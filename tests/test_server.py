"""`python run.py` as the operator runs it: a real process, real signals."""

import signal
import subprocess
import sys
import time

import httpx
import pytest
from huey import SqliteHuey

from app.db import connect
from tests.support import slow_tasks
from tests.support.app import ROOT, ServerProcess

pytestmark = pytest.mark.slow


def _queue(srv):
    return SqliteHuey("capteo", filename=str(srv.directory / "data" / "queue.db"), journal_mode="wal", timeout=5)


def test_serves_both_languages_and_demo(server):
    fr = httpx.get(server.url + "/fr/")
    en = httpx.get(server.url + "/en/")
    assert "Chaque demande de vos clients" in fr.text and "Every client request" in en.text
    log = server.log.read_text()
    assert "Demo business created. Sign in at" in log and "demo@capteo.test" in log


def _request_heartbeat(url):
    """/healthz asks for a heartbeat when the queue is empty (start-up sweeps may be
    in it for a moment)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        task_id = httpx.get(url + "/healthz").json()["heartbeat_requested"]
        if task_id:
            return task_id
        time.sleep(0.1)
    raise AssertionError("/healthz never asked for a heartbeat")


def test_a_task_enqueued_by_a_request_runs_on_the_in_process_worker(server):
    task_id = _request_heartbeat(server.url)
    queue = _queue(server)
    deadline = time.monotonic() + 10
    result = None
    while result is None and time.monotonic() < deadline:
        result = queue.result(task_id, preserve=True)
        time.sleep(0.05)
    assert result, "the heartbeat task was not run by the server's worker"
    conn = connect(server.directory / "data" / "capteo.db")
    assert next(iter(conn.execute("SELECT at FROM heartbeats WHERE name = 'worker'")))["at"] >= result
    conn.close()
    assert httpx.get(server.url + "/healthz").json()["worker_alive"] is True


def test_sigterm_lets_the_running_task_finish_and_exits_0(tmp_path):
    srv = ServerProcess(tmp_path, demo=False, script=ROOT / "tests/support/serve_with_test_task.py",
                        queue={"shutdown_timeout": 10})
    srv.start()
    marker = str(tmp_path / "slow")
    queue = _queue(srv)
    slow_task = slow_tasks.register(queue)
    slow_task(2.0, marker)
    deadline = time.monotonic() + 10
    while not (tmp_path / "slow.started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "slow.started").exists()
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(30)
    elapsed = time.monotonic() - t0
    assert code == 0
    assert (tmp_path / "slow.done").exists(), "the running task was cut off"
    assert elapsed < 10 + 5


def test_sigterm_when_idle_exits_promptly_with_0(server):
    t0 = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    assert time.monotonic() - t0 < 5


def test_worker_can_run_as_its_own_process(tmp_path):
    """`run.py --no-worker` beside `run.py worker`: the same queue file joins them."""
    srv = ServerProcess(tmp_path, demo=False, args=("--no-worker",))
    srv.start()
    worker = None
    try:
        task_id = _request_heartbeat(srv.url)
        time.sleep(1.5)
        assert _queue(srv).result(task_id, preserve=True) is None  # nobody takes work yet
        worker = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--config", str(srv.config_path), "worker"],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while _queue(srv).result(task_id, preserve=True) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _queue(srv).result(task_id, preserve=True) is not None
        assert httpx.get(srv.url + "/healthz").json()["worker_alive"] is True
    finally:
        if worker:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0
        assert srv.stop() == 0
