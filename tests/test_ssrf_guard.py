"""The SSRF guard (app/integrations/guard.py): hostile URLs refused before any connection,
the address resolved once and pinned (DNS rebinding), and `post` against real local
receivers — plain HTTP and TLS with a certificate made here."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app import config as config_mod
from app.config import ConfigError
from app.integrations import guard
from app.integrations.guard import DeliveryError, Refused
from tests.support.app import ROOT, write_config

PUBLIC = "93.184.215.14"  # a global unicast address; never connected to by these tests

# Names the stub resolver knows (lowercase, as the guard must ask for them).
RESOLUTIONS = {
    "good.example": [PUBLIC],
    "rebound.example": ["127.0.0.1"],
    "127.0.0.1.nip.io": ["127.0.0.1"],
    "mixed.example": [PUBLIC, "10.0.0.1"],
    "mixed6.example": ["2606:4700::1111", "::1"],
    "internal.example": ["10.1.2.3"],
    "v6private.example": ["fd12::1"],
    "metadata.example": ["169.254.169.254"],
}


class StubResolver:
    """A dict-backed resolver that records every name it is asked for."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = dict(table)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


def load(tmp_path, env: dict[str, str] | None = None, **integrations) -> config_mod.Config:
    return config_mod.load(write_config(tmp_path, integrations=integrations), env=env or {})


