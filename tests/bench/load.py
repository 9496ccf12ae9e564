"""A mixed load for N minutes against a real server (prints figures; asserts nothing about speed).

    .venv/bin/python tests/bench/load.py [--minutes 1] [--businesses 50] [--leads-per-business 200]
        [--concurrency 8] [--mix form=4,inbox=4,search=2,lead=2,voicemail=1,chat=1]

A real `run.py` server (in-process worker on) on a fresh data directory built by the real
migrations: N businesses, each with one signed-in member (session cookies made with
`auth.start_session` before the start, as in inbox.py), a PBX token, and leads pre-filled by
plain inserts (FTS triggers included). The form and chat rate limits are lifted in its
capteo.toml, and the chat is `guided` (no model). Then `--concurrency` threads, each with its
own httpx client, pick a kind by the mix's weights until the time is up:

- form: GET the business's form (its one-time token; `form_page`), then POST a submission of
  fake data; each accepted POST is one `form`;
- inbox: the first page of the leads of a random business, as its member;
- search: the same with `q` (a first name, a word of the need, a phone fragment in turn);
- lead: one lead page of that business;
- voicemail: a 2 s WAV posted to `/api/voicemail` with the business's PBX token;
- chat: GET the chat page (`chat_page`), accept it (`chat_start`), then 2-3 messages
  (`chat_send`, `x-capteo-chat: 1`).

Prints, per request kind: requests, throughput, p50/p95/p99 ms (every answered request),
errors (5xx, connection errors, unexpected 4xx or answers), 429s apart as "limited"; and the
lines of the server's log that say the database was locked or busy. Exits 1 on any error or
any such line. The load generator runs on the same machine and takes part of the CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app import businesses, migrations  # noqa: E402
from app.businesses import auth  # noqa: E402
from app.db import Database, connect  # noqa: E402
from tests.support.app import ServerProcess, write_config  # noqa: E402
from tests.support.audio import tone_wav  # noqa: E402

KINDS = ["form", "inbox", "search", "lead", "voicemail", "chat"]
# What each kind sends, in the order printed (a kind may make more than one request).
REQUESTS = ["form_page", "form", "inbox", "search", "lead", "voicemail", "chat_page", "chat_start", "chat_send"]
FIRST = ["Hélène", "Marc", "Julie", "Éric", "Priya", "Luc", "Sophie", "Jean", "Nadia", "Pierre", "Chloé", "Omar"]
LAST = ["Côté", "Tremblay", "Gagnon", "Roy", "Bouchard", "Gauthier", "Morin", "Lavoie", "Fortin", "Nair"]
NEEDS = ["Fuite d'eau sous l'évier de la cuisine", "Chauffe-eau à remplacer", "Borne de recharge au garage",
         "Water heater leaking in the basement", "Panne de courant partielle", "Toilet keeps running",
         "Fournaise qui ne démarre plus", "Quote for a new bathroom"]
WORDS = ["chauffe", "fuite", "garage", "fournaise", "toilet", "bathroom"]
LOCKED = re.compile(r"database is locked|database table is locked|BusyError|SQLITE_BUSY|\bbusy\b", re.IGNORECASE)
TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
SESSION = re.compile(r'name="session" value="([^"]+)"')
UNLIMITED = 100_000_000


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.strip().partition("=")
        if kind not in KINDS or not weight.isdigit():
            raise SystemExit(f"--mix: {part!r}: use kind=weight with kinds {', '.join(KINDS)}")
        mix[kind] = int(weight)
    if not any(mix.values()):
        raise SystemExit("--mix: all weights are 0")
    return mix


def fill(db_path: Path, business_ids: list[int], per_business: int, rng: random.Random) -> None:
    """Leads by plain inserts, spread over the businesses (as inbox.py does)."""
    conn = connect(db_path)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    conn.execute("BEGIN IMMEDIATE")
    rows = []
    for i in range(len(business_ids) * per_business):
        created = (base + timedelta(seconds=i * 29)).isoformat(timespec="seconds")
        rows.append((business_ids[i % len(business_ids)], f"L{i:09d}", rng.choice(["web", "phone"]),
                     rng.choice(["new", "new", "contacted", "closed", "archived"]), rng.choice(FIRST),
                     rng.choice(LAST), f"+1514555{i % 10000:04d}", rng.choice(NEEDS), created, created))
    conn.executemany(
        "INSERT INTO leads (business_id, reference, channel, status, first_name, last_name, phone, need,"
        " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA optimize")
    conn.close()


@dataclass
class Business:
    id: int
    slug: str
    session: str
    pbx_token: str
    lead_ids: list[int]


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in REQUESTS})
    errors: Counter = field(default_factory=Counter)
    limited: Counter = field(default_factory=Counter)
    sent: Counter = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)

    def merge(self, other: Stats) -> None:
        for k, v in other.latencies.items():
            self.latencies[k].extend(v)
        self.errors.update(other.errors)
        self.sent.update(other.sent)
        self.limited.update(other.limited)
        self.samples.extend(other.samples)


class Failed(Exception):
    """A request of a kind failed; the rest of that kind's steps are skipped."""


