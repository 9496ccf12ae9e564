"""Inbox latency as the number of leads grows (prints figures; asserts nothing).

    .venv/bin/python tests/bench/inbox.py [--sizes 10000,100000,1000000] [--requests 200] [--cache DIR]

Leads are spread over 1,000 businesses in one data directory built by the real
migrations (FTS triggers included). At each size a real `run.py` server answers,
for a random signed-in business each time: the inbox's first page, a status tab
(one of the five, in turn), and a search (a first name, a common word of the need,
and a phone fragment in turn), after 20 rounds not counted. Prints p50/p95 in milliseconds, then the same
queries timed in this process, one by one (where a page's time goes), and last the
ratio of each p95 at the largest size to that at the smallest (the goals of issue 16).

--cache DIR keeps the database filled at each size (DIR/inbox-<size>.db) and starts
from it next time; a cached database made by older code gets the pending migrations
first (their time is printed), which also shows what they cost at that size.
--plans prints each query's plan (EXPLAIN QUERY PLAN) at the largest size.
--fixed N gives the signed-in businesses (1 to 100) N leads each at every size, and the
others all the rest: what a business's inbox costs as only the other businesses grow
(without it, every business grows with the size, and its pages show more rows).
Each size has its own server, asked in turn, so a busy machine weighs on all alike.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app import audit, leads, migrations  # noqa: E402
from app.businesses import auth  # noqa: E402
from app.db import Database, connect  # noqa: E402
from tests.support.app import ServerProcess, write_config  # noqa: E402

BUSINESSES = 1000
SIGNED_IN = 100  # businesses 1..100 are the ones whose inbox is asked for
FIRST = ["Hélène", "Marc", "Julie", "Éric", "Priya", "Luc", "Sophie", "Jean", "Nadia", "Pierre", "Chloé", "Omar"]
LAST = ["Côté", "Tremblay", "Gagnon", "Roy", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Nair"]
NEEDS = ["Fuite d'eau sous l'évier de la cuisine", "Chauffe-eau à remplacer", "Borne de recharge au garage",
         "Water heater leaking in the basement", "Panne de courant partielle", "Toilet keeps running",
         "Fournaise qui ne démarre plus", "Quote for a new bathroom"]
QUERIES = ["helene", "chauffe", "5550123", "tremblay fuite"]
TABS = ["new", "contacted", "closed", "archived", "scheduled"]
WARM_UP = 20


def business_of(i: int, fixed: int) -> int:
    """The business of the i-th lead: all of them in turn; or, with `fixed`, the first
    SIGNED_IN * fixed leads to the signed-in businesses and every later one to the others."""
    if not fixed:
        return 1 + i % BUSINESSES
    if i < SIGNED_IN * fixed:
        return 1 + i % SIGNED_IN
    return SIGNED_IN + 1 + i % (BUSINESSES - SIGNED_IN)


def fill(db_path: Path, start: int, count: int, rng: random.Random, fixed: int = 0) -> None:
    conn = connect(db_path)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    conn.execute("BEGIN IMMEDIATE")
    rows = []
    for i in range(start, start + count):
        created = (base + timedelta(seconds=i * 29)).isoformat(timespec="seconds")
        rows.append((business_of(i, fixed), f"B{i:09d}", rng.choice(["web", "phone"]),
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


def setup(db_path: Path) -> dict[int, str]:
    """Businesses, their owners, and a session for each of the first SIGNED_IN."""
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
    sessions = {b: auth.start_session(db, user_id=b, business_id=b) for b in range(1, SIGNED_IN + 1)}
    db.close()
    return sessions


def save(db_path: Path, cache: Path, key: str, sessions: dict[int, str]) -> None:
    conn = connect(db_path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db_path, cache / f"{key}.db.part")
    (cache / f"{key}.db.part").rename(cache / f"{key}.db")
    (cache / f"{key}.json").write_text(json.dumps(sessions))


def restore(db_path: Path, cache: Path, key: str) -> dict[int, str]:
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(cache / f"{key}.db", db_path)
    t0 = time.perf_counter()
    applied = migrations.apply(db_path)
    if applied:
        print(f"  {key}: migrations {', '.join(applied)} applied to the cached database in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)
    return {int(k): v for k, v in json.loads((cache / f"{key}.json").read_text()).items()}


def in_process(paths: dict[int, Path], requests: int, plans: bool) -> dict[int, dict[str, list[float]]]:
    """The inbox page's queries, timed one by one in this process (no HTTP, no template),
    each size in turn."""
    dbs = {size: Database(path) for size, path in paths.items()}
    cases: dict[str, Callable[[Database, int, int], object]] = {
        "inbox first page": lambda db, b, i: leads.inbox(db, b, user_id=b),
        "inbox status tab": lambda db, b, i: leads.inbox(db, b, status=TABS[i % len(TABS)], user_id=b),
        "inbox channel filter": lambda db, b, i: leads.inbox(db, b, channel="phone", user_id=b),
        "inbox search": lambda db, b, i: leads.inbox(db, b, q=QUERIES[i % len(QUERIES)], user_id=b),
        "counts by status": lambda db, b, i: leads.counts_by_status(db, b, user_id=b),
        "latest id": lambda db, b, i: leads.latest_id(db, b),
        "audit write": lambda db, b, i: _audit(db, b),
    }
    times: dict[int, dict[str, list[float]]] = {size: {name: [] for name in cases} for size in dbs}
    rng = random.Random(11)
    for i in range(-WARM_UP, requests):
        b = rng.randint(1, SIGNED_IN)
        for name, fn in cases.items():
            for size, db in dbs.items():
                t = time.perf_counter()
                fn(db, b, i)
                if i >= 0:
                    times[size][name].append((time.perf_counter() - t) * 1000)
    if plans:
        largest = dbs[max(dbs)]
        seen: dict[str, Any] = {}

        def trace(_cursor: object, sql: str, bindings: Any) -> bool:
            seen.setdefault(sql, bindings)
            return True

        largest.reader().exec_trace = trace
        for i, fn in enumerate(cases.values()):
            fn(largest, 1, i)
        largest.reader().exec_trace = None
        print(f"Query plans at {max(dbs)} leads:")
        for sql, bindings in seen.items():
            if sql.lstrip().upper().startswith("SELECT") and "audit_log" not in sql:
                print("  " + " ".join(sql.split())[:240])
                for row in largest.reader().execute(f"EXPLAIN QUERY PLAN {sql}", bindings):
                    print(f"      {row['detail']}")
    for db in dbs.values():
        db.close()
    return times


def _audit(db: Database, b: int) -> None:
    with db.write() as conn:
        audit.record(conn, actor=f"user:{b}", action="lead.list.view", entity="lead", business_id=b,
                     fields=["first_name"])


def prepare(sizes: list[int], root: Path, cache: Path | None,
            fixed: int) -> dict[int, tuple[Path, Path, dict[int, str]]]:
    """One data directory per size (its config, database and sessions), filled or taken from the cache."""
    out: dict[int, tuple[Path, Path, dict[int, str]]] = {}
    previous: Path | None = None
    done = 0
    sessions: dict[int, str] = {}
    for size in sizes:
        directory = root / f"size-{size}"
        (directory / "data").mkdir(parents=True)
        cfg_path = write_config(directory)
        db_path = directory / "data" / "capteo.db"
        key = f"inbox-{size}" + (f"-fixed{fixed}" if fixed else "")
        if cache and (cache / f"{key}.db").exists():
            sessions = restore(db_path, cache, key)
            print(f"  {size}: from the cache", flush=True)
        else:
            if previous is None:
                sessions, done = setup(db_path), 0
            else:
                conn = connect(previous)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()
                shutil.copyfile(previous, db_path)
            t0 = time.perf_counter()
            fill(db_path, done, size - done, random.Random(7 + done), fixed)
            print(f"  {size}: filled in {time.perf_counter() - t0:.0f} s", flush=True)
            if cache:
                save(db_path, cache, key, sessions)
        done, previous = size, db_path
        out[size] = (directory, cfg_path, sessions)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--plans", action="store_true")
    parser.add_argument("--fixed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.fixed and SIGNED_IN * args.fixed > sizes[0]:
        parser.error(f"--fixed {args.fixed}: the smallest size must hold {SIGNED_IN * args.fixed} leads")
    results: dict[int, dict[str, list[float]]] = {size: {} for size in sizes}
    with tempfile.TemporaryDirectory() as d:
        dirs = prepare(sizes, Path(d), args.cache, args.fixed)
        # One server per size, asked in turn: whatever else the machine does weighs on every size alike.
        servers, clients = {}, {}
        for size, (directory, cfg_path, _) in dirs.items():
            servers[size] = srv = ServerProcess(directory, demo=False)
            srv.config_path = cfg_path
            srv.start()
            clients[size] = httpx.Client(base_url=srv.url, timeout=30)
        rng = random.Random(7)
        kinds = ("first page", "status tab", "search")
        for size in sizes:
            results[size] = {kind: [] for kind in kinds}
        try:
            for i in range(-WARM_UP, args.requests):  # the first WARM_UP rounds are not counted
                b = rng.randint(1, SIGNED_IN)
                for kind, params in zip(kinds, ({}, {"status": TABS[i % len(TABS)]},
                                                {"q": QUERIES[i % len(QUERIES)]}), strict=True):
                    for size in sizes:
                        t = time.perf_counter()
                        r = clients[size].get("/fr/app/leads", params=params,
                                              cookies={"capteo_session": dirs[size][2][b]})
                        if i >= 0:
                            results[size][kind].append((time.perf_counter() - t) * 1000)
                        assert r.status_code == 200, r.status_code
        finally:
            for size in sizes:
                clients[size].close()
                servers[size].stop()
        inner = in_process({size: dirs[size][0] / "data" / "capteo.db" for size in sizes}, args.requests, args.plans)
        for size in sizes:
            results[size].update({f"({k})": v for k, v in inner[size].items()})
    print("HTTP (one server per size, asked in turn), then (in process); ms, p50 / p95:")
    print(f"    {'':<26}" + "".join(f"{size:>20}" for size in sizes))
    for kind in results[sizes[0]]:
        print(f"    {kind:<26}" + "".join(
            f"{statistics.median(results[size][kind]):9.2f} / {pct(results[size][kind], 95):7.2f}" for size in sizes))
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"p95 at {large} / p95 at {small} (goals: first page <= 1.2, search <= 1.5, both p95 <= 15 ms):")
        for kind in results[small]:
            a, b = pct(results[small][kind], 95), pct(results[large][kind], 95)
            print(f"    {kind:<26} {a:7.2f} -> {b:7.2f} ms   x{b / a:.2f}")


if __name__ == "__main__":
    main()
