"""The outbox through Twilio, and geocoding through geocoder.ca, against local
servers that speak their wire formats."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app import clock, leads
from app.messaging import geocoding, outbox
from app.messaging.geocoding import GeocoderClient
from app.messaging.twilio import TwilioClient, TwilioError
from tests.fakes import FakeGeocoder, FakeTwilio
from tests.support.people import make_business


@pytest.fixture
def twilio():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture
def geocoder():
    with FakeGeocoder() as fake:
        yield fake


def client_for(fake: FakeTwilio, **kw) -> TwilioClient:
    return TwilioClient(account_sid=fake.account_sid, auth_user=kw.get("user", fake.account_sid),
                        auth_secret=kw.get("secret", fake.auth_token), from_number="+15145550199",
                        api_base=fake.url)


def queue_sms(db, to="+15145550100"):
    bid, _ = make_business(db, f"b{to[-4:]}", "B", notify=[to], custom=False)
    with db.write() as conn:
        lead = leads.create(conn, business_id=bid, channel="web", actor="test", need="x")
        business = next(iter(conn.execute("SELECT * FROM businesses WHERE id = ?", (bid,))))
        [message_id] = outbox.queue_new_lead_sms(conn, business=business, lead_id=lead["id"],
                                                 public_url="https://capteo.example")
    return message_id


def row(db, message_id):
    return db.query_one("SELECT * FROM outbox WHERE id = ?", (message_id,))


def test_twilio_wire_format(twilio):
    sid = client_for(twilio).send("+15145550100", "Nouvelle demande sur Capteo — https://x/fr/app/leads/1")
    assert sid.startswith("SM")
    sent = twilio.requests[-1]
    assert sent["path"] == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert sent["form"] == {"To": ["+15145550100"], "From": ["+15145550199"],
                            "Body": ["Nouvelle demande sur Capteo — https://x/fr/app/leads/1"]}
    assert sent["headers"]["Authorization"].startswith("Basic ")


def test_messaging_service_sid_replaces_from(twilio):
    client = client_for(twilio)
    client.messaging_service_sid = "MG" + "2" * 32
    client.send("+15145550100", "hi")
    assert twilio.requests[-1]["form"]["MessagingServiceSid"] == ["MG" + "2" * 32]
    assert "From" not in twilio.requests[-1]["form"]


@pytest.mark.parametrize("to, code", [("+15005550001", "21211"), ("+15005550004", "21610"),
                                      ("+15005550009", "21614")])
def test_permanent_errors_are_recorded_and_not_retried(db, twilio, to, code):
    message_id = queue_sms(db, to)
    assert outbox.send(db, client_for(twilio), message_id) == "failed"
    r = row(db, message_id)
    assert r["status"] == "failed" and r["error_code"] == code and r["attempts"] == 1
    assert r["error_message"]
    later = clock.now() + timedelta(days=1)
    assert message_id not in outbox.due(db, later)
    assert outbox.send(db, client_for(twilio), message_id, now=later) == "failed"
    assert len(twilio.requests) == 1


@pytest.mark.parametrize("scripted", [
    (429, {"code": 20429, "message": "Too Many Requests", "more_info": "", "status": 429}),
    (500, {"code": 20500, "message": "Internal Server Error", "more_info": "", "status": 500}),
    (503, "<html>Service Unavailable</html>"),
])
def test_rate_limits_and_server_errors_retry_with_backoff(db, twilio, scripted):
    message_id = queue_sms(db)
    twilio.script = [scripted, scripted]
    now = clock.now()
    assert outbox.send(db, client_for(twilio), message_id, now=now) == "pending"
    first = row(db, message_id)
    assert first["attempts"] == 1 and first["error_code"] in ("20429", "20500", "503")
    # Not due again before its backoff (1 min), due after.
    assert message_id not in outbox.due(db, now + timedelta(seconds=30))
    assert message_id in outbox.due(db, now + timedelta(seconds=61))
    assert outbox.send(db, client_for(twilio), message_id, now=now + timedelta(seconds=30)) == "pending"
    assert row(db, message_id)["attempts"] == 1  # too early: not even tried
    assert outbox.send(db, client_for(twilio), message_id, now=now + timedelta(seconds=61)) == "pending"
    assert row(db, message_id)["attempts"] == 2
    assert message_id not in outbox.due(db, now + timedelta(seconds=61 + 119))  # 2 min after the 2nd
    assert outbox.send(db, client_for(twilio), message_id, now=now + timedelta(seconds=61 + 121)) == "sent"
    done = row(db, message_id)
    assert done["provider_id"].startswith("SM") and done["error_code"] is None and done["sent_at"]
    assert len(twilio.sent) == 1


def test_gives_up_after_max_attempts(db, twilio):
    message_id = queue_sms(db)
    twilio.script = [(503, "down")] * outbox.MAX_ATTEMPTS
    now = clock.now()
    for i in range(outbox.MAX_ATTEMPTS):
        status = outbox.send(db, client_for(twilio), message_id, now=now + timedelta(days=i))
    assert status == "failed" and row(db, message_id)["attempts"] == outbox.MAX_ATTEMPTS


def test_bad_credentials_are_retried_later_not_lost(db, twilio):
    message_id = queue_sms(db)
    assert outbox.send(db, client_for(twilio, secret="wrong"), message_id) == "pending"
    assert row(db, message_id)["error_code"] == "20003"


def test_network_failure_is_retryable(db):
    message_id = queue_sms(db)
    dead = TwilioClient(account_sid="AC1", auth_user="AC1", auth_secret="x", from_number="+15145550199",
                        api_base="http://127.0.0.1:9")
    with pytest.raises(TwilioError) as e:
        dead.send("+15145550100", "x")
    assert e.value.retryable and e.value.code == "network"
    assert outbox.send(db, dead, message_id) == "pending"


def test_not_configured_never_sends_and_the_message_waits(db, config):
    message_id = queue_sms(db)
    assert TwilioClient.from_config(config) is None
    assert outbox.send(db, None, message_id) == "pending"
    assert row(db, message_id)["attempts"] == 0


def test_configured_from_config_and_secret(config, twilio, monkeypatch):
    from app import config as config_mod
    cfg = config_mod.load(config.path, env={"CAPTEO_TWILIO_ACCOUNT_SID": twilio.account_sid,
                                            "CAPTEO_TWILIO_FROM_NUMBER": "+15145550199",
                                            "CAPTEO_TWILIO_API_BASE": twilio.url})
    assert TwilioClient.from_config(cfg) is None  # no auth token yet
    monkeypatch.setenv("CAPTEO_SECRET_TWILIO_AUTH_TOKEN", twilio.auth_token)
    assert TwilioClient.from_config(cfg).send("+15145550100", "x").startswith("SM")


def test_a_claim_is_exclusive(db, twilio):
    """Two workers woken for one message: only one sends it."""
    message_id = queue_sms(db)
    with db.write() as conn:
        conn.execute("UPDATE outbox SET status = 'sending', claimed_at = ? WHERE id = ?",
                     (clock.now_iso(), message_id))
    assert outbox.send(db, client_for(twilio), message_id) == "sending"
    assert twilio.requests == []
    # ...unless the claimer died: its claim expires.
    later = clock.now() + outbox.CLAIM_TIMEOUT + timedelta(seconds=1)
    assert message_id in outbox.due(db, later)
    assert outbox.send(db, client_for(twilio), message_id, now=later) == "sent"


def _lead_with_postal(db, code, slug="geo"):
    bid, _ = make_business(db, slug, "Geo", custom=False)
    with db.write() as conn:
        lead = leads.create(conn, business_id=bid, channel="web", actor="test", need="x", postal_code=code,
                            geocode_status="pending", geocode_next_at=clock.now_iso())
    return bid, lead["id"]


def test_geocoding_found_and_cached(db, geocoder):
    client = GeocoderClient(api_base=geocoder.url, auth="tok")
    bid, lead_id = _lead_with_postal(db, "H2X 1Y4")
    assert geocoding.geocode_lead(db, client, lead_id) == "done"
    lead = leads.get(db, bid, lead_id)
    assert (lead["latitude"], lead["longitude"]) == (45.514278, -73.570102)
    assert geocoder.requests[0]["query"] == {"locate": ["H2X1Y4"], "json": ["1"], "auth": ["tok"]}
    with db.write() as conn:
        other = leads.create(conn, business_id=bid, channel="web", actor="test", need="y", postal_code="H2X 1Y4",
                             geocode_status="pending", geocode_next_at=clock.now_iso())
    assert geocoding.geocode_lead(db, client, other["id"]) == "done"
    assert len(geocoder.requests) == 1  # the second came from the cache


def test_geocoding_unknown_code_is_cached_as_not_found(db, geocoder):
    bid, lead_id = _lead_with_postal(db, "X0X 0X0")
    assert geocoding.geocode_lead(db, GeocoderClient(api_base=geocoder.url), lead_id) == "failed"
    lead = leads.get(db, bid, lead_id)
    assert lead["latitude"] is None and lead["geocode_status"] == "failed"
    assert db.query_one("SELECT found FROM geocode_cache WHERE postal_code = 'X0X 0X0'")["found"] == 0


@pytest.mark.parametrize("scripted", [
    (500, "oops"),
    (200, {"error": {"code": "006", "description": "Throttled: you have exceeded your daily limit."}}),
    (200, "not json"),
])
def test_geocoding_failure_leaves_no_coordinates_and_retries_later(db, geocoder, scripted):
    client = GeocoderClient(api_base=geocoder.url)
    bid, lead_id = _lead_with_postal(db, "H2J 2X7")
    geocoder.script = [scripted]
    now = clock.now()
    assert geocoding.geocode_lead(db, client, lead_id, now=now) == "pending"
    lead = leads.get(db, bid, lead_id)
    assert lead["latitude"] is None and lead["geocode_attempts"] == 1
    assert lead_id not in geocoding.pending(db, now)
    assert lead_id in geocoding.pending(db, now + timedelta(minutes=6))
    assert geocoding.geocode_lead(db, client, lead_id, now=now + timedelta(minutes=6)) == "done"
    assert db.query_one("SELECT count(*) AS n FROM geocode_cache")["n"] == 1


def test_the_service_log_holds_no_postal_code_or_provider_secret(geocoder, caplog):
    """httpx logs each request's URL, query string included, at INFO: run.py's logging keeps it
    to warnings, so a lead's postal code and the geocoder's token never reach the journal."""
    import logging

    import run

    levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "huey")}
    try:
        run.configure_logging()
        with caplog.at_level(logging.INFO):
            assert GeocoderClient(api_base=geocoder.url, auth="TOKEN-SECRET").locate("H2X 1Y4") is not None
        assert geocoder.requests[-1]["query"]["auth"] == ["TOKEN-SECRET"]  # it was asked, with both
        said = caplog.text
        assert "H2X1Y4" not in said and "TOKEN-SECRET" not in said and "locate=" not in said, said
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