class Worker:
    def __init__(self, url: str, seed: int, shops: list[Business], wav: bytes):
        self.client = httpx.Client(base_url=url, timeout=60)
        self.rng = random.Random(seed)
        self.shops = shops
        self.wav = wav
        self.stats = Stats()
        self.n = 0

    def call(self, kind: str, method: str, path: str, expect: int,
             check: Callable[[httpx.Response], bool] | None = None, signed_in: Business | None = None,
             **kw) -> httpx.Response:
        self.client.cookies.clear()  # never one business's cookies on another's request
        if signed_in is not None:
            kw["headers"] = {**kw.get("headers", {}), "cookie": f"capteo_session={signed_in.session}"}
        self.stats.sent[kind] += 1
        t = time.perf_counter()
        try:
            r = self.client.request(method, path, **kw)
        except httpx.HTTPError as e:
            self.fail(kind, f"{method} {path}: {type(e).__name__}: {e}")
        self.stats.latencies[kind].append((time.perf_counter() - t) * 1000)
        if r.status_code == 429:
            self.stats.limited[kind] += 1
            raise Failed
        if r.status_code != expect or (check is not None and not check(r)):
            self.fail(kind, f"{method} {path}: {r.status_code} {r.text[:200]!r}")
        return r

    def fail(self, kind: str, why: str) -> None:
        self.stats.errors[kind] += 1
        if len(self.stats.samples) < 20:
            self.stats.samples.append(f"{kind}: {why}")
        raise Failed

    def person(self) -> dict[str, str]:
        self.n += 1
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        return {"first_name": first, "last_name": last, "phone": f"514 555-01{self.rng.randint(0, 99):02d}",
                "email": f"client{self.n}.{self.rng.randint(0, 10**6)}@example.com", "postal_code": "H2X 1Y4",
                "need": self.rng.choice(NEEDS) + ", intervention souhaitée cette semaine."}

    def form(self, shop: Business) -> None:
        page = self.call("form_page", "GET", f"/fr/f/{shop.slug}", 200)
        token = TOKEN.search(page.text)
        if token is None:
            self.fail("form_page", "no form_token on the page")
        assert token is not None
        self.call("form", "POST", f"/fr/f/{shop.slug}", 200, check=lambda r: "Merci" in r.text,
                  data={"form_token": token.group(1), "consent": "yes", **self.person()})

    def inbox(self, shop: Business) -> None:
        self.call("inbox", "GET", "/fr/app/leads", 200, signed_in=shop)

    def search(self, shop: Business) -> None:
        q = self.rng.choice([self.rng.choice(FIRST), self.rng.choice(WORDS), f"555{self.rng.randint(0, 9999):04d}"])
        self.call("search", "GET", "/fr/app/leads", 200, signed_in=shop, params={"q": q})

    def lead(self, shop: Business) -> None:
        self.call("lead", "GET", f"/fr/app/leads/{self.rng.choice(shop.lead_ids)}", 200, signed_in=shop)

    def voicemail(self, shop: Business) -> None:
        self.call("voicemail", "POST", "/api/voicemail", 201,
                  headers={"authorization": f"Bearer {shop.pbx_token}"},
                  files={"audio": ("message.wav", self.wav, "audio/wav")},
                  data={"caller_id": f"514 555-01{self.rng.randint(0, 99):02d}"})

    def chat(self, shop: Business) -> None:
        page = self.call("chat_page", "GET", f"/fr/c/{shop.slug}", 200)
        token = TOKEN.search(page.text)
        if token is None:
            self.fail("chat_page", "no form_token on the page")
        assert token is not None
        started = self.call("chat_start", "POST", f"/fr/c/{shop.slug}/start", 200,
                            data={"form_token": token.group(1), "consent": "yes"})
        session = SESSION.search(started.text)
        if session is None:
            self.fail("chat_start", "no session token on the page")
        assert session is not None
        who = self.person()
        messages = [who["need"], f"Je m'appelle {who['first_name']} {who['last_name']}", who["phone"]]
        for text in messages[:self.rng.choice([2, 3])]:
            self.call("chat_send", "POST", f"/fr/c/{shop.slug}/send", 200, headers={"x-capteo-chat": "1"},
                      data={"session": session.group(1), "message": text})

    def run(self, mix: dict[str, int], deadline: float) -> Stats:
        kinds, weights = list(mix), list(mix.values())
        while time.monotonic() < deadline:
            kind = self.rng.choices(kinds, weights)[0]
            with contextlib.suppress(Failed):
                getattr(self, kind)(self.rng.choice(self.shops))
        self.client.close()
        return self.stats


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def prepare(directory: Path, args: argparse.Namespace, rng: random.Random) -> list[Business]:
    (directory / "data").mkdir()
    db_path = directory / "data" / "capteo.db"
    migrations.apply(db_path)
    db = Database(db_path)
    made = []
    with db.write() as conn:
        for b in range(1, args.businesses + 1):
            bid = businesses.create_business(conn, slug=f"b{b}", name=f"Entreprise {b}", timezone="America/Toronto")
            pbx = f"bench-pbx-token-{b}"
            conn.execute("UPDATE businesses SET notify_phones = ?, pbx_token_hash = ? WHERE id = ?",
                         (json.dumps(["+15145550100"]), businesses.token_hash(pbx), bid))
            conn.execute("INSERT INTO users (email, created_at) VALUES (?, ?)",
                         (f"owner{b}@example.com", "2026-01-01T00:00:00+00:00"))
            uid = conn.last_insert_rowid()
            conn.execute("INSERT INTO memberships VALUES (?, ?, 'owner')", (uid, bid))
            made.append((bid, f"b{b}", uid, pbx))
    fill(db_path, [m[0] for m in made], args.leads_per_business, rng)
    lead_ids: dict[int, list[int]] = {m[0]: [] for m in made}
    for row in db.query("SELECT id, business_id FROM leads"):
        lead_ids[row["business_id"]].append(row["id"])
    shops = [Business(bid, slug, auth.start_session(db, user_id=uid, business_id=bid), pbx, lead_ids[bid])
             for bid, slug, uid, pbx in made]
    db.close()
    return shops


