"""Accepted form submissions per second, and latency, against a static file served by
the same server in the same run (prints figures and their ratio; asserts nothing).

    .venv/bin/python tests/bench/form.py [--requests 600] [--concurrency 8]

A real `run.py` server (in-process worker on) with the rate limit lifted. Tokens are
fetched first (not timed); then N form POSTs, each a full accepted submission (lead,
audit entry, outbox SMS, geocoding mark, fsync'd commit), then N GETs of a static
file of the same server (/static/css/capteo.css: no template, no database). The
issue's goal: the ratio submissions / static >= 0.6. The load generator runs on the
same 2-core machine and takes part of the CPU.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.fakes import FakeGeocoder, FakeTwilio  # noqa: E402
from tests.support.app import ServerProcess  # noqa: E402

STATIC = "/static/css/capteo.css"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_phase(n: int, concurrency: int, one) -> tuple[float, list[float]]:
    latencies: list[float] = []

    def timed(i):
        t = time.perf_counter()
        one(i)
        latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, range(n)))
    return time.perf_counter() - t0, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    # The owner's SMS and the map's coordinates go to local servers speaking Twilio's and
    # geocoder.ca's wire formats: the follow-up work is real, and no lookup leaves the box.
    with tempfile.TemporaryDirectory() as d, FakeTwilio() as twilio, FakeGeocoder() as geocoder:
        srv = ServerProcess(Path(d), demo=True, extra_env={
            "CAPTEO_FORMS_RATE_LIMIT": "100000000", "CAPTEO_TWILIO_ACCOUNT_SID": twilio.account_sid,
            "CAPTEO_TWILIO_FROM_NUMBER": "+15145550199", "CAPTEO_TWILIO_API_BASE": twilio.url,
            "CAPTEO_SECRET_TWILIO_AUTH_TOKEN": twilio.auth_token, "CAPTEO_GEOCODER_API_BASE": geocoder.url})
        srv.start()
        try:
            client = httpx.Client(base_url=srv.url, limits=httpx.Limits(max_connections=args.concurrency * 2))
            page = client.get("/fr/f/demo").text
            cf = re.findall(r'name="(cf_\d+)" value="house"', page)[0]
            tokens = []
            for _ in range(args.requests):
                html = client.get("/fr/f/demo").text
                tokens.append(re.search(r'name="form_token" value="([^"]+)"', html).group(1))

            def submit(i):
                r = client.post("/fr/f/demo", data={
                    "form_token": tokens[i], "first_name": f"Client {i}", "last_name": "Tremblay",
                    "phone": "514 555-0101", "email": f"client{i}@example.com", "postal_code": "H2X 1Y4",
                    "need": "Chauffe-eau qui fuit au sous-sol, intervention souhaitée cette semaine.",
                    "consent": "yes", cf: "house"})
                assert r.status_code == 200 and "Merci" in r.text, r.status_code

            def static(i):
                assert client.get(STATIC).status_code == 200

            def drain() -> float:
                """Seconds until the follow-up work the posts queued (SMS, geocoding) is done: the
                worker runs in the server's process and would otherwise slow the next phase."""
                t = time.perf_counter()
                while client.get("/healthz").json()["queue_depth"] > 0:
                    time.sleep(0.05)
                return time.perf_counter() - t

            run_phase(50, args.concurrency, static)  # warm-up
            pid = srv.proc.pid
            cpu0, mine0 = cpu_seconds(pid), time.process_time()
            triv_time, triv_lat = run_phase(args.requests, args.concurrency, static)
            cpu1, mine1 = cpu_seconds(pid), time.process_time()
            form_time, form_lat = run_phase(args.requests, args.concurrency, submit)
            cpu2, mine2 = cpu_seconds(pid), time.process_time()
            drain_time = drain()
            cpu3 = cpu_seconds(pid)
        finally:
            srv.stop()
    form_rps = args.requests / form_time
    triv_rps = args.requests / triv_time
    print(f"{args.requests} requests, concurrency {args.concurrency}")
    print(f"accepted form submissions: {form_rps:.0f}/s, p50 {statistics.median(form_lat) * 1000:.1f} ms, "
          f"p95 {pct(form_lat, 95) * 1000:.1f} ms, server CPU {(cpu2 - cpu1) / args.requests * 1000:.1f} ms each")
    print(f"  with their follow-up work done (SMS, geocoding; {drain_time:.1f} s after the last post): "
          f"{args.requests / (form_time + drain_time):.0f}/s, server CPU "
          f"{(cpu3 - cpu1) / args.requests * 1000:.1f} ms each")
    print(f"  SMS sent to the owner: {len(twilio.sent)} of {args.requests}")
    print(f"static file ({STATIC}): {triv_rps:.0f}/s, p50 {statistics.median(triv_lat) * 1000:.1f} ms, "
          f"p95 {pct(triv_lat, 95) * 1000:.1f} ms, server CPU {(cpu1 - cpu0) / args.requests * 1000:.1f} ms each")
    print(f"ratio submissions / static: {form_rps / triv_rps:.2f} (goal >= 0.6)")
    print(f"this load generator's CPU per request (same cores): static {(mine1 - mine0) / args.requests * 1000:.2f} ms, "
          f"post {(mine2 - mine1) / args.requests * 1000:.2f} ms")


if __name__ == "__main__":
    main()
