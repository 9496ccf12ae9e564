"""Sliding-window counters in memory, for the form and sign-in limits.

One process serves the web app, so memory is enough; a restart forgets the counts,
which errs on the side of letting people in. Keys hold an IP address only in
memory: it is never written to the database.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from app.config import Config


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

    def allowed(self, *key, now: float | None = None) -> bool:
        now = now or time.monotonic()
        with self._lock:
            return len(self._prune(key, now)) < self.limit

    def record(self, *key, now: float | None = None) -> None:
        now = now or time.monotonic()
        with self._lock:
            self._prune(key, now).append(now)
            if len(self._hits) > 50_000:  # forget idle clients, bound the memory
                for idle in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[idle]


@dataclass(frozen=True)
class Limits:
    """The process's counters: public submissions (form, privacy requests) and sign-in failures."""

    forms: RateLimiter
    login: RateLimiter

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        return cls(forms=RateLimiter(config.forms.rate_limit, config.forms.rate_window),
                   login=RateLimiter(config.auth.login_attempts, config.auth.login_window))


def client_ip(request) -> str:
    """The socket's address, or the trusted proxy's header when `[server]
    trust_proxy_header` says a proxy (Cloudflare, nginx) sits in front."""
    header = request.app.state.config.server.trust_proxy_header
    if header and request.headers.get(header):
        return request.headers[header].split(",")[0].strip()
    return request.client.host if request.client else "unknown"
