"""A hostile stranger against a real server (issue 10, holes 1 and 3): bodies too large
or with too many fields are refused before they are read, clients that trickle their
headers or body are cut off, /healthz keeps answering meanwhile, and the access log
keeps no query string, token or client address. Raw sockets, loopback only, every
loop bounded."""

from __future__ import annotations

import contextlib
import html
import re
import socket
import threading
import time

import httpx
import pytest

from app import businesses, migrations
from app import config as config_mod
from app.businesses import token_hash
from app.db import Database
from tests.support.app import ServerProcess, csrf_token, write_config
from tests.support.people import make_business, signed_in

pytestmark = pytest.mark.slow

TIMEOUT = 2  # [server] request_timeout of the test server, in seconds


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server whose clients get TIMEOUT seconds, and one business with a PBX token."""
    srv = ServerProcess(tmp_path_factory.mktemp("hostile"), demo=False,
                        extra_env={"CAPTEO_SERVER_REQUEST_TIMEOUT": str(TIMEOUT)})
    config = config_mod.load(srv.config_path, env={})
    config.ensure_dirs()
    migrations.apply(config.db_path)
    db = Database(config.db_path)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with db.write() as conn:
        conn.execute("UPDATE businesses SET pbx_token_hash = ? WHERE id = ?", (token_hash("pbx-token"), bid))
    db.close()
    srv.start()
    yield srv
    srv.stop()


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def head(path: str, *, length: int | None = None, chunked: bool = False,
         content_type: str = "application/x-www-form-urlencoded") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Type: {content_type}"]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_until_closed(sock: socket.socket, within: float, stop_at: bytes | None = None) -> tuple[bytes, bool]:
    """What the server sends, and whether it closed the connection within `within` s
    (or until it has sent `stop_at`)."""
    sock.settimeout(0.2)
    received, deadline = b"", time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset: closed while we were still sending
            return received, True
        if not chunk:
            return received, True
        received += chunk
        if stop_at and stop_at in received:
            break
    return received, False


def send_quietly(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the server refused and closed: that is what we want
        sock.sendall(data)


def test_regression_an_oversized_body_is_refused_before_it_is_read(server):
    """Was: every route read 26 MB; a 25 MB form of two million fields took seconds of the
    event loop and hundreds of MB."""
    sock = connect(server)
    t0 = time.monotonic()
    sock.sendall(head("/fr/login", length=25_000_000))
    send_quietly(sock, b"a=" + b"x" * 100_000)
    answer, closed = read_until_closed(sock, within=2)
    assert answer.startswith(b"HTTP/1.1 413") and closed
    assert time.monotonic() - t0 < 1.5
    sock.close()


def test_an_oversized_chunked_body_is_refused_once_it_passes_the_limit(server):
    sock = connect(server)
    sock.sendall(head("/fr/privacy/request", chunked=True))
    chunk = b"%x\r\n%s\r\n" % (16384, b"a" * 16384)
    for _ in range(8):  # 128 KiB, twice the limit
        send_quietly(sock, chunk)
    answer, closed = read_until_closed(sock, within=2)
    assert answer.startswith(b"HTTP/1.1 413") and closed
    sock.close()


def test_regression_a_trickling_body_is_cut_off(server):
    """Was: a body sent one byte at a time held its connection for as long as the client liked."""
    sock = connect(server)
    sock.sendall(head("/fr/login", length=1000))
    t0 = time.monotonic()
    stop = threading.Event()

    def trickle():
        for _ in range(40):  # at most 10 s
            if stop.wait(0.25):
                return
            try:
                sock.sendall(b"a")
            except OSError:
                return

    sender = threading.Thread(target=trickle)
    sender.start()
    answer, closed = read_until_closed(sock, within=TIMEOUT + 3)
    stop.set()
    sender.join()
    assert answer.startswith(b"HTTP/1.1 408") and closed
    assert TIMEOUT - 0.5 < time.monotonic() - t0 < TIMEOUT + 2
    assert "La connexion était trop lente" in html.unescape(answer.decode("utf-8", "replace"))
    sock.close()


def test_a_voicemail_upload_gets_the_longer_upload_time(server):
    """A PBX on a slow line: the upload door waits [voicemail] upload_timeout, not request_timeout."""
    body = (b'--B\r\nContent-Disposition: form-data; name="audio"; filename="vm.wav"\r\n'
            b"Content-Type: audio/wav\r\n\r\n" + b"\0" * 100_000 + b"\r\n--B--\r\n")
    sock = connect(server)
    sock.sendall(b"POST /api/voicemail HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer pbx-token\r\n"
                 b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: %d\r\n\r\n" % len(body))
    sock.sendall(body[:50_000])
    time.sleep(TIMEOUT + 1)
    sock.sendall(body[50_000:])
    answer, _ = read_until_closed(sock, within=5, stop_at=b'"error"')
    assert answer.startswith(b"HTTP/1.1 400") and b'"error"' in answer  # read in full, then refused as audio
    sock.close()


@pytest.mark.parametrize("start", [b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_regression_trickling_or_silent_headers_are_dropped(server, start):
    """Was: uvicorn waits for request headers without a limit (its keep-alive timeout only
    starts after a first answer)."""
    sock = connect(server)
    t0 = time.monotonic()
    sock.sendall(start)
    answer = b""
    for _ in range(40):  # one byte of a header every 0.25 s, at most 10 s
        answer_part, closed = read_until_closed(sock, within=0.25)
        answer += answer_part
        if closed:
            break
        if start:
            send_quietly(sock, b"X")
    else:
        pytest.fail("the server kept a connection whose headers never ended")
    assert TIMEOUT - 0.5 < time.monotonic() - t0 < TIMEOUT + 2
    assert answer.startswith(b"HTTP/1.1 408")
    sock.close()


def test_regression_healthz_answers_while_hostile_bodies_arrive(server):
    """Was: four 25 MB forms in parallel made /healthz answer in 32 s."""
    body = "&".join(f"f{i}=v" for i in range(2_000_000)).encode()
    body += b"&c=" + b"x" * max(0, 25_000_000 - len(body))
    stop = threading.Event()

    def attacker():
        for _ in range(20):  # bounded
            if stop.is_set():
                return
            sock = connect(server)
            send_quietly(sock, head("/fr/login", length=len(body)) + body)
            read_until_closed(sock, within=2)
            sock.close()

    def trickler():
        sock = connect(server)
        send_quietly(sock, head("/fr/login", length=10_000))
        while not stop.wait(0.2):
            send_quietly(sock, b"a")
        sock.close()

    threads = [threading.Thread(target=attacker) for _ in range(4)] + \
              [threading.Thread(target=trickler) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        latencies = []
        for _ in range(10):
            t0 = time.monotonic()
            assert httpx.get(server.url + "/healthz", timeout=5).status_code == 200
            latencies.append(time.monotonic() - t0)
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert max(latencies) < 1, latencies


def test_regression_the_access_log_keeps_no_query_token_or_address(server):
    """Was: uvicorn's access log wrote query strings (a phone number in an export, search
    words, the operator key, ICS tokens in paths) and every client's address."""
    for path in ["/fr/app/leads?q=5145550199&phone=%2B15145550199", "/ics/secretIcsToken42.ics",
                 "/fr/operator/incidents?key=operatorKey4242", "/healthz?probe=sonde7777",
                 "/nowhere/secretPathPart?x=1"]:
        httpx.get(server.url + path, timeout=5)
    time.sleep(0.3)
    log = server.log.read_text()
    for secret in ["5145550199", "secretIcsToken42", "operatorKey4242", "sonde7777", "secretPathPart"]:
        assert secret not in log
    startup = ("Capteo listening on", "Uvicorn running on")
    assert not [line for line in log.splitlines() if "127.0.0.1" in line and not line.strip().startswith(startup)
                and "Uvicorn running on" not in line]
    access = [line for line in log.splitlines() if "capteo.access" in line]
    assert any(re.search(r"GET /ics/\{token\} 404 \d+ ms$", line) for line in access)
    assert any(re.search(r"GET /healthz 200 \d+ ms$", line) for line in access)
    assert any(re.search(r"GET /fr/app/leads 303 \d+ ms$", line) for line in access)
    # A client that hung up mid-body is not a server error.
    assert " 500 " not in "\n".join(access) and "Traceback" not in log


