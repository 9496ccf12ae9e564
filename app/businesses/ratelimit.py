"""Sliding-window counters in memory, for the form and sign-in limits.

One process serves the web app, so memory is enough; a restart forgets the counts,
which errs on the side of letting people in. Keys hold an IP address only in
memory: it is never written to the database.

A request takes its slot *before* doing the work (`take`), in one step under the
lock, and gives it back when the work turns out not to count (a successful
sign-in is not a failure). Checking first and recording after the work let every
request that arrived during the work through: 100 concurrent wrong passwords got
10 tries instead of 5.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from app.config import Config


@dataclass
class Slot:
    """One hit counted against a key; `give_back()` uncounts it."""

    limiter: RateLimiter
    key: tuple
    at: float
    returned: bool = False

    def give_back(self) -> None:
        if not self.returned:
            self.returned = True
            self.limiter._give_back(self.key, self.at)


class RateLimiter:
    """At most `limit` hits per key within `window` seconds."""

    def __init__(self, limit: int, window: float):
        self.limit = limit
        self.window = window
        self._hits: dict[tuple, deque[float]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: tuple, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def take(self, *key, now: float | None = None) -> Slot | None:
        """Count one hit for `key` and return its slot, or None (nothing counted)
        when the key already has `limit` hits in the window."""
        now = now or time.monotonic()
        with self._lock:
            hits = self._prune(key, now)
            if len(hits) >= self.limit:
                return None
            hits.append(now)
            if len(self._hits) > 50_000:  # forget idle clients, bound the memory
                for idle in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[idle]
            return Slot(self, key, now)

    def _give_back(self, key: tuple, at: float) -> None:
        with self._lock:
            hits = self._hits.get(key)
            if hits is not None and at in hits:
                hits.remove(at)


@dataclass(frozen=True)
class Limits:
    """The process's counters: public submissions (form, privacy requests, chat) and sign-in failures."""

    forms: RateLimiter
    login: RateLimiter
    chat_starts: RateLimiter  # conversations started, per business and IP
    chat_messages: RateLimiter  # chat messages, per IP (all conversations together)

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(forms=RateLimiter(config.forms.rate_limit, config.forms.rate_window),
                   login=RateLimiter(config.auth.login_attempts, config.auth.login_window),
                   chat_starts=RateLimiter(config.chat.conversations_per_hour, 3600),
                   chat_messages=RateLimiter(config.chat.ip_messages_per_minute, 60))


def client_ip(request) -> str:
    """The socket's address, or, when `[server] trust_proxy_header` names the header a
    trusted proxy (Cloudflare, nginx) sets, the address that proxy wrote there.

    A proxy appends the address it saw to the right of whatever the client sent
    (X-Forwarded-For: <anything the client typed>, <the client's real address>), so
    only the rightmost value is the proxy's word; CF-Connecting-IP holds one value."""
    header = request.app.state.config.server.trust_proxy_header
    if header:
        values = [v.strip() for line in request.headers.getall(header, []) for v in line.split(",")]
        values = [v for v in values if v]
        if values:
            return values[-1]
    return request.client.host if request.client else "unknown"
