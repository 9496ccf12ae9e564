"""The floor under tests/bench/form.py: the same two phases (a static file, then form posts)
against a bare Litestar app on uvicorn, with the same client (prints figures; asserts nothing).

    .venv/bin/python tests/bench/form_floor.py [--requests 1500] [--concurrency 8]

The bare app serves Capteo's static directory, and takes the same form post: it parses the
form, stores one row in a WAL database with `synchronous = FULL` (apsw, one writer, one
fsync'd commit per post) and answers a small HTML page. No middleware, no validation, no
audit entry, no search index, no template, no queue. What the ratio of posts to the static
file is here, and how far Capteo's own post is from it, says where a post's time goes: in the
framework and the server, or in the work the post does (issue 16's goal: ratio >= 0.6).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import apsw
import httpx
from anyio import to_thread
from litestar import Litestar, Request, post
from litestar.response import Response
from litestar.static_files import create_static_files_router

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.form import cpu_seconds, run_phase  # noqa: E402
from tests.support.app import ROOT, free_port  # noqa: E402

STATIC = "/static/css/capteo.css"


def make_app() -> Any:
    """The bare app (uvicorn --factory); its database is $FLOOR_DB."""
    path = os.environ["FLOOR_DB"]
    local = threading.local()
    lock = threading.Lock()

    def conn() -> apsw.Connection:
        c = getattr(local, "conn", None)
        if c is None:
            c = local.conn = apsw.Connection(path)
            c.execute("PRAGMA journal_mode = WAL")
            c.execute("PRAGMA synchronous = FULL")
        return c

    conn().execute("CREATE TABLE IF NOT EXISTS leads (id INTEGER PRIMARY KEY, first_name, last_name, phone, "
                   "email, postal_code, need)")

    def store(form: dict[str, str]) -> int:
        with lock:
            c = conn()
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO leads (first_name, last_name, phone, email, postal_code, need) "
                      "VALUES (?, ?, ?, ?, ?, ?)",
                      tuple(form.get(k) for k in ("first_name", "last_name", "phone", "email", "postal_code",
                                                  "need")))
            row_id = c.last_insert_rowid()
            c.execute("COMMIT")
            return row_id

    @post("/fr/f/demo", status_code=200)
    async def submit(request: Request) -> Response:
        form = dict((await request.form()).items())
        row_id = await to_thread.run_sync(store, form)
        return Response(f"<!doctype html><title>Merci</title><p>Merci ! Référence {row_id}</p>",
                        media_type="text/html")

    return Litestar(route_handlers=[submit, create_static_files_router(path="/static",
                                                                       directories=[ROOT / "static"])],
                    openapi_config=None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "FLOOR_DB": str(Path(d) / "floor.db")}
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "tests.bench.form_floor:make_app",
                                 "--port", str(port), "--no-access-log", "--log-level", "warning"],
                                cwd=ROOT, env=env)
        try:
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                  limits=httpx.Limits(max_connections=args.concurrency * 2))
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.get(STATIC)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

            def static(i: int) -> None:
                assert client.get(STATIC).status_code == 200

            def submit(i: int) -> None:
                r = client.post("/fr/f/demo", data={
                    "form_token": "x" * 90, "first_name": f"Client {i}", "last_name": "Tremblay",
                    "phone": "514 555-0101", "email": f"client{i}@example.com", "postal_code": "H2X 1Y4",
                    "need": "Chauffe-eau qui fuit au sous-sol, intervention souhaitée cette semaine.",
                    "consent": "yes", "cf_1": "house"})
                assert r.status_code == 200 and "Merci" in r.text, r.status_code

            run_phase(50, args.concurrency, static)  # warm-up
            cpu0 = cpu_seconds(proc.pid)
            static_time, _ = run_phase(args.requests, args.concurrency, static)
            cpu1 = cpu_seconds(proc.pid)
            post_time, _ = run_phase(args.requests, args.concurrency, submit)
            cpu2 = cpu_seconds(proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)
    n = args.requests
    print(f"bare Litestar app, {n} requests, concurrency {args.concurrency}")
    print(f"static file: {n / static_time:.0f}/s, server CPU {(cpu1 - cpu0) / n * 1000:.2f} ms each")
    print(f"form posts (one fsync'd row each): {n / post_time:.0f}/s, server CPU {(cpu2 - cpu1) / n * 1000:.2f} ms each")
    print(f"ratio posts / static: {static_time / post_time:.2f}")


if __name__ == "__main__":
    main()