# (URL, the code it is refused with). {P} is the port of a local listener that must never
# receive a connection; the configuration allows that port, so the address rules are what
# refuse those URLs.
HOSTILE = [
    # Loopback, in every notation a resolver accepts.
    ("https://127.0.0.1:{P}/", "loopback"),
    ("https://127.1:{P}/", "loopback"),
    ("https://127.0.1:{P}/", "loopback"),
    ("https://2130706433:{P}/", "loopback"),
    ("https://0x7f000001:{P}/", "loopback"),
    ("https://0177.0.0.1:{P}/", "loopback"),
    ("https://0x7f.1:{P}/", "loopback"),
    ("https://017700000001:{P}/", "loopback"),
    ("https://127.0.0.1.:{P}/", "loopback"),
    ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{P}/", "loopback"),  # full-width digits
    ("https://127\u30020\u30020\u30021:{P}/", "loopback"),  # ideographic full stops
    ("https://[::1]:{P}/", "loopback"),
    ("https://[0:0:0:0:0:0:0:1]:{P}/", "loopback"),
    ("https://[::ffff:127.0.0.1]:{P}/", "loopback"),
    ("https://[::ffff:7f00:1]:{P}/", "loopback"),
    ("https://[::127.0.0.1]:{P}/", "loopback"),  # IPv4-compatible
    # Unspecified (0.0.0.0 reaches this machine on Linux).
    ("https://0.0.0.0:{P}/", "unspecified"),
    ("https://0:{P}/", "unspecified"),
    ("https://[::]:{P}/", "unspecified"),
    # Private networks.
    ("https://10.0.0.1/", "private"),
    ("https://172.16.5.4/", "private"),
    ("https://172.31.255.255/", "private"),
    ("https://192.168.1.1/", "private"),
    ("https://[fd12::1]/", "private"),
    ("https://[fc00::1]/", "private"),
    # Link-local, carrier-grade NAT.
    ("https://169.254.1.1/", "link_local"),
    ("https://[fe80::1]/", "link_local"),
    ("https://100.64.0.1/", "cgnat"),
    ("https://100.127.255.254/", "cgnat"),
    # Cloud metadata services.
    ("https://169.254.169.254/", "metadata"),
    ("https://2852039166/", "metadata"),
    ("https://0xa9.0xfe.0xa9.0xfe/", "metadata"),
    ("https://[fd00:ec2::254]/", "metadata"),
    ("https://100.100.100.200/", "metadata"),
    ("https://[::ffff:169.254.169.254]/", "metadata"),
    ("https://metadata.example/", "metadata"),
    # Multicast, broadcast, reserved, benchmark, documentation.
    ("https://224.0.0.1/", "multicast"),
    ("https://239.255.255.250/", "multicast"),
    ("https://[ff02::1]/", "multicast"),
    ("https://255.255.255.255/", "broadcast"),
    ("https://240.0.0.1/", "reserved"),
    ("https://192.0.0.8/", "reserved"),
    ("https://198.18.0.1/", "benchmark"),
    ("https://192.0.2.10/", "documentation"),
    ("https://203.0.113.5/", "documentation"),
    ("https://[2001:db8::1]/", "documentation"),
    # IPv6 forms carrying a refused IPv4 address: NAT64, local NAT64, 6to4, Teredo.
    ("https://[64:ff9b::7f00:1]:{P}/", "loopback"),
    ("https://[64:ff9b::10.0.0.1]/", "private"),
    ("https://[64:ff9b:1::a00:1]/", "private"),
    ("https://[2002:7f00:1::]:{P}/", "loopback"),
    ("https://[2002:a00:1::1]/", "private"),
    ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{P}/", "loopback"),  # Teredo client 127.0.0.1
    ("https://[2001:0:a00:1::1]/", "private"),  # Teredo server 10.0.0.1
    # Schemes.
    ("http://good.example/", "scheme"),
    ("HTTP://127.0.0.1:{P}/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://127.0.0.1:{P}/_hello", "scheme"),
    ("ftp://good.example/", "scheme"),
    ("data:text/plain,hello", "scheme"),
    ("dict://127.0.0.1:{P}/", "scheme"),
    ("javascript:alert(1)", "scheme"),
    # Ports.
    ("https://good.example:22/", "port"),
    ("https://good.example:80/", "port"),
    ("https://good.example:8080/", "port"),
    ("https://good.example:0/", "port"),
    ("https://good.example:99999/", "port"),
    ("https://good.example:+443/", "port"),
    ("https://good.example:/", "port"),
    # User information.
    ("https://good.example@127.0.0.1:{P}/", "userinfo"),
    ("https://127.0.0.1:443@good.example/", "userinfo"),
    ("https://user:pass@good.example/", "userinfo"),
    ("https://@good.example/", "userinfo"),
    # localhost by name.
    ("https://localhost:{P}/", "localhost"),
    ("https://LOCALHOST./", "localhost"),
    ("https://foo.localhost:{P}/", "localhost"),
    ("https://Foo.LocalHost./", "localhost"),
    ("https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "localhost"),  # full-width
    # Names resolving to refused addresses (the stub resolver).
    ("https://rebound.example:{P}/", "loopback"),
    ("https://127.0.0.1.nip.io:{P}/", "loopback"),
    ("https://mixed.example/", "private"),  # a public, then a private address
    ("https://mixed6.example:{P}/", "loopback"),
    ("https://INTERNAL.Example./", "private"),
    ("https://v6private.example/", "private"),
    ("https://does-not-exist.example/", "unresolvable"),
    # No host, or one no resolver reads the same way.
    ("https:///path", "no_host"),
    ("https://:443/", "no_host"),
    ("https://?q=1", "no_host"),
    ("https://%31%32%37.0.0.1/", "malformed"),
    ("https://good.example%40127.0.0.1/", "malformed"),
    ("https://[fe80::1%25eth0]/", "malformed"),
    ("https://good.example\\@127.0.0.1/", "malformed"),
    ("https://127.0.0.1\t:{P}/", "malformed"),
    ("https://256.0.0.1/", "malformed"),
    ("https://1.2.3.4.5/", "malformed"),
    ("https://08.0.0.1/", "malformed"),
    ("https://::1/", "malformed"),
    ("https://[::1/", "malformed"),
    ("//127.0.0.1:{P}/", "malformed"),
    ("", "malformed"),
]


def test_hostile_urls_are_refused_before_any_connection(tmp_path, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    assert port not in (22, 80, 443, 8080, 8443)
    cfg = load(tmp_path, allowed_ports=f"443,8443,{port}")
    assert len(HOSTILE) >= 45

    def forbidden(*args, **kwargs):
        raise AssertionError(f"a refused URL led to a network call: {args!r}")

    resolver = StubResolver(RESOLUTIONS)
    monkeypatch.setattr(socket, "getaddrinfo", forbidden)
    monkeypatch.setattr(socket, "create_connection", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    try:
        wrong = []
        for template, code in HOSTILE:
            url = template.replace("{P}", str(port))
            try:
                target = guard.check(url, cfg, resolve=resolver)
            except Refused as e:
                assert e.code in guard.CODES and str(e), url
                if e.code != code:
                    wrong.append((url, code, e.code, str(e)))
            else:
                wrong.append((url, code, "passed", target))
        assert not wrong
    finally:
        monkeypatch.undo()
    # Only names went to the resolver, lowercased, without the trailing dot; never an IP
    # address in any notation.
    assert {host for host, _ in resolver.asked} <= set(RESOLUTIONS) | {"does-not-exist.example"}
    assert ("internal.example", 443) in resolver.asked
    listener.settimeout(0.3)
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()


def test_a_public_name_passes_and_keeps_its_resolved_addresses(tmp_path):
    cfg = load(tmp_path)
    resolver = StubResolver({"hooks.example.com": [PUBLIC, "2606:4700::1111", PUBLIC]})
    target = guard.check("https://Hooks.Example.COM.:8443/in/lead?x=1&y=%20#part", cfg, resolve=resolver)
    assert target == guard.Target(url="https://hooks.example.com:8443/in/lead?x=1&y=%20",
                                  scheme="https", host="hooks.example.com", port=8443,
                                  path="/in/lead?x=1&y=%20", addresses=(PUBLIC, "2606:4700::1111"))
    assert resolver.asked == [("hooks.example.com", 8443)]  # resolved once
    plain = guard.check("https://hooks.example.com", cfg, resolve=resolver)
    assert (plain.port, plain.path, plain.url) == (443, "/", "https://hooks.example.com/")
    # International names are resolved in their IDNA form; a non-ASCII path is percent-encoded.
    idn = guard.check("https://Bücher.example/é", cfg, resolve=StubResolver({"xn--bcher-kva.example": [PUBLIC]}))
    assert (idn.host, idn.path) == ("xn--bcher-kva.example", "/%C3%A9")
    # Public IP literals pass, unresolved; a mapped address is pinned as its IPv4 address and the
    # NAT64 form a DNS64 resolver gives for a public host is kept.
    assert guard.check(f"https://{PUBLIC}/", cfg, resolve=StubResolver({})).addresses == (PUBLIC,)
    assert guard.check("https://[::ffff:8.8.8.8]/", cfg).addresses == ("8.8.8.8",)
    assert guard.check("https://[64:ff9b::8.8.8.8]/", cfg).addresses == ("64:ff9b::808:808",)


def test_the_default_resolver_is_asked_once(tmp_path, monkeypatch):
    cfg = load(tmp_path)
    calls = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("fe80::1%eth0", port, 0, 2))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(Refused) as e:
        guard.check("https://crm.example/hook", cfg)
    assert e.value.code == "link_local" and calls == ["crm.example"]


def test_a_resolver_changing_its_answer_cannot_move_the_request(tmp_path):
    """DNS rebinding with the guard on: check asks once and keeps that answer."""
    cfg = load(tmp_path)
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    asked = []

    def rebinding(host, port):
        asked.append(host)
        return next(answers)

    target = guard.check("https://rebind.example/hook", cfg, resolve=rebinding)
    assert target.addresses == (PUBLIC,) and asked == ["rebind.example"]


def test_with_private_targets_allowed_only_metadata_stays_refused(tmp_path):
    cfg = load(tmp_path, allow_private_targets=True, allowed_ports="443,8443,8080")
    resolver = StubResolver({**RESOLUTIONS, "localhost": ["127.0.0.1"], "crm.lan": ["192.168.1.20"],
                             "imds.example": [PUBLIC, "169.254.169.254"]})
    for url in ("http://127.0.0.1:8080/", "https://localhost/", "http://crm.lan:8080/hook", "https://[::1]/",
                "https://10.0.0.1/", "https://mixed.example/", "https://2130706433/"):
        assert guard.check(url, cfg, resolve=resolver).addresses
    for url in ("https://169.254.169.254/", "http://2852039166:8080/", "https://[fd00:ec2::254]/",
                "https://100.100.100.200/", "https://[::ffff:169.254.169.254]/", "https://[::ffff:a9fe:a9fe]/",
                "https://[64:ff9b::169.254.169.254]/", "https://metadata.example/", "https://imds.example/"):
        with pytest.raises(Refused) as e:
            guard.check(url, cfg, resolve=resolver)
        assert e.value.code == "metadata", url
    # Scheme, port and user information rules still apply.
    for url, code in (("ftp://127.0.0.1/", "scheme"), ("https://127.0.0.1:22/", "port"),
                      ("https://a@127.0.0.1/", "userinfo")):
        with pytest.raises(Refused) as e:
            guard.check(url, cfg, resolve=resolver)
        assert e.value.code == code


def test_allowed_ports_configuration(tmp_path):
    assert load(tmp_path).integrations.ports == {443, 8443}
    cfg = load(tmp_path, env={"CAPTEO_INTEGRATIONS_ALLOWED_PORTS": "443, 9443"})
    assert cfg.integrations.ports == {443, 9443}
    assert cfg.sources["integrations.allowed_ports"] == "CAPTEO_INTEGRATIONS_ALLOWED_PORTS (environment)"
    for bad in ("", "443,", "https", "0", "70000", "443;8443"):
        with pytest.raises(ConfigError, match=r"\[integrations\] allowed_ports"):
            load(tmp_path, allowed_ports=bad)
    with pytest.raises(ConfigError, match=r"\[integrations\] timeout_seconds"):
        load(tmp_path, timeout_seconds=0)


# --- post, against receivers on this machine -------------------------------------------------

class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 recording what it receives; quiet."""

    daemon_threads = True

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.server_names: list[str | None] = []
        if ssl_context is not None:
            ssl_context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_error(self, request, client_address) -> None:
        pass

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        if self.path == "/redirect":
            self._answer(302, b"moved", [("Location", self.headers["X-Elsewhere"])])
        elif self.path == "/big":
            self._answer(200, b"x" * 200_000)
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.1)
        else:
            self._answer(201, b'{"ok": true}', [("Content-Type", "application/json"), ("X-Seen", "1"),
                                                 ("X-Seen", "2")])

    def _answer(self, status: int, body: bytes, headers=()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def receivers():
    started: list[Receiver] = []

    def start(ssl_context: ssl.SSLContext | None = None) -> Receiver:
        started.append(Receiver(ssl_context))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def private_config(tmp_path, *ports: int, **integrations) -> config_mod.Config:
    integrations.setdefault("timeout_seconds", 3.0)
    env = {"CAPTEO_INTEGRATIONS_ALLOWED_PORTS": ",".join(["443", *map(str, ports)])}
    return load(tmp_path, env=env, allow_private_targets=True, **integrations)


def test_post_sends_body_and_headers_to_the_checked_address(tmp_path, receivers):
    receiver = receivers()
    cfg = private_config(tmp_path, receiver.port)
    target = guard.check(f"http://crm.example:{receiver.port}/in?src=capteo", cfg,
                         resolve=StubResolver({"crm.example": ["127.0.0.1"]}))
    answer = guard.post(target, b'{"lead": 1}', {"Content-Type": "application/json", "Webhook-Id": "msg_1",
                                                  "Host": "evil.example", "Content-Length": "1"}, cfg)
    assert (answer.status, answer.body, answer.truncated) == (201, b'{"ok": true}', False)
    assert answer.headers["content-type"] == "application/json" and answer.headers["x-seen"] == "1, 2"
    assert 0 <= answer.elapsed_ms < 3000
    [request] = receiver.requests
    assert request["path"] == "/in?src=capteo" and request["body"] == b'{"lead": 1}'
    assert request["headers"]["Host"] == f"crm.example:{receiver.port}"  # the caller's Host is not used
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["Webhook-Id"] == "msg_1"
    assert request["headers"]["Content-Length"] == "11"
    with pytest.raises(Refused) as e:
        guard.post(target, b"{}", {"X-Evil": "a\r\nInjected: yes"}, cfg)
    assert e.value.code == "header" and len(receiver.requests) == 1
    # A Target for plain http is not sent once private targets are no longer allowed.
    with pytest.raises(Refused) as e:
        guard.post(target, b"{}", {}, load(tmp_path))
    assert e.value.code == "scheme"


def test_dns_rebinding_post_connects_to_the_address_check_resolved(tmp_path, receivers, monkeypatch):
    receiver = receivers()
    cfg = private_config(tmp_path, receiver.port)
    resolver = StubResolver({"rebind.example": ["127.0.0.1"]})
    target = guard.check(f"http://rebind.example:{receiver.port}/hook", cfg, resolve=resolver)
    resolver.table["rebind.example"] = ["203.0.113.1"]  # the name now points somewhere unreachable

    def no_dns(*args, **kwargs):
        raise AssertionError("post resolved the name again")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    answer = guard.post(target, b"{}", {}, cfg)
    assert answer.status == 201 and resolver.asked == [("rebind.example", receiver.port)]
    assert receiver.requests[0]["headers"]["Host"] == f"rebind.example:{receiver.port}"


def test_a_redirect_is_returned_not_followed(tmp_path, receivers):
    receiver, elsewhere = receivers(), receivers()
    cfg = private_config(tmp_path, receiver.port, elsewhere.port)
    target = guard.check(f"http://127.0.0.1:{receiver.port}/redirect", cfg)
    answer = guard.post(target, b"{}", {"X-Elsewhere": f"http://127.0.0.1:{elsewhere.port}/stolen"}, cfg)
    assert answer.status == 302 and answer.headers["location"].endswith("/stolen")
    assert len(receiver.requests) == 1 and elsewhere.requests == []


def test_a_big_answer_is_cut_at_max_response_bytes(tmp_path, receivers):
    receiver = receivers()
    cfg = private_config(tmp_path, receiver.port, max_response_bytes=1000)
    answer = guard.post(guard.check(f"http://127.0.0.1:{receiver.port}/big", cfg), b"{}", {}, cfg)
    assert answer.status == 200 and answer.body == b"x" * 1000 and answer.truncated


def test_a_receiver_that_never_answers_times_out(tmp_path):
    silent = socket.socket()  # accepts connections (the kernel does) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    port = silent.getsockname()[1]
    try:
        cfg = private_config(tmp_path, port, timeout_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(DeliveryError) as e:
            guard.post(guard.check(f"http://127.0.0.1:{port}/", cfg), b"{}", {}, cfg)
        assert e.value.code == "timeout" and "0.5 seconds" in str(e.value)
        assert time.monotonic() - started < 2
    finally:
        silent.close()


def test_a_receiver_that_drips_its_answer_hits_the_total_deadline(tmp_path, receivers):
    """Each byte comes well within the read timeout; the whole still must end in time."""
    receiver = receivers()
    cfg = private_config(tmp_path, receiver.port, timeout_seconds=0.8)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as e:
        guard.post(guard.check(f"http://127.0.0.1:{receiver.port}/drip", cfg), b"{}", {}, cfg)
    assert e.value.code == "timeout"
    assert time.monotonic() - started < 1.5


def test_nothing_listening_is_a_delivery_error(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = private_config(tmp_path, port)
    with pytest.raises(DeliveryError) as e:
        guard.post(guard.check(f"http://127.0.0.1:{port}/", cfg), b"{}", {}, cfg)
    assert e.value.code == "connect"


# --- TLS ---------------------------------------------------------------------------------------

def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A CA and, signed by it, server certificates for hooks.example and other.example."""
    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(_name("Capteo test CA")).issuer_name(_name("Capteo test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    paths = {"ca": ca.public_bytes(serialization.Encoding.PEM).decode()}
    for host in ("hooks.example", "other.example"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        pem = directory / f"{host}.pem"
        pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        paths[host] = str(pem)
    return paths


def _server_context(pem: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    return context


def test_tls_verifies_the_certificate_against_the_url_host(tmp_path, receivers, certificates):
    good = receivers(_server_context(certificates["hooks.example"]))
    wrong = receivers(_server_context(certificates["other.example"]))
    cfg = private_config(tmp_path, good.port, wrong.port)
    resolver = StubResolver({"hooks.example": ["127.0.0.1"]})
    trusting = ssl.create_default_context(cadata=certificates["ca"])

    target = guard.check(f"https://hooks.example:{good.port}/hook", cfg, resolve=resolver)
    answer = guard.post(target, b'{"a": 1}', {}, cfg, ssl_context=trusting)
    assert answer.status == 201 and good.server_names == ["hooks.example"]  # SNI names the URL's host
    assert good.requests[0]["headers"]["Host"] == f"hooks.example:{good.port}"

    # The same name reaching a server whose certificate is for another name.
    target = guard.check(f"https://hooks.example:{wrong.port}/hook", cfg, resolve=resolver)
    with pytest.raises(DeliveryError) as e:
        guard.post(target, b"{}", {}, cfg, ssl_context=ssl.create_default_context(cadata=certificates["ca"]))
    assert e.value.code == "tls" and "hooks.example" in str(e.value)
    assert wrong.requests == []

    # The system's trust store does not know the test CA: refused too, nothing sent.
    target = guard.check(f"https://hooks.example:{good.port}/hook", cfg, resolve=resolver)
    with pytest.raises(DeliveryError) as e:
        guard.post(target, b"{}", {}, cfg)
    assert e.value.code == "tls" and len(good.requests) == 1


def test_check_warns_when_private_targets_are_allowed(tmp_path):
    def check(**integrations) -> str:
        cfg = write_config(tmp_path, integrations=integrations)
        result = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(cfg), "check"],
                                capture_output=True, text=True, cwd=ROOT)
        assert "Traceback" not in result.stderr
        return result.stdout

    assert "WARNING: [integrations] allow_private_targets is on" in check(allow_private_targets=True)
    assert "allow_private_targets" not in check(allow_private_targets=False)


def test_every_refusal_code_is_documented():
    assert {code for _, code in HOSTILE} <= guard.CODES
    assert all(isinstance(ip, ipaddress.IPv4Address | ipaddress.IPv6Address) for ip in guard.METADATA)


def test_a_name_server_that_does_not_answer_makes_the_url_unresolvable_in_time(config, monkeypatch):
    import time

    from app import config as config_mod
    from app.integrations import guard as guard_mod

    slow = config_mod.load(config.path, env={"CAPTEO_INTEGRATIONS_TIMEOUT_SECONDS": "0.5"})
    monkeypatch.setattr(guard_mod, "default_resolve", lambda host, port: time.sleep(5) or ["93.184.215.14"])
    t0 = time.monotonic()
    with pytest.raises(guard_mod.Refused) as refused:
        guard_mod.check("https://slow-dns.example/hook", slow)
    assert refused.value.code == "unresolvable" and time.monotonic() - t0 < 2