# ---- in-process: the doors and their translated refusals ------------------------------------------

def test_too_large_and_too_many_fields_get_a_translated_413_and_ordinary_forms_pass(client, db):
    token = csrf_token(client)
    big = client.post("/fr/login", content=b"a=" + b"x" * 70_000,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413 and "Trop de données envoyées d'un coup" in html.unescape(big.text)
    many = "&".join(f"f{i}=" for i in range(1500)) + f"&_csrf_token={token}"
    refused = client.post("/en/login", content=many.encode(),
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 413 and "Too much sent at once" in refused.text
    parts = {f"f{i}": "v" for i in range(1500)}
    multipart = client.post("/fr/login", files={"x": ("x.txt", b"x")}, data=parts)
    assert 400 <= multipart.status_code < 500
    # A real form, padded to 900 fields, is still read (and its password is simply wrong).
    fine = "&".join(f"f{i}=" for i in range(900)) + f"&_csrf_token={token}&email=a%40b.ca&password=nope"
    ok = client.post("/fr/login", content=fine.encode(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert ok.status_code == 400


@pytest.fixture
def uploads(tmp_path, migrated_db):
    """The app with a 300 kB voicemail limit: its upload doors take 1.3 MB bodies."""
    import shutil

    from litestar.testing import TestClient

    from app.db import Database
    from app.web import create_app

    cfg = config_mod.load(write_config(tmp_path, voicemail={"max_bytes": 300_000}), env={})
    cfg.ensure_dirs()
    shutil.copyfile(migrated_db, cfg.db_path)
    db = Database(cfg.db_path)
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password="x" * 12)
        conn.execute("UPDATE businesses SET pbx_token_hash = ? WHERE id = ?", (token_hash("pbx-token"), bid))
    with TestClient(create_app(cfg, run_worker=False), base_url="http://127.0.0.1") as c:
        c.csrf = signed_in(c, db, owner, bid)
        yield c
    db.close()


def test_only_the_two_voicemail_doors_take_large_bodies(uploads):
    not_audio = b"RIFF" + b"\0" * 200_000
    pbx = uploads.post("/api/voicemail", headers={"authorization": "Bearer pbx-token"},
                       files={"audio": ("vm.wav", not_audio, "audio/wav")})
    assert pbx.status_code == 400 and "error" in pbx.json()  # read, then refused as audio
    dashboard = uploads.post("/fr/app/voicemail", data={"_csrf_token": uploads.csrf},
                             files={"audio": ("vm.wav", not_audio, "audio/wav")})
    assert dashboard.status_code == 422
    too_big = uploads.post("/api/voicemail", headers={"authorization": "Bearer pbx-token"},
                           files={"audio": ("vm.wav", b"\0" * 1_400_000, "audio/wav")})
    assert too_big.status_code == 413 and too_big.json()["status_code"] == 413
    # Any other route: the small limit.
    settings = uploads.post("/fr/app/settings", data={"_csrf_token": uploads.csrf, "name": "x" * 200_000})
    assert settings.status_code == 413
