"""Inbox latency as the number of leads grows (prints figures; asserts nothing).

    .venv/bin/python tests/bench/inbox.py [--sizes 10000,100000,1000000] [--requests 200]

Leads are spread over 1,000 businesses in one data directory built by the real
migrations (FTS triggers included). At each size a real `run.py` server answers,
for a random signed-in business each time: the inbox's first page, and a search
(a first name, a common word of the need, and a phone fragment in turn). Prints
p50/p95 in milliseconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app import migrations
from app.businesses import auth  # noqa: E402
from app.db import Database, connect  # noqa: E402
from tests.support.app import ServerProcess, write_config  # noqa: E402

BUSINESSES = 1000
FIRST = ["Hélène", "Marc", "Julie", "Éric", "Priya", "Luc", "Sophie", "Jean", "Nadia", "Pierre", "Chloé", "Omar"]
LAST = ["Côté", "Tremblay", "Gagnon", "Roy", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Nair"]
NEEDS = ["Fuite d'eau sous l'évier de la cuisine", "Chauffe-eau à remplacer", "Borne de recharge au garage",
         "Water heater leaking in the basement", "Panne de courant partielle", "Toilet keeps running",
         "Fournaise qui ne démarre plus", "Quote for a new bathroom"]


def fill(db_path: Path, start: int, count: int, rng: random.Random) -> None:
    conn = connect(db_path)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    conn.execute("BEGIN IMMEDIATE")
    rows = []
    for i in range(start, start + count):
        created = (base + timedelta(seconds=i * 29)).isoformat(timespec="seconds")
        rows.append((1 + i % BUSINESSES, f"B{i:09d}", rng.choice(["web", "phone"]),
                     rng.choice(["new", "new", "contacted", "closed", "archived"]), rng.choice(FIRST),
                     rng.choice(LAST), f"+1514555{i % 10000:04d}", rng.choice(NEEDS), created, created))
        if len(rows) == 20000:
            conn.executemany(
                "INSERT INTO leads (business_id, reference, channel, status, first_name, last_name, phone, need,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            rows = []
    if rows:
        conn.executemany(
            "INSERT INTO leads (business_id, reference, channel, status, first_name, last_name, phone, need,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA optimize")
    conn.close()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as d:
        directory = Path(d)
        cfg_path = write_config(directory)
        (directory / "data").mkdir()
        db_path = directory / "data" / "capteo.db"
        migrations.apply(db_path)
        conn = connect(db_path)
        conn.execute("BEGIN IMMEDIATE")
        for b in range(1, BUSINESSES + 1):
            conn.execute("INSERT INTO businesses (id, slug, name, timezone, created_at) VALUES (?, ?, ?, ?, ?)",
                         (b, f"b{b}", f"Business {b}", "America/Toronto", "2026-01-01T00:00:00+00:00"))
            conn.execute("INSERT INTO users (id, email, created_at) VALUES (?, ?, ?)",
                         (b, f"owner{b}@example.com", "2026-01-01T00:00:00+00:00"))
            conn.execute("INSERT INTO memberships VALUES (?, ?, 'owner')", (b, b))
        conn.execute("COMMIT")
        conn.close()
        db = Database(db_path)
        sessions = {b: auth.start_session(db, user_id=b, business_id=b) for b in range(1, 101)}
        db.close()
        done = 0
        print(f"{'leads':>9} | {'first page p50/p95 ms':>22} | {'search p50/p95 ms':>18}")
        for size in [int(s) for s in args.sizes.split(",")]:
            t0 = time.perf_counter()
            fill(db_path, done, size - done, rng)
            fill_s = time.perf_counter() - t0
            done = size
            srv = ServerProcess(directory, demo=False)
            srv.config_path = cfg_path
            srv.start()
            client = httpx.Client(base_url=srv.url, timeout=30)
            queries = ["helene", "chauffe", "5550123", "tremblay fuite"]
            first, search = [], []
            for i in range(args.requests):
                b = rng.randint(1, 100)
                cookies = {"capteo_session": sessions[b]}
                t = time.perf_counter()
                assert client.get("/fr/app/leads", cookies=cookies).status_code == 200
                first.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                r = client.get("/fr/app/leads", params={"q": queries[i % len(queries)]}, cookies=cookies)
                assert r.status_code == 200
                search.append((time.perf_counter() - t) * 1000)
            srv.stop()
            print(f"{size:>9} | {statistics.median(first):>9.1f} / {pct(first, 95):>9.1f} | "
                  f"{statistics.median(search):>7.1f} / {pct(search, 95):>7.1f}   (filled in {fill_s:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
