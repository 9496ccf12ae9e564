"""Every public door, fed hostile and malformed input: never a 5xx, never a traceback.

Seeded, so a failure names a reproducible case. Doors: the request form and its field
check, the privacy request page, sign-in, and the phone systems' endpoint. Rate limits
are raised so that the inputs reach the handlers instead of stopping at a 429.
"""

from __future__ import annotations

import logging
import random
import re
import shutil
from urllib.parse import quote

import pytest
from litestar.testing import TestClient

from app import businesses
from app import config as config_mod
from tests.support.app import csrf_token, write_config
from tests.support.people import make_business

CASES_PER_DOOR = 420  # 5 doors: 2,100 cases

NASTY = [
    "", " ", "\x00", "\x00" * 10, "\r\n", "\t", "\u202e", "\ufeff", "\ud7ff", "é" * 300, "🚰" * 50,
    "<script>alert(1)</script>", "\"'><img src=x onerror=alert(1)>", "'; DROP TABLE leads; --",
    "=HYPERLINK(\"http://x\",\"y\")", "@SUM(1+1)", "+15145550101", "514-555-0101", "1" * 40, "9" * 400,
    "-1", "0", "99999999999999999999999999", "1e309", "NaN", "None", "null", "true", "[]", "{}",
    "0001-01-01", "9999-12-31", "2026-02-30", "24:61", "H2X 1Y4", "h2x1y4", "a@b", "a@b.c", "x" * 5001,
    "%00", "%ff%fe", "../../etc/passwd", "\\\\server\\share", "yes", "no", "on", "website",
]
FIELDS = ["first_name", "last_name", "phone", "email", "street_address", "postal_code", "need", "callback_time",
          "consent", "website", "form_token", "cf_1", "cf_2", "cf_999", "cf_", "", "kind", "person", "contact",
          "details", "business", "email", "password", "next", "caller_id", "audio", "x" * 300]


def _value(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.6:
        return rng.choice(NASTY)
    if pick < 0.85:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x2FFF)])) for _ in range(
            rng.randrange(0, 40)))
    return rng.choice(NASTY) * rng.randrange(1, 30)


def _fields(rng: random.Random, base: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The base fields first, then random ones (a name may repeat: every value is sent)."""
    sent: dict[str, list[str]] = {k: [v] for k, v in (base or {}).items()}
    for _ in range(rng.randrange(0, 12)):
        sent.setdefault(rng.choice(FIELDS), []).append(_value(rng))
    return sent


def _files(rng: random.Random) -> dict | None:
    if rng.random() < 0.15:
        return {rng.choice(FIELDS): ("x.bin", rng.randbytes(rng.randrange(0, 2000)), "application/octet-stream")}
    return None


@pytest.fixture
def door(tmp_path, migrated_db):
    cfg = config_mod.load(write_config(tmp_path, forms={"rate_limit": 100000},
                                       auth={"login_attempts": 100000}), env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    from app.db import Database
    from app.web import create_app

    db = Database(cfg.db_path)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon")
    with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as client:
        client.pbx_token = businesses.new_pbx_token(db, bid, actor="test")
        yield client
    db.close()


def _check(responses: list[tuple[str, int]], caplog) -> None:
    server_errors = [(case, status) for case, status in responses if status >= 500]
    assert not server_errors, f"{len(server_errors)} server errors, first: {server_errors[:3]}"
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text
    assert len(responses) >= CASES_PER_DOOR


def _token(client, lang="fr") -> str:
    page = client.get(f"/{lang}/f/gagnon").text
    return re.search(r'name="form_token" value="([^"]+)"', page).group(1)


def test_request_form(door, caplog):
    rng, seen = random.Random(1), []
    with caplog.at_level(logging.ERROR):
        for i in range(CASES_PER_DOOR):
            lang = rng.choice(["fr", "en", "de", "x"])
            slug = rng.choice(["gagnon", "gagnon", quote(_value(rng)[:50] or "x", safe="")])
            base = {"form_token": _token(door)} if rng.random() < 0.8 else {}
            r = door.post(f"/{lang}/f/{slug}", data=_fields(rng, base), files=_files(rng),
                          params={"embed": rng.choice(["1", "0", _value(rng)[:20]])})
            seen.append((f"form#{i}", r.status_code))
    _check(seen, caplog)


def test_field_check(door, caplog):
    rng, seen = random.Random(2), []
    with caplog.at_level(logging.ERROR):
        for i in range(CASES_PER_DOOR):
            base = {"form_token": _token(door)} if rng.random() < 0.8 else {}
            name = rng.choice(FIELDS)
            r = door.post("/fr/f/gagnon/check", data=_fields(rng, base), files=_files(rng),
                          headers={"hx-request": "true", "hx-trigger-name": name.encode("utf-8", "replace")})
            seen.append((f"check#{i}", r.status_code))
    _check(seen, caplog)


def test_privacy_request(door, caplog):
    rng, seen = random.Random(3), []
    with caplog.at_level(logging.ERROR):
        for i in range(CASES_PER_DOOR):
            base = {"_csrf_token": csrf_token(door)} if rng.random() < 0.8 else {}
            if rng.random() < 0.7:
                base.update({"business": rng.choice(["gagnon", _value(rng)[:60]]),
                             "kind": rng.choice(["access", "rectification", "erasure", _value(rng)[:20]])})
            r = door.post(rng.choice(["/fr/privacy/request", "/en/privacy/request"]), data=_fields(rng, base),
                          files=_files(rng))
            seen.append((f"privacy#{i}", r.status_code))
            if rng.random() < 0.2:
                r = door.get("/fr/privacy/request", params={"b": _value(rng)[:100]})
                seen.append((f"privacy-get#{i}", r.status_code))
    _check(seen, caplog)


def test_sign_in(door, caplog):
    rng, seen = random.Random(4), []
    with caplog.at_level(logging.ERROR):
        for i in range(CASES_PER_DOOR):
            base = {"_csrf_token": csrf_token(door)} if rng.random() < 0.8 else {}
            base.update({"email": _value(rng)[:300], "password": _value(rng)})
            r = door.post(rng.choice(["/fr/login", "/en/login"]), data=_fields(rng, base), files=_files(rng),
                          follow_redirects=False)
            seen.append((f"login#{i}", r.status_code))
            if rng.random() < 0.2:
                r = door.get("/fr/login", params={"next": _value(rng)[:300]}, follow_redirects=False)
                seen.append((f"login-get#{i}", r.status_code))
    _check(seen, caplog)


def test_phone_system_endpoint(door, caplog):
    rng, seen = random.Random(5), []
    with caplog.at_level(logging.ERROR):
        for i in range(CASES_PER_DOOR):
            auth = rng.choice(["", "Bearer ", "Bearer " + _value(rng)[:80], _value(rng)[:80], "Basic eDp5",
                               f"Bearer {door.pbx_token}", f"bearer  {door.pbx_token} "])
            files = {"audio": ("m.wav", rng.randbytes(rng.randrange(0, 3000)), "audio/wav")} \
                if rng.random() < 0.6 else _files(rng)
            r = door.post("/api/voicemail", data=_fields(rng), files=files,
                          headers={"authorization": auth.encode("utf-8", "replace"),
                                   "accept-language": rng.choice(["fr", "en", "", _value(rng)[:30]])
                                   .encode("utf-8", "replace")})
            seen.append((f"pbx#{i}", r.status_code))
    _check(seen, caplog)
