"""The form end to end on a real server: the in-process worker sends the owner's SMS
through (fake) Twilio and geocodes through (fake) geocoder.ca; work lost from the
queue is found again after a crash."""

from __future__ import annotations

import re
import signal
import time

import httpx
import pytest

from app.db import connect
from tests.fakes import FakeGeocoder, FakeTwilio
from tests.support.app import ServerProcess

pytestmark = pytest.mark.slow


def _env(twilio, geocoder):
    return {"CAPTEO_TWILIO_ACCOUNT_SID": twilio.account_sid, "CAPTEO_TWILIO_FROM_NUMBER": "+15145550199",
            "CAPTEO_TWILIO_API_BASE": twilio.url, "CAPTEO_SECRET_TWILIO_AUTH_TOKEN": twilio.auth_token,
            "CAPTEO_GEOCODER_API_BASE": geocoder.url}


def _submit(url, slug="demo"):
    with httpx.Client(base_url=url) as http:
        page = http.get(f"/fr/f/{slug}")
        token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
        cf = re.findall(r'name="(cf_\d+)" value="house"', page.text)
        data = {"form_token": token, "first_name": "Hélène", "phone": "514 555-0101", "need": "Fuite d'eau",
                "postal_code": "H2J 2X7", "consent": "yes", cf[0]: "house"}
        r = http.post(f"/fr/f/{slug}", data=data)
        assert r.status_code == 200, r.text
        return re.search(r"<strong>([2-9A-Z]{7})</strong>", r.text).group(1)


def _lead(srv, reference):
    conn = connect(srv.directory / "data" / "capteo.db")
    try:
        return next(iter(conn.execute("SELECT * FROM leads WHERE reference = ?", (reference,))))
    finally:
        conn.close()


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_submission_reaches_the_owner_by_sms_and_the_map(tmp_path):
    with FakeTwilio() as twilio, FakeGeocoder() as geocoder:
        srv = ServerProcess(tmp_path, extra_env=_env(twilio, geocoder))
        srv.start()
        try:
            reference = _submit(srv.url)
            assert _wait(lambda: len(twilio.sent) == 1), srv.log.read_text()[-3000:]
            lead = _lead(srv, reference)
            assert twilio.sent[0]["To"] == "+15145550100"
            assert twilio.sent[0]["Body"] == f"Nouvelle demande sur Capteo - {srv.url}/fr/app/leads/{lead['id']}"
            assert _wait(lambda: _lead(srv, reference)["geocode_status"] == "done")
            assert _lead(srv, reference)["latitude"] == pytest.approx(45.5288)
        finally:
            assert srv.stop() == 0


def test_work_lost_from_the_queue_is_found_after_a_crash(tmp_path):
    with FakeTwilio() as twilio, FakeGeocoder() as geocoder:
        # No worker: the wake-up tasks wait in queue.db...
        srv = ServerProcess(tmp_path, extra_env=_env(twilio, geocoder), args=("--no-worker",))
        srv.start()
        reference = _submit(srv.url)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        # ...and are lost, as Huey loses a task whose worker dies mid-run.
        for f in (tmp_path / "data").glob("queue.db*"):
            f.unlink()
        assert twilio.sent == []
        srv.args = []
        srv.start()
        try:
            assert _wait(lambda: len(twilio.sent) == 1), srv.log.read_text()[-3000:]
            assert _wait(lambda: _lead(srv, reference)["geocode_status"] == "done")
        finally:
            assert srv.stop() == 0
        assert len(twilio.sent) == 1
