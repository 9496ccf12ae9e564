"""One HTTP client per process for the providers' APIs that each lead calls (Twilio,
geocoder.ca).

`httpx.get()` builds a new client, and with it a new TLS context (the CA bundle parsed
again), at every call: 40-60 ms of CPU per lead on the worker, measured with the form
bench, against about 5 ms for the whole form post. One client keeps one TLS context and
its connections open (httpx.Client is safe to share between threads).
"""

from __future__ import annotations

import threading

import httpx

TIMEOUT = httpx.Timeout(10.0, connect=5.0)

_client: httpx.Client | None = None
_lock = threading.Lock()


def shared() -> httpx.Client:
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(timeout=TIMEOUT)
        return _client
