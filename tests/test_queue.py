"""The queue (issue 10): a heartbeat, an owner's SMS and a voicemail never wait behind
bulk work, and queue.db does not keep results nobody reads."""

from __future__ import annotations

import time

import pytest
from huey.signals import SIGNAL_COMPLETE, SIGNAL_EXECUTING

import jobs
from app import clock, leads
from app import config as config_mod
from app.messaging import outbox
from tests.fakes import FakeGeocoder, FakeTwilio
from tests.support.people import make_business

BACKLOG = 2000


@pytest.fixture
def queue_config(config, monkeypatch):
    """Twilio and geocoder.ca configured, against local fakes."""
    with FakeTwilio() as twilio, FakeGeocoder() as geocoder:
        monkeypatch.setenv("CAPTEO_SECRET_TWILIO_AUTH_TOKEN", twilio.auth_token)
        yield config_mod.load(config.path, env={
            "CAPTEO_TWILIO_ACCOUNT_SID": twilio.account_sid, "CAPTEO_TWILIO_FROM_NUMBER": "+15145550199",
            "CAPTEO_TWILIO_API_BASE": twilio.url, "CAPTEO_GEOCODER_API_BASE": geocoder.url}), twilio


@pytest.fixture
def started():
    """The names of the tasks the worker starts, in order (huey's own signal), and of
    those it finishes."""
    names: dict[str, list[str]] = {"started": [], "completed": []}

    def on_start(signal, task, *args, **kwargs):
        names["started"].append(task.name)

    def on_complete(signal, task, *args, **kwargs):
        names["completed"].append(task.name)

    jobs.huey.signal(SIGNAL_EXECUTING)(on_start)
    jobs.huey.signal(SIGNAL_COMPLETE)(on_complete)
    yield names
    jobs.huey.disconnect_signal(on_start, SIGNAL_EXECUTING)
    jobs.huey.disconnect_signal(on_complete, SIGNAL_COMPLETE)


def _leads_to_geocode(db, count=20):
    bid, _ = make_business(db, "geo", "Geo", custom=False)
    codes = ["H2X 1Y4", "H2J 2X7", "G1R 4P5", "J0B 1A0"]
    with db.write() as conn:
        return [leads.create(conn, business_id=bid, channel="web", actor="test", need="x",
                             postal_code=codes[i % len(codes)], geocode_status="pending",
                             geocode_next_at=clock.now_iso())["id"] for i in range(count)]


def _sms(db):
    bid, _ = make_business(db, "owner", "Plomberie Gagnon", notify=["+15145550100"], custom=False)
    with db.write() as conn:
        lead = leads.create(conn, business_id=bid, channel="web", actor="test", need="fuite")
        business = next(iter(conn.execute("SELECT * FROM businesses WHERE id = ?", (bid,))))
        [message_id] = outbox.queue_new_lead_sms(conn, business=business, lead_id=lead["id"],
                                                 public_url="https://capteo.example")
    return message_id


def test_heartbeat_and_sms_do_not_wait_behind_a_geocoding_backlog(db, queue_config, started):
    cfg, twilio = queue_config
    jobs.configure(cfg, db)  # no worker yet: the tasks wait in queue.db
    lead_ids = _leads_to_geocode(db)
    for i in range(BACKLOG):
        jobs.intake.geocode(lead_ids[i % len(lead_ids)])
    heartbeat = jobs.system.heartbeat()
    message_id = _sms(db)
    jobs.intake.send_sms(message_id)
    assert jobs.queue_depth() == BACKLOG + 2

    worker = jobs.InProcessWorker(cfg)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not {"heartbeat", "send_sms"} <= set(started["completed"]) and time.monotonic() < deadline:
            time.sleep(0.01)
        left_behind = jobs.queue_depth()
    finally:
        worker.stop()
    # Both are taken first; a worker thread that finished one may start a geocoding task
    # while the other thread is between taking its task and starting it.
    order = started["started"]
    before = {name: order[:order.index(name)].count("geocode") if name in order else None
              for name in ("heartbeat", "send_sms")}
    assert all(n is not None and n <= 10 for n in before.values()), f"geocoding tasks run first: {before}"
    assert left_behind > BACKLOG // 2  # most of the backlog was still waiting when they were done
    assert db.query_one("SELECT status FROM outbox WHERE id = ?", (message_id,))["status"] == "sent"
    assert len(twilio.sent) == 1

    # queue.db keeps the heartbeat's answer (what /healthz's id points to), nothing else.
    assert jobs.huey.result(heartbeat.id, preserve=True) is not None
    assert jobs.huey.storage.result_store_size() == 1