def report(stats: Stats, elapsed: float, log_text: str) -> int:
    total = sum(stats.sent.values())
    print(f"{total} requests in {elapsed:.1f} s: {total / elapsed:.1f}/s")
    print(f"{'kind':<11} {'requests':>8} {'/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>6} "
          f"{'limited':>7}")
    for kind in REQUESTS:
        lat = stats.latencies[kind]
        n = stats.sent[kind]
        if not n:
            continue
        figures = (f"{pct(lat, 50):>8.1f} {pct(lat, 95):>8.1f} {pct(lat, 99):>8.1f}" if lat
                   else f"{'-':>8} {'-':>8} {'-':>8}")
        print(f"{kind:<11} {n:>8} {n / elapsed:>7.1f} {figures} {stats.errors[kind]:>6} {stats.limited[kind]:>7}")
    errors = sum(stats.errors.values())
    locked = [line for line in log_text.splitlines() if LOCKED.search(line)]
    tracebacks = log_text.count("Traceback (most recent call last)")
    print(f"errors: {errors}; limited (429): {sum(stats.limited.values())}")
    print(f"server log ({len(log_text.splitlines())} lines): {len(locked)} 'database is locked' / busy lines, "
          f"{tracebacks} tracebacks")
    for sample in stats.samples[:10]:
        print(f"  error: {sample}")
    for line in locked[:10]:
        print(f"  log: {line[:300]}")
    return 1 if errors or locked else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--businesses", type=int, default=50)
    parser.add_argument("--leads-per-business", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mix", default="form=4,inbox=4,search=2,lead=2,voicemail=1,chat=1")
    args = parser.parse_args()
    mix = parse_mix(args.mix)
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as d:
        directory = Path(d)
        t0 = time.perf_counter()
        shops = prepare(directory, args, rng)
        srv = ServerProcess(directory, demo=False)
        srv.config_path = write_config(
            directory, server={"port": srv.port},
            forms={"rate_limit": UNLIMITED},
            chat={"engine": "guided", "conversations_per_hour": UNLIMITED, "messages_per_minute": UNLIMITED,
                  "ip_messages_per_minute": UNLIMITED})
        print(f"{args.businesses} businesses x {args.leads_per_business} leads ready in "
              f"{time.perf_counter() - t0:.1f} s; {args.minutes:g} min, concurrency {args.concurrency}, "
              f"mix {','.join(f'{k}={v}' for k, v in mix.items())}", flush=True)
        srv.start()
        try:
            wav = tone_wav(2.0)
            workers = [Worker(srv.url, 1000 + i, shops, wav) for i in range(args.concurrency)]
            start = time.monotonic()
            deadline = start + args.minutes * 60
            with ThreadPoolExecutor(args.concurrency) as pool:
                results = list(pool.map(lambda w: w.run(mix, deadline), workers))
            elapsed = time.monotonic() - start
        finally:
            srv.stop()
        stats = Stats()
        for s in results:
            stats.merge(s)
        code = report(stats, elapsed, srv.log.read_text(errors="replace"))
    sys.exit(code)


if __name__ == "__main__":
    main()
