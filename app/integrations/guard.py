"""The SSRF guard: every URL Capteo calls on a subscriber's behalf goes through here.

`check(url, config)` parses and validates the URL, resolves its host ONCE and refuses it
(`Refused`, with a stable `code`) unless every address is public; `post(target, ...)` then
connects to the address `check` resolved — never resolving again, so a DNS answer that
changes between the two (rebinding) cannot move the request — with TLS verified against the
URL's host name, no redirects, a total deadline and a bounded answer.

`[integrations] allow_private_targets` (tests, on-premise CRMs) lifts the address rules and
allows plain http; cloud metadata addresses stay refused whatever the setting.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

import httpcore
import idna
from httpcore._backends.sync import SyncStream

from app.config import Config

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class Refused(Exception):
    """The URL (or a request built on it) is not allowed. `str(e)` says why in plain words;
    `e.code` is a short stable code (see CODES)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class DeliveryError(Exception):
    """The request was allowed but could not be delivered (connection, TLS, timeout, a
    receiver that does not speak HTTP). `e.code`: "connect", "tls", "timeout" or "protocol"."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# Every code `Refused` can carry.
CODES = frozenset({
    "malformed", "scheme", "userinfo", "no_host", "port", "localhost", "unresolvable", "header",
    "metadata", "loopback", "private", "link_local", "cgnat", "multicast", "broadcast", "unspecified",
    "reserved", "benchmark", "documentation",
})

_WORDS = {
    "loopback": "a loopback address (this server itself)",
    "private": "a private network address",
    "link_local": "a link-local address",
    "cgnat": "a carrier-grade NAT address (100.64.0.0/10)",
    "multicast": "a multicast address",
    "broadcast": "the broadcast address",
    "unspecified": "an unspecified address (0.0.0.0 or ::)",
    "reserved": "a reserved or special-purpose address",
    "benchmark": "a benchmarking address (198.18.0.0/15)",
    "documentation": "a documentation address",
    "metadata": "a cloud metadata service address",
}

# Refused whatever allow_private_targets says: instance metadata (credentials) services.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
    "169.254.170.2",    # AWS ECS task credentials
    "169.254.170.23",   # AWS EKS pod identity
    "fd00:ec2::254",    # AWS IMDS over IPv6
    "fd00:ec2::23",     # AWS EKS pod identity over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",      # Oracle Cloud
))


def _nets(*pairs: tuple[str, str]) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    return tuple((ipaddress.ip_network(net), code) for net, code in pairs)


# Checked in order: the first match gives the code.
_V4 = _nets(
    ("255.255.255.255/32", "broadcast"),
    ("0.0.0.0/8", "unspecified"),
    ("127.0.0.0/8", "loopback"),
    ("10.0.0.0/8", "private"), ("172.16.0.0/12", "private"), ("192.168.0.0/16", "private"),
    ("100.64.0.0/10", "cgnat"),
    ("169.254.0.0/16", "link_local"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "documentation"), ("198.51.100.0/24", "documentation"), ("203.0.113.0/24", "documentation"),
    ("198.18.0.0/15", "benchmark"),
    ("192.88.99.0/24", "reserved"),  # deprecated 6to4 relay anycast
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
)
_V6 = _nets(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved"),            # IPv4-compatible (deprecated)
    ("64:ff9b:1::/48", "private"),    # local-use NAT64
    ("100::/64", "reserved"),         # discard-only
    ("2001::/23", "reserved"),        # IETF protocol assignments, Teredo included
    ("2001:db8::/32", "documentation"), ("3fff::/20", "documentation"),
    ("fc00::/7", "private"),
    ("fec0::/10", "private"),         # site-local (deprecated)
    ("fe80::/10", "link_local"),
    ("ff00::/8", "multicast"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPAT = ipaddress.ip_network("::/96")


def _embedded(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (and so may reach)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # server and (de-obfuscated) client
    if ip in _NAT64 or (ip in _COMPAT and int(ip) > 1):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def address_refusal(ip: IPAddress, allow_private: bool = False) -> str | None:
    """The code refusing this address, or None when it may be reached."""
    if ip in METADATA:
        return "metadata"
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded(ip):
            if inner in METADATA:
                return "metadata"
    if allow_private:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded(ip):
            if code := address_refusal(inner):
                return code
        if ip.ipv4_mapped is not None or ip in _NAT64:
            # Its IPv4 address, public: a mapped address designates it; a NAT64 one is how a
            # DNS64 resolver on an IPv6-only server answers for any IPv4-only public host.
            return None
    for net, code in (_V4 if ip.version == 4 else _V6):
        if ip in net:
            return code
    # Anything else Python knows as not globally reachable (its special-purpose registries).
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "reserved"
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host resolved to (`post` connects to the first)."""

    url: str         # normalized: scheme, IDNA host, port when not the default, path and query
    scheme: str      # "https", or "http" with allow_private_targets
    host: str        # lowercase ASCII (IDNA) name, or the IP address
    port: int
    path: str        # path and query, at least "/"
    addresses: tuple[str, ...]