def _wait_for(condition, seconds=30):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_results_nobody_reads_are_not_kept(db, queue_config):
    cfg, _ = queue_config
    jobs.configure(cfg, db)
    lead_ids = _leads_to_geocode(db, count=4)
    tasks = [jobs.intake.geocode(lead_id) for lead_id in lead_ids] + [jobs.intake.send_sms(_sms(db))]
    worker = jobs.InProcessWorker(cfg)
    worker.start()
    try:
        _wait_for(lambda: jobs.queue_depth() == 0)
        first = jobs.system.heartbeat()
        _wait_for(lambda: jobs.huey.result(first.id, preserve=True) is not None)
        second = jobs.system.heartbeat()
        _wait_for(lambda: jobs.huey.result(second.id, preserve=True) is not None)
    finally:
        worker.stop()
    assert db.query("SELECT count(*) AS n FROM leads WHERE geocode_status = 'pending'") == [{"n": 0}]
    assert all(jobs.huey.result(t.id, preserve=True) is None for t in tasks)
    # Each heartbeat replaces the one before: one row, however long the service runs.
    assert jobs.huey.result(first.id, preserve=True) is None
    assert jobs.huey.storage.result_store_size() == 1


class SlowEngine:
    """A model that takes its time, as Whisper does on a long voicemail on a CPU: it
    holds a lock the way the real engine holds the models."""

    def __init__(self, seconds: float):
        import threading

        self.seconds = seconds
        self.lock = threading.Lock()
        self.entered = threading.Event()
        self.transcribed = 0

    def speech_ready(self) -> bool:
        return True

    def transcribe(self, path, business):
        self.entered.set()
        with self.lock:
            time.sleep(self.seconds)
            self.transcribed += 1
        return "Bonjour, c'est Hélène Côté, rappelez-moi au 514 555 0101.", "fr"

    def extract(self, transcript, caller_id, business, language):
        from app.extraction.rules import extract

        return extract(transcript, caller_id).as_dict()


def test_heartbeat_and_sms_do_not_wait_behind_voicemails(db, queue_config, monkeypatch, tmp_path):
    """Twenty voicemails on slow models: the heartbeat and an owner's SMS go through at
    once (the model work has its own queue and its one worker)."""
    from app import voicemail
    from tests.support.audio import speak

    cfg, twilio = queue_config
    jobs.configure(cfg, db)
    slow = SlowEngine(4.0)
    monkeypatch.setattr(jobs.voicemail, "engine", lambda: slow)
    bid, _ = make_business(db, "vm", "Plomberie VM", custom=False)
    wav = speak("Bonjour, rappelez-moi.", "fr", tmp_path / "a.wav").read_bytes()
    for _ in range(20):
        vm_id, _ = voicemail.receive(db, cfg, business_id=bid, data=wav, caller_id="+15145550101",
                                     source="upload", actor="test")
        jobs.voicemail.process(vm_id)
    worker = jobs.InProcessWorker(cfg)
    worker.start()
    try:
        # The voicemails reach the model first; every free thread that would take one has.
        assert slow.entered.wait(10)
        time.sleep(1.5)  # an idle worker thread polls at least every second
        heartbeat = jobs.system.heartbeat()
        message_id = _sms(db)
        jobs.intake.send_sms(message_id)
        _wait_for(lambda: jobs.huey.result(heartbeat.id, preserve=True) is not None and db.query_one(
            "SELECT status FROM outbox WHERE id = ?", (message_id,))["status"] == "sent", seconds=15)
        transcribed_meanwhile = slow.transcribed
    finally:
        worker.stop()
    # Done before the first voicemail was through the model (each takes 4 s). On one shared
    # queue, every worker thread held a voicemail waiting for the model lock: the heartbeat
    # and the SMS waited for one of them to finish.
    assert transcribed_meanwhile == 0
    assert jobs.models_huey.pending_count() > 0  # the voicemails were still waiting their turn
