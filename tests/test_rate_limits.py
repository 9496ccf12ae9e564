"""Rate limits that hold under attack (issue 10, hole 8): the slot is taken before the
work in one step, so concurrent requests cannot all pass the check together; behind a
proxy, the address the proxy wrote counts, not the one the client typed."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections import Counter

import httpx
import pytest
from litestar.testing import TestClient

from app import businesses, form, migrations
from app import config as config_mod
from app.businesses.ratelimit import RateLimiter
from app.db import Database
from app.web import create_app
from tests.support.app import ROOT, ServerProcess, csrf_token, write_config
from tests.support.people import make_business

FORM_SECRET = "rate-limit-test-forms-secret"


def at_once(count: int, request) -> Counter:
    """`request(i)` from `count` threads released together; the status codes they got."""
    barrier = threading.Barrier(count)
    codes: list[int] = []

    def one(i: int) -> None:
        barrier.wait()
        codes.append(request(i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return Counter(codes)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server (real argon2, real threads) with one business and its form."""
    directory = tmp_path_factory.mktemp("ratelimits")
    srv = ServerProcess(directory, demo=False, extra_env={"CAPTEO_SECRET_FORMS": FORM_SECRET})
    config = config_mod.load(srv.config_path, env={})
    config.ensure_dirs()
    migrations.apply(config.db_path)
    db = Database(config.db_path)
    srv.business_id, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    db.close()
    srv.start()
    yield srv
    srv.stop()


def test_regression_concurrent_wrong_sign_ins_get_exactly_the_limit(server):
    """Was: checked before and recorded after the password check, so every attempt that
    arrived during the hashing passed (100 concurrent wrong passwords: 10 tries, not 5)."""
    with httpx.Client(base_url=server.url) as browser:
        token = csrf_token(browser)
        cookies = dict(browser.cookies)

    def sign_in(i: int) -> int:
        return httpx.post(server.url + "/fr/login", cookies=cookies, timeout=60, data={
            "_csrf_token": token, "email": "victim@example.com", "password": f"guess-{i}"}).status_code

    assert at_once(16, sign_in) == {400: 5, 429: 11}


def test_regression_concurrent_form_posts_get_exactly_the_limit(server):
    """Was: 40 concurrent posts of the public form stored 8 leads, not 5."""
    tokens = [form.issue_token(FORM_SECRET, server.business_id) for _ in range(20)]

    def post(i: int) -> int:
        return httpx.post(server.url + "/fr/f/gagnon", timeout=60, data={
            "form_token": tokens[i], "phone": "514 555-0101", "need": f"Fuite d'eau {i}",
            "consent": "yes"}).status_code

    assert at_once(20, post) == {200: 5, 429: 15}
    db = Database(server.directory / "data" / "capteo.db")
    assert db.query_one("SELECT count(*) AS n FROM leads")["n"] == 5
    db.close()


def test_the_limiter_hands_out_exactly_its_slots_to_threads():
    limiter = RateLimiter(limit=5, window=60)
    slots = []
    at_once(50, lambda i: slots.append(limiter.take("key")) or 0)
    assert sum(1 for s in slots if s is not None) == 5
    next(s for s in slots if s is not None).give_back()
    assert limiter.take("key") is not None and limiter.take("key") is None


@pytest.fixture
def proxied(tmp_path, migrated_db):
    """The app behind a proxy that appends the client's address to X-Forwarded-For."""
    import shutil

    cfg = config_mod.load(write_config(tmp_path, server={"trust_proxy_header": "X-Forwarded-For"}), env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    database = Database(cfg.db_path)
    bid, _ = make_business(database, "gagnon", "Plomberie Gagnon", custom=False)
    with database.write() as conn:
        businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password="right-password-1")
    database.close()
    with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as c:
        yield c


def _sign_in(client, token, password, forwarded_for, email="owner@gagnon.ca"):
    return client.post("/fr/login", headers={"x-forwarded-for": forwarded_for}, follow_redirects=False,
                       data={"_csrf_token": token, "email": email, "password": password}).status_code


def test_regression_a_spoofed_leftmost_forwarded_for_does_not_escape_the_limit(proxied):
    """Was: the leftmost X-Forwarded-For value, which the client writes, was taken as its
    address: a new made-up address at each try meant no limit at all."""
    token = csrf_token(proxied)
    # The proxy appended the real address (203.0.113.9) after whatever the client sent.
    codes = [_sign_in(proxied, token, "wrong", f"198.51.100.{i}, 203.0.113.9") for i in range(7)]
    assert codes == [400] * 5 + [429] * 2
    # Another real client (another address appended by the proxy) is not locked out.
    assert _sign_in(proxied, token, "wrong", "198.51.100.1, 203.0.113.10") == 400
    assert _sign_in(proxied, token, "right-password-1", "203.0.113.10") == 303


def test_a_successful_sign_in_does_not_count_as_a_failure(proxied):
    token = csrf_token(proxied)
    assert [_sign_in(proxied, token, "wrong", "203.0.113.5") for _ in range(4)] == [400] * 4
    assert _sign_in(proxied, token, "right-password-1", "203.0.113.5") == 303
    assert _sign_in(proxied, token, "wrong", "203.0.113.5") == 400  # the fifth failure
    assert _sign_in(proxied, token, "right-password-1", "203.0.113.5") == 429


def test_form_posts_that_do_not_count_give_their_slot_back(client, db, config):
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)

    def post(**fields):
        token = re.search(r'name="form_token" value="([^"]+)"', client.get("/fr/f/gagnon").text).group(1)
        return client.post("/fr/f/gagnon", data={"form_token": token, **fields}).status_code

    assert [post(phone="555", need="", consent="yes") for _ in range(7)] == [422] * 7
    good = {"phone": "514 555-0101", "need": "Chauffe-eau", "consent": "yes"}
    assert [post(**good) for _ in range(6)] == [200] * 5 + [429]


def _check(tmp_path, **server):
    cfg = write_config(tmp_path, server=server)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "check"],
                          capture_output=True, text=True, cwd=ROOT).stdout


def test_check_warns_behind_a_proxy_without_the_header(tmp_path):
    out = _check(tmp_path, public_url="https://gagnon.example.ca")
    assert "WARNING: public_url is https" in out and 'trust_proxy_header = "CF-Connecting-IP"' in out
    assert "WARNING" not in _check(tmp_path, public_url="https://gagnon.example.ca",
                                   trust_proxy_header="CF-Connecting-IP")
    assert "WARNING" not in _check(tmp_path)  # plain http on localhost: no proxy in front