# Characters that have no business in a URL we send: whitespace, controls, backslash
# (a browser reads it as "/", Python's urlsplit does not).
_BAD_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\\\u00a0\u1680\u2000-\u200f\u2028-\u202f\u205f\u3000\ufeff]")
_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)")


def _inet_aton(host: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address in any notation a resolver's inet_aton accepts (127.1, 2130706433,
    0x7f.0.0.1, 0177.0.0.1...); None when the host is not written as numbers. Raises
    Refused for something numeric that no resolver reads the same way."""
    parts = host.split(".")
    if not _NUMBER.fullmatch(parts[-1]):
        return None  # a name (a numeric last label makes it an address, as WHATWG URL says)
    values = []
    for part in parts:
        if not _NUMBER.fullmatch(part):
            raise Refused("malformed", f"the host {host!r} is neither a valid name nor a valid IP address")
        if part[:2] in ("0x", "0X"):
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part[0] == "0":
            if not re.fullmatch(r"[0-7]+", part):
                raise Refused("malformed", f"the host {host!r} is not a valid IP address")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    if len(values) > 4:
        raise Refused("malformed", f"the host {host!r} is not a valid IP address")
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise Refused("malformed", f"the host {host!r} is not a valid IP address")
    number = last
    for i, v in enumerate(head):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def _idna(host: str) -> str:
    """The ASCII form of a host name as resolvers see it (UTS #46: case folded, full-width
    characters and dots mapped)."""
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        pass
    try:
        return host.encode("idna").decode("ascii")  # IDNA 2003, the standard library's
    except UnicodeError:
        raise Refused("malformed", f"the host {host!r} is not a valid international domain name") from None


def _split_netloc(netloc: str) -> tuple[str, str | None, bool]:
    """(host, port text or None, host was a bracketed IPv6 literal)."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise Refused("malformed", "the URL has an unclosed [ in its host")
        host, rest = netloc[1:end], netloc[end + 1:]
        if rest and not rest.startswith(":"):
            raise Refused("malformed", "the URL has something after its [IPv6] host")
        return host, (rest[1:] if rest else None), True
    host, colon, port = netloc.rpartition(":")
    if not colon:
        return netloc, None, False
    return host, port, False


def default_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (IPv4 and IPv6), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


def _bounded(resolve: Resolver, seconds: float) -> Resolver:
    """`resolve` given at most `seconds` (getaddrinfo has no timeout of its own): a slow
    name server makes the URL unresolvable now, not a worker stuck."""
    def bounded(host: str, port: int) -> list[str]:
        box: list = []
        thread = threading.Thread(target=lambda: box.append(_attempt(resolve, host, port)), daemon=True)
        thread.start()
        thread.join(seconds)
        if not box:
            raise TimeoutError(f"resolving {host} took more than {seconds:g} s")
        answer = box[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return bounded


def _attempt(resolve: Resolver, host: str, port: int) -> list[str] | BaseException:
    try:
        return resolve(host, port)
    except (OSError, UnicodeError, ValueError) as e:
        return e


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def check(url: str, config: Config, *, resolve: Resolver | None = None) -> Target:
    """Validate `url` for a call on a subscriber's behalf, resolve its host once and check
    every address. Raises `Refused`; returns the Target `post` connects to."""
    rules = config.integrations
    allow_private = rules.allow_private_targets
    if not isinstance(url, str) or not url:
        raise Refused("malformed", "the URL is empty")
    if len(url) > 2048:
        raise Refused("malformed", "the URL is longer than 2048 characters")
    if _BAD_CHARS.search(url):
        raise Refused("malformed", "the URL contains spaces, control characters or a backslash")
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise Refused("malformed", "the URL has no scheme (it must start with https://)")
    if scheme not in ("https", "http"):
        raise Refused("scheme", f"only https:// URLs are allowed, not {scheme}:")
    if scheme == "http" and not allow_private:
        raise Refused("scheme", "only https:// URLs are allowed (plain http:// would send the data unencrypted)")
    if not rest.startswith("//"):
        raise Refused("malformed", "the URL must look like https://host/path")
    rest = rest[2:]
    end = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc, tail = rest[:end], rest[end:]
    if "@" in netloc:
        raise Refused("userinfo", "the URL may not carry a user name or password (the part before @)")
    path = tail.split("#", 1)[0]
    if path.startswith("?"):
        path = "/" + path
    # Anything outside printable ASCII is sent percent-encoded (UTF-8), as a browser would.
    path = re.sub(r"[^\x21-\x7e]", lambda m: quote(m.group()), path or "/")

    raw_host, port_text, bracketed = _split_netloc(netloc)
    if port_text is None:
        port = 443 if scheme == "https" else 80
    elif not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
        raise Refused("port", f"the port {port_text!r} is not a valid port number")
    else:
        port = int(port_text)
    if not raw_host:
        raise Refused("no_host", "the URL has no host name")

    literal: IPAddress | None = None
    if bracketed:
        try:
            literal = ipaddress.IPv6Address(raw_host)
        except ValueError:
            raise Refused("malformed", f"[{raw_host}] is not a valid IPv6 address") from None
        if literal.scope_id:
            raise Refused("malformed", "an IPv6 address with a zone (%) is not allowed")
        host = str(literal)
    else:
        if ":" in raw_host:
            raise Refused("malformed", "an IPv6 address must be written in brackets, like https://[2001:db8::1]/")
        host = raw_host if raw_host.isascii() else _idna(raw_host)
        host = host.lower()
        if host.endswith("."):
            host = host[:-1]
        if not host:
            raise Refused("no_host", "the URL has no host name")
        literal = _inet_aton(host)
        if literal is not None:
            host = str(literal)
        else:
            labels = host.split(".")
            if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
                raise Refused("malformed", f"the host {raw_host!r} is not a valid host name")
            if labels[-1] == "localhost" and not allow_private:
                raise Refused("localhost", f"{host} names this server itself")

    if port not in rules.ports:
        allowed = ", ".join(str(p) for p in sorted(rules.ports))
        raise Refused("port", f"the port {port} is not allowed (allowed: {allowed})")

    if literal is not None:
        addresses: tuple[str, ...] = (str(literal),)
    else:
        try:
            answers = (resolve or _bounded(default_resolve, rules.timeout_seconds))(host, port)
        except (OSError, UnicodeError, ValueError, TimeoutError):
            answers = []
        addresses = _unique(str(a) for a in answers)
        if not addresses:
            raise Refused("unresolvable", f"the host name {host} does not resolve to any address")

    pinned = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise Refused("unresolvable", f"{host} resolved to {text!r}, which is not an IP address") from None
        if code := address_refusal(ip, allow_private):
            shown = host if str(ip) == host else f"{host} ({ip})"
            raise Refused(code, f"{shown} is {_WORDS[code]}: integrations may only call public addresses")
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # connect over IPv4 to what it designates
        pinned.append(str(ip))

    shown_host = f"[{host}]" if ":" in host else host
    default_port = 443 if scheme == "https" else 80
    authority = shown_host if port == default_port else f"{shown_host}:{port}"
    return Target(url=f"{scheme}://{authority}{path}", scheme=scheme, host=host, port=port, path=path,
                  addresses=_unique(pinned))


@dataclass
class Response:
    status: int
    headers: dict[str, str]   # names in lowercase; repeated headers joined with ", "
    body: bytes               # at most max_response_bytes
    elapsed_ms: int
    truncated: bool           # the answer was longer than max_response_bytes


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def bound(self, timeout: float | None) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the total time allowed ran out")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A stream whose every read, write and TLS handshake ends by the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.bound(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.bound(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, self._deadline.bound(timeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the address `check` resolved, whatever host the request names: no
    second DNS resolution (not even the numeric getaddrinfo socket.create_connection does).
    TLS still names (SNI) and verifies the request's host."""

    def __init__(self, address: str, port: int, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._address = address
        self._port = port
        self._deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        ip = ipaddress.ip_address(self._address)
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._deadline.bound(timeout))
            sock.connect((str(ip), self._port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError as e:
            sock.close()
            raise httpcore.ConnectTimeout(str(e) or "timed out") from e
        except OSError as e:
            sock.close()
            raise httpcore.ConnectError(str(e)) from e
        return _DeadlineStream(SyncStream(sock), self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used by integrations")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


# Headers post sets itself; a caller's own are dropped.
_OWN_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "expect"}
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _caused_by(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def post(target: Target, body: bytes, headers: dict[str, str], config: Config, *,
         ssl_context: ssl.SSLContext | None = None) -> Response:
    """POST `body` to a checked Target: to its first resolved address, with TLS verified
    against target.host, no redirect followed (a 3xx is returned as it is), everything done
    within [integrations] timeout_seconds, at most max_response_bytes of the answer read.
    Raises DeliveryError when it cannot be delivered, Refused for a header that cannot be sent."""
    rules = config.integrations
    if target.scheme not in ("https", "http") or (target.scheme == "http" and not rules.allow_private_targets):
        raise Refused("scheme", "only https:// URLs are allowed")
    if not target.addresses:
        raise Refused("unresolvable", f"no address was resolved for {target.host}")
    shown_host = f"[{target.host}]" if ":" in target.host else target.host
    default_port = 443 if target.scheme == "https" else 80
    request_headers: list[tuple[str, str]] = [
        ("Host", shown_host if target.port == default_port else f"{shown_host}:{target.port}")]
    names = set()
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
            raise Refused("header", f"the header {name!r} has characters a header may not carry")
        if name.lower() not in _OWN_HEADERS:
            request_headers.append((name, value))
            names.add(name.lower())
    if "user-agent" not in names:
        request_headers.append(("User-Agent", "Capteo-Integrations/1"))
    request_headers += [("Content-Length", str(len(body))), ("Connection", "close")]

    timeout = rules.timeout_seconds
    limit = rules.max_response_bytes
    started = time.monotonic()
    deadline = _Deadline(timeout)
    backend = _PinnedBackend(target.addresses[0], target.port, deadline)
    context = (ssl_context or ssl.create_default_context()) if target.scheme == "https" else None
    url = httpcore.URL(scheme=target.scheme.encode(), host=target.host.encode("ascii"), port=target.port,
                       target=target.path.encode("ascii"))
    extensions = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}
    chunks: list[bytes] = []
    size = 0
    truncated = False
    try:
        with (httpcore.ConnectionPool(ssl_context=context, network_backend=backend, retries=0,
                                      max_connections=1, http1=True, http2=False) as pool,
              pool.stream("POST", url, headers=request_headers, content=body, extensions=extensions) as answer):
            for chunk in answer.iter_stream():
                if size + len(chunk) > limit:
                    chunks.append(chunk[:limit - size])
                    size = limit
                    truncated = True
                    break
                chunks.append(chunk)
                size += len(chunk)
            status = answer.status
            pairs = answer.headers
    except httpcore.TimeoutException as e:
        raise DeliveryError("timeout", f"{target.host} did not answer within {timeout:g} seconds") from e
    except (httpcore.ConnectError, httpcore.NetworkError, OSError) as e:
        if cert := _caused_by(e, ssl.SSLCertVerificationError):
            reason = getattr(cert, "verify_message", "") or str(cert)
            raise DeliveryError("tls", f"the TLS certificate of {target.host} was refused: {reason}") from e
        if _caused_by(e, ssl.SSLError):
            raise DeliveryError("tls", f"the TLS connection to {target.host} failed: {e}") from e
        if isinstance(e, httpcore.ConnectError):
            raise DeliveryError("connect", f"could not connect to {target.host} ({target.addresses[0]}): {e}") from e
        raise DeliveryError("connect", f"the connection to {target.host} broke: {e}") from e
    except httpcore.ProtocolError as e:
        raise DeliveryError("protocol", f"{target.host} did not answer in HTTP: {e}") from e
    response_headers: dict[str, str] = {}
    for raw_name, raw_value in pairs:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        response_headers[name] = f"{response_headers[name]}, {value}" if name in response_headers else value
    return Response(status=status, headers=response_headers, body=b"".join(chunks),
                    elapsed_ms=int((time.monotonic() - started) * 1000), truncated=truncated)
