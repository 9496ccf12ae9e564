"""The queues on Redis (issue 16): several `run.py worker --models` processes share the
models' queue; one killed mid-voicemail loses its task (Redis hands a task over once), and
the sweep finds the voicemail again: every voicemail ends as exactly one lead, one SMS.
SQLite stays the default; /healthz's heartbeat and /metrics work on Redis."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
from huey.storage import PriorityRedisStorage, SqliteStorage

import jobs
from app import clock, voicemail
from app import config as config_mod
from app.db import Database
from tests.support.app import ROOT, ServerProcess, free_port, write_config
from tests.support.audio import speak
from tests.support.people import make_business

# A real redis-server and real processes: part of `make test`, not of the quick runs.
pytestmark = pytest.mark.slow

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
WORKER = ROOT / "tests" / "support" / "slow_engine_worker.py"


def start_redis(port: int, directory: Path) -> subprocess.Popen:
    """A real redis-server of our own on `port`, nothing written to disk; returned once it answers."""
    if not Path(REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed (make test installs Debian's redis-server)")
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    deadline = time.monotonic() + 10
    try:
        while True:
            try:
                client.ping()
                return proc
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    raise
                time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A real redis-server of our own, on a free port, nothing written to disk."""
    port = free_port()
    proc = start_redis(port, tmp_path_factory.mktemp("redis"))
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis_config(tmp_path, migrated_db, redis_url):
    redis.Redis.from_url(redis_url).flushall()
    path = write_config(tmp_path, queue={"backend": "redis", "redis_url": redis_url})
    cfg = config_mod.load(path, env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    return cfg


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


class Worker:
    """`run.py worker` (with the slow stand-in engine) as its own process."""

    def __init__(self, cfg: config_mod.Config, markers: Path, *args: str, name: str):
        self.log = cfg.data_dir.parent / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTEO_")}
        env.update(TEST_ENGINE_MARKERS=str(markers), TEST_ENGINE_SECONDS="1.5")
        self.proc = subprocess.Popen([sys.executable, str(WORKER), "--config", str(cfg.path), "worker", *args],
                                     cwd=ROOT, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_two_model_workers_one_killed_mid_voicemail_every_voicemail_one_lead(redis_config, tmp_path, monkeypatch):
    cfg = redis_config
    markers = tmp_path / "markers"
    markers.mkdir()
    db = Database(cfg.db_path)
    bid, _ = make_business(db, "plomberie", "Plomberie Gagnon", custom=False)
    wav = speak("Bonjour, rappelez-moi.", "fr", tmp_path / "a.wav").read_bytes()
    ids = [voicemail.receive(db, cfg, business_id=bid, data=wav, caller_id="+15145550101", source="upload",
                             actor="test")[0] for _ in range(6)]
    # Two received before leads were made at once: their lead is made at the last step, which
    # both workers will race for (each is queued twice).
    audio_name = db.one("SELECT audio_path FROM voicemails WHERE id = ?", (ids[0],))["audio_path"]
    extraction = '{"first_name": "Luc", "phone": "+15145550102", "need": "Fuite", "language": "fr"}'
    with db.write() as conn:
        for _ in range(2):
            conn.execute("INSERT INTO voicemails (business_id, audio_path, created_at, updated_at, next_attempt_at,"
                         " state, source, transcript, language, extraction) VALUES (?, ?, '2026-11-22T00:00:00+00:00',"
                         " '2026-11-22T00:00:00+00:00', '2026-11-22T00:00:00+00:00', 'extracted', 'pbx', 'Fuite',"
                         " 'fr', ?)", (bid, audio_name, extraction))
            ids.append(conn.last_insert_rowid())
    legacy = ids[6:]

    workers = [Worker(cfg, markers, "--models", name=f"models-{i}") for i in range(2)]
    try:
        jobs.configure(cfg, db)  # this process enqueues, as the web server would
        assert isinstance(jobs.models_huey.storage, PriorityRedisStorage)
        for vm_id in ids[:6] + legacy + legacy:
            jobs.voicemail.process(vm_id)

        # Kill whichever worker is first seen transcribing, in the middle of it.
        _wait_for(lambda: any(markers.iterdir()), 30, "a worker starts a transcription")
        first = next(markers.iterdir())
        victim_audio, victim_pid, _ = first.name.rsplit(".", 2)
        time.sleep(0.3)
        [killed] = [w for w in workers if w.proc.pid == int(victim_pid)]
        killed.proc.send_signal(signal.SIGKILL)
        killed.proc.wait()
        [survivor] = [w for w in workers if w is not killed]
        [victim] = [r["id"] for r in db.query("SELECT id FROM voicemails WHERE audio_path = ? AND state = 'received'",
                                              (victim_audio,)) if r["id"] in ids[:6]]

        # The survivor takes the rest; the victim's task went with its worker.
        def others_done() -> bool:
            states = {r["id"]: r["state"] for r in db.query("SELECT id, state FROM voicemails")}
            return all(states[i] == "lead_created" for i in ids if i != victim)

        _wait_for(others_done, 60, "the surviving worker finishes the other voicemails")
        _wait_for(lambda: jobs.models_huey.pending_count() == 0, 10, "the models' queue empties")
        assert db.one("SELECT state FROM voicemails WHERE id = ?", (victim,))["state"] == "received"
        assert survivor.proc.poll() is None

        # The sweep, as the quick work runs it where the models are elsewhere (nothing loaded here),
        # once the voicemail counts as stuck, wakes it again.
        # Time moves past the killed worker's lease, for this process and the workers alike.
        ahead = voicemail.STUCK_AFTER + timedelta(minutes=1)
        (markers.parent / "clock-offset").write_text(str(ahead.total_seconds()))
        real_now = clock.now
        monkeypatch.setattr(clock, "now", lambda: real_now() + ahead)
        monkeypatch.setattr(jobs.context, "models_elsewhere", True)
        assert jobs.voicemail.sweep_voicemail.call_local() == 1
        _wait_for(lambda: (markers / f"{victim_audio}.{survivor.proc.pid}.started").exists(), 40,
                  "the sweep wakes the lost voicemail and the survivor takes it")
        # Stopped mid-transcription by SIGTERM (systemd's stop), a models' worker finishes it first.
        survivor.proc.send_signal(signal.SIGTERM)
        assert survivor.proc.wait(20) == 0
        assert db.one("SELECT state FROM voicemails WHERE id = ?", (victim,))["state"] == "lead_created"
    finally:
        for w in workers:
            w.stop()
    started = {m.name for m in markers.iterdir()}
    assert {int(n.rsplit(".", 2)[1]) for n in started} == {w.proc.pid for w in workers}, "both workers took work"

    vms = db.query("SELECT id, state, lead_id FROM voicemails ORDER BY id")
    assert [v["id"] for v in vms] == ids
    assert all(v["state"] == "lead_created" for v in vms), vms
    lead_ids = [v["lead_id"] for v in vms]
    assert None not in lead_ids and len(set(lead_ids)) == len(ids)
    # One voicemail, one lead: no lead without its voicemail, none made twice.
    assert db.one("SELECT count(*) AS n FROM leads WHERE business_id = ?", (bid,))["n"] == len(ids)
    sms = db.query("SELECT lead_id, count(*) AS n FROM outbox WHERE business_id = ? GROUP BY lead_id", (bid,))
    assert {r["lead_id"]: r["n"] for r in sms} == dict.fromkeys(lead_ids, 1)
    db.close()


def test_sqlite_stays_the_default(config, db):
    assert (config.queue.backend, config.queue.redis_url, config.queue.models_in_process) == ("sqlite", "", True)
    jobs.configure(config, db)
    assert isinstance(jobs.huey.storage, SqliteStorage) and isinstance(jobs.models_huey.storage, SqliteStorage)
    assert config.queue_path.exists() and (config.data_dir / jobs.MODELS_QUEUE_FILE).exists()
    assert not (config.data_dir / jobs.QUEUE_ID_FILE).exists()
    assert jobs.check_queue(config) is None
    worker = jobs.InProcessWorker(config)
    assert worker.consumer is not None and worker.model_consumer is not None
    worker.start()
    try:
        beat = jobs.system.heartbeat()
        _wait_for(lambda: jobs.huey.result(beat.id, preserve=True) is not None, 15, "the heartbeat runs")
    finally:
        worker.stop()


def test_healthz_heartbeat_and_metrics_on_redis(tmp_path, redis_url):
    redis.Redis.from_url(redis_url).flushall()
    srv = ServerProcess(tmp_path, demo=False, queue={"backend": "redis", "redis_url": redis_url})
    srv.start()
    try:
        # /healthz asks for a heartbeat once the queue is empty (start-up's catch-up sweeps first).
        answers: list[dict] = []
        _wait_for(lambda: answers.append(httpx.get(srv.url + "/healthz", timeout=10).json())
                  or answers[-1]["heartbeat_requested"], 15, "/healthz asks for a heartbeat")
        first = answers[-1]
        assert first["queue_depth"] == 0

        def alive() -> bool:
            return httpx.get(srv.url + "/healthz", timeout=10).json()["worker_alive"]

        _wait_for(alive, 20, "the heartbeat goes through Redis and a worker runs it")
        metrics = httpx.get(srv.url + "/metrics", timeout=10).text
    finally:
        srv.stop()
    assert 'capteo_queue_depth{queue="models_huey"} 0.0' in metrics
    assert 'capteo_queue_scheduled{queue="huey"} 0.0' in metrics
    # The heartbeat's result is in Redis, under this data directory's own queue names.
    queue_id = (tmp_path / "data" / jobs.QUEUE_ID_FILE).read_text().strip()
    client = redis.Redis.from_url(redis_url)
    assert client.hget(f"huey.results.capteo_{queue_id}", first["heartbeat_requested"]) is not None
    assert not any(b"capteo" in k and queue_id.encode() not in k for k in client.keys("huey.*"))


def test_backend_redis_needs_its_url(tmp_path):
    path = write_config(tmp_path, queue={"backend": "redis"})
    with pytest.raises(config_mod.ConfigError, match=r"\[queue\] redis_url is required"):
        config_mod.load(path, env={})
    with pytest.raises(config_mod.ConfigError, match=r"\[queue\] redis_url"):
        config_mod.load(path, env={"CAPTEO_QUEUE_REDIS_URL": "http://localhost:6379"})
    with pytest.raises(config_mod.ConfigError, match=r"\[queue\] backend"):
        config_mod.load(path, env={"CAPTEO_QUEUE_BACKEND": "rabbitmq"})
    cfg = config_mod.load(path, env={"CAPTEO_QUEUE_REDIS_URL": "redis://:pw@127.0.0.1:6379/2"})
    assert (cfg.queue.backend, jobs.redis_address(cfg)) == ("redis", "redis://127.0.0.1:6379/2")


def test_a_redis_that_is_down_is_said_in_plain_words(config, db, tmp_path):
    down = f"redis://127.0.0.1:{free_port()}/0"
    cfg = config_mod.load(config.path, env={"CAPTEO_QUEUE_BACKEND": "redis", "CAPTEO_QUEUE_REDIS_URL": down})
    assert "does not answer" in jobs.check_queue(cfg)
    # The worker refuses to start, in one line, without a traceback.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTEO_")}
    env.update(CAPTEO_QUEUE_BACKEND="redis", CAPTEO_QUEUE_REDIS_URL=down)
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "worker", "--models"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"queue: the queue's Redis at {down} does not answer" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    # `run.py check` says it among what is missing.
    checked = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config.path), "check"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert checked.returncode == 1 and "Traceback" not in checked.stderr + checked.stdout
    assert f"queue: UNREACHABLE: the queue's Redis at {down} does not answer" in checked.stdout
    # Work asked for meanwhile is not lost and fails no request: capteo.db has it, the sweeps wake it.
    jobs.configure(cfg, db)
    assert jobs.intake.geocode(1) is not None


def test_with_the_models_in_other_processes_the_sweep_wakes_them_without_loading_a_model(config, db, monkeypatch,
                                                                                          tmp_path):
    cfg = config_mod.load(config.path, env={"CAPTEO_QUEUE_MODELS_IN_PROCESS": "false"})
    jobs.configure(cfg, db)
    worker = jobs.InProcessWorker(cfg)  # what the web server starts
    assert worker.model_consumer is None and worker.consumer is not None and jobs.context.models_elsewhere

    def no_models():
        raise AssertionError("the quick work loaded the models")

    monkeypatch.setattr(jobs.voicemail, "engine", no_models)
    bid, _ = make_business(db, "vm", "Plomberie VM", custom=False)
    wav = speak("Bonjour, rappelez-moi.", "fr", tmp_path / "a.wav").read_bytes()
    voicemail.receive(db, cfg, business_id=bid, data=wav, caller_id="+15145550101", source="upload", actor="test")
    # Still to transcribe: woken for the models' workers, which wait for the model if they have none.
    assert jobs.voicemail.sweep_voicemail.call_local() == 1
    assert jobs.models_huey.pending_count() == 1


def test_a_chat_reply_lost_with_its_worker_is_answered_by_the_sweep(redis_config, monkeypatch):
    from app import businesses, chat

    cfg = redis_config
    db = Database(cfg.db_path)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    business = businesses.get(db, bid)
    token, cid = chat.start(db, business, "fr", consent_version="test")
    chat.post(db, cfg, chat.by_session(db, bid, token), "Fuite sous l'évier")
    jobs.configure(cfg, db)
    jobs.chat.reply(cid)
    # A models' worker takes the task (Redis forgets it as it hands it over), then dies.
    assert jobs.models_huey.dequeue() is not None and jobs.models_huey.pending_count() == 0
    assert chat.waiting_for_reply(chat.get_any(db, cid))
    # The quick work's sweep, once the reply is late, answers with the guided conversation.
    later = clock.now() + timedelta(seconds=cfg.chat.reply_timeout_seconds + 1)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert jobs.chat.sweep_chat.call_local() == 1
    assert not chat.waiting_for_reply(chat.get_any(db, cid))
    assert [m["role"] for m in chat.messages(db, cid)][-2:] == ["visitor", "assistant"]
    db.close()


def test_while_redis_fails_no_task_is_sent_to_it_until_it_answers_a_ping_again(config, db, monkeypatch, caplog,
                                                                                tmp_path):
    """A Redis that fails costs one task its try (here it stops answering: the socket timeout,
    on the request that asked; unreachable, the 5 s connect timeout). Then no task is sent to
    it, each lost as a refused one is (capteo.db has its work, the sweeps wake it), while a
    thread of its own PINGs it every REDIS_PROBE_S; once it answers, tasks are queued again.
    One plain log line for all the lost ones."""
    monkeypatch.setattr(jobs, "REDIS_PROBE_S", 0.2)
    monkeypatch.setattr(jobs, "_refused", [0, -60.0])
    caplog.set_level(logging.INFO, logger="capteo.queue")
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    cfg = config_mod.load(config.path, env={"CAPTEO_QUEUE_BACKEND": "redis",
                                            "CAPTEO_QUEUE_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    try:
        jobs.configure(cfg, db)
        assert isinstance(jobs.huey.storage, PriorityRedisStorage)
        jobs.huey.flush()
        pool = jobs.huey.storage.conn.connection_pool
        monkeypatch.setattr(pool, "connection_kwargs", {**pool.connection_kwargs, "socket_timeout": 0.5})
        pool.reset()  # new connections, with that timeout
        caplog.clear()
        redis_proc.send_signal(signal.SIGSTOP)  # Redis stops answering; what is sent waits in its socket
        t0 = time.monotonic()
        assert jobs.intake.geocode(1) is not None  # sent, and timed out: the breaker opens
        assert jobs.huey._redis_down
        for lead_id in range(2, 22):  # not one of them is sent (nor waits)
            assert jobs.intake.geocode(lead_id) is not None
        assert time.monotonic() - t0 < 3
        time.sleep(1.5)  # the probe asks meanwhile, and times out: still open
        assert jobs.huey._redis_down
        refused = [r for r in caplog.records if r.name == "capteo.queue" and "refused" in r.getMessage()]
        assert len(refused) == 1 and refused[0].exc_info is None  # one plain line, not one per task
        assert "TimeoutError" in refused[0].getMessage()

        redis_proc.send_signal(signal.SIGCONT)  # Redis answers again: the probe's next PING says so
        _wait_for(lambda: not jobs.huey._redis_down, 15, "the probe answered")
        assert "answers again" in caplog.text
        # What Redis holds: at most the first task (its write reached Redis as it resumed), none of the 20 others.
        queued = jobs.huey.pending_count()
        assert queued <= 1
        for lead_id in (22, 23, 24):
            jobs.intake.geocode(lead_id)
        assert jobs.huey.pending_count() == queued + 3
    finally:
        redis_proc.send_signal(signal.SIGCONT)
        redis_proc.terminate()
        redis_proc.wait(10)
        jobs.configure(config, db)  # back to the data directory's queues: no socket left to this Redis
