"""One HTTP client per process for the providers' APIs that each lead calls (Twilio,
geocoder.ca).

`httpx.get()` builds a new client, and with it a new TLS context (the CA bundle parsed
again), at every call: 40-60 ms of CPU per lead on the worker, measured with the form
bench, against about 5 ms for the whole form post. One client keeps one TLS context and
its connections open (httpx.Client is safe to share between threads).

httpx is imported at the first call, not with the app: importing it costs about 70 ms
(its command line pulls in rich and click), a share of every restart's time to the
first page, for a client that the first SMS needs, not the first page.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

_client: httpx.Client | None = None
_lock = threading.Lock()


def shared() -> httpx.Client:
    """The process's client: 10 s per request, 5 s to connect."""
    global _client
    with _lock:
        if _client is None:
            import httpx

            _client = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        return _client
