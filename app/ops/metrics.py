"""`GET /metrics`: the service's figures in the Prometheus text format.

Each app has its own `CollectorRegistry` (never prometheus_client's global one: the
tests build many apps in one process). What it holds:

- `capteo_http_request_duration_seconds` (histogram), recorded by `timed()` (app.http_limits.Timed, as the access log)
  around the whole app, labelled by method, route *template* (`/{lang:str}/app/leads/{lead_id:int}`,
  never the path asked for: no id, slug or token) and status class (`2xx`...);
- everything else is read when Prometheus scrapes (`StateCollector`), from the queues'
  SQLite files and from capteo.db, with a few indexed or bounded queries: queue depth,
  the age of the oldest waiting SMS, webhook delivery and voicemail step, counts by
  status, the models' state;
- `capteo_replication_lag_seconds` when `[replication]` is on: how far Litestream's replica is
  behind capteo.db (NaN when it cannot be told), from a reading at most a few seconds old that
  is refreshed in the background: a scrape never waits on the replica.

Labels carry only words this module chooses (states, statuses, queue and model names):
never a business, a person, a phone number, an address or a URL. Nothing is logged.

Who may read it: `[metrics] enabled`; a request from 127.0.0.1/::1 that came through no
proxy when `[metrics] allow_localhost` (default), else `Authorization: Bearer <token>`
with the `metrics` secret (`CAPTEO_SECRET_METRICS`, or generated into
`<data dir>/secrets/metrics`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from datetime import datetime

from litestar import Request, Response, get
from litestar.types import ASGIApp, Scope
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import jobs
from app import clock, http_limits
from app.config import Config
from app.db import Database
from app.ops import replication
from app.voicemail import models

# Seconds; a voicemail upload may take minutes, a page a few milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# Any other method (a client may send any word) is counted as "other": labels stay few.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# Headers a proxy adds: a request carrying one came through a proxy, even from 127.0.0.1.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "cf-connecting-ip", "true-client-ip")
LOOPBACK = frozenset({"127.0.0.1", "::1"})

# The states and statuses the schema allows (its CHECK constraints): each is always
# exposed, at 0 when none, so a series never vanishes.
VOICEMAIL_STATES = ("received", "transcribed", "extracted", "lead_created", "failed")
VOICEMAIL_UNFINISHED = ("received", "transcribed", "extracted")
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")
WEBHOOK_STATUSES = ("pending", "sending", "delivered", "failed", "canceled")
CHAT_STATES = ("open", "lead", "closed", "erased")

# Upload-to-lead time is measured on this many of the newest voicemails (rowid order: no scan).
RECENT_VOICEMAILS = 200


class Metrics:
    """One app's registry, its request histogram and the scrape-time collector."""

    def __init__(self, config: Config, db: Database):
        self.config = config
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "capteo_http_request_duration_seconds",
            "Time to answer a request, by method, route template and status class.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(StateCollector(config, db))
        self.token = config.secret("metrics") if config.metrics.enabled else ""

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def route_label(scope: Scope) -> str:
    """The route's template as declared (`/{lang:str}/app/leads/{lead_id:int}`), never
    the path asked for; "(no route)" when nothing matched (every 404 of a made-up path)."""
    return scope.get("path_template") or "(no route)"


def timed(app: ASGIApp, metrics: Metrics) -> http_limits.Timed:
    """Around the whole app (error pages and 413/408 answers included): one observation
    per HTTP request, once its answer has been sent."""

    def observe(scope: Scope, status: int, seconds: float) -> None:
        method = scope.get("method", "")
        metrics.latency.labels(method if method in METHODS else "other", route_label(scope),
                               _status_class(status)).observe(seconds)

    return http_limits.Timed(app, observe)


def may_read(config: Config, token: str, headers: Mapping[str, str], peer: str | None) -> bool:
    """Whether a request may read /metrics: the right bearer token, or (when
    `[metrics] allow_localhost`) a loopback peer with no proxy header (a reverse proxy on the
    same box connects from 127.0.0.1 too, and adds one of them; see capteo.toml)."""
    given = headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
        return True
    if not config.metrics.allow_localhost or peer not in LOOPBACK:
        return False
    proxied = (*PROXY_HEADERS, config.server.trust_proxy_header.lower()) if config.server.trust_proxy_header \
        else PROXY_HEADERS
    return not any(name in headers for name in proxied)


@get("/metrics", name="metrics", sync_to_thread=True, include_in_schema=False)
def metrics_page(request: Request) -> Response:
    config: Config = request.app.state.config
    metrics: Metrics = request.app.state.metrics
    if not config.metrics.enabled:
        return Response(b"Not Found\n", status_code=404, media_type="text/plain")
    peer = request.client.host if request.client else None
    if not may_read(config, metrics.token, request.headers, peer):
        return Response(b"Unauthorized\n", status_code=401, media_type="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    # As a header: Litestar would append a second charset to a text/ media type.
    return Response(metrics.render(), headers={"content-type": CONTENT_TYPE_LATEST, "cache-control": "no-store"})


routes = [metrics_page]


def _seconds_since(iso: str | None, now: datetime) -> float:
    if not iso:
        return 0.0
    return max(0.0, (now - datetime.fromisoformat(iso)).total_seconds())


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class StateCollector(Collector):
    """Figures read when Prometheus scrapes; a part that cannot be read (a file missing,
    a table locked) is left out of this scrape rather than failing the others."""

    def __init__(self, config: Config, db: Database):
        self.config = config
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("capteo_metrics_source_up",
                               "1: this scrape read the source; 0: it could not (its figures are missing).",
                               labels=["source"])
        for name, part in (("queues", self._queues), ("models", self._models), ("voicemails", self._voicemails),
                           ("sms", self._outbox), ("webhooks", self._webhooks), ("chat", self._chat),
                           *((("replication", self._replication),) if replication.enabled(self.config) else ())):
            try:
                read = list(part())
            except Exception:  # one unreadable source must not hide the others
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from read
        yield up

    def _queues(self) -> Iterator[Metric]:
        # Huey's task table keeps no enqueue time, so the age of waiting work is read from
        # capteo.db below (the SMS, webhook and voicemail ages), where each job's truth is.
        depth = GaugeMetricFamily("capteo_queue_depth", "Tasks waiting in a Huey queue.", labels=["queue"])
        scheduled = GaugeMetricFamily("capteo_queue_scheduled", "Tasks scheduled for later in a Huey queue.",
                                      labels=["queue"])
        for name, queue in (("huey", jobs.huey), ("models_huey", jobs.models_huey)):
            depth.add_metric([name], queue.pending_count())
            scheduled.add_metric([name], queue.scheduled_count())
        yield depth
        yield scheduled

    def _models(self) -> Iterator[Metric]:
        usable = GaugeMetricFamily("capteo_model_usable",
                                   "1: the model loaded and answered; 0: it cannot be used; -1: not known yet.",
                                   labels=["model"])
        for kind, state in models.health(self.config).items():  # never loads a model here
            usable.add_metric([kind], -1 if state["usable"] is None else int(bool(state["usable"])))
        yield usable

    def _counts(self, sql: str, known: tuple[str, ...]) -> dict[str, int]:
        counts = dict.fromkeys(known, 0)
        for row in self.db.query(sql):
            counts[row["k"]] = row["n"]
        return counts

    def _voicemails(self) -> Iterator[Metric]:
        now = clock.now()
        counts = self._counts("SELECT state AS k, count(*) AS n FROM voicemails GROUP BY state", VOICEMAIL_STATES)
        family = GaugeMetricFamily("capteo_voicemails", "Voicemails by state of their processing.", labels=["state"])
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family
        # How long the oldest voicemail waiting at each step has been there (0: none waits).
        # The voicemails_pending index holds only unfinished voicemails: a small set.
        waiting = {row["state"]: row["since"] for row in self.db.query(
            "SELECT state, min(updated_at) AS since FROM voicemails"
            " WHERE state IN ('received', 'transcribed', 'extracted') GROUP BY state")}
        age = GaugeMetricFamily("capteo_voicemail_oldest_waiting_seconds",
                                "Seconds the oldest voicemail waiting at a step has been waiting there.",
                                labels=["state"])
        for state in VOICEMAIL_UNFINISHED:
            age.add_metric([state], _seconds_since(waiting.get(state), now))
        yield age
        # Upload to lead, over the newest voicemails that became a lead: the step's end is
        # their updated_at (set when the lead was made).
        done = [
            (datetime.fromisoformat(row["updated_at"]) - datetime.fromisoformat(row["created_at"])).total_seconds()
            for row in self.db.query(
                "SELECT created_at, updated_at, state FROM voicemails ORDER BY id DESC LIMIT ?",
                (RECENT_VOICEMAILS,))
            if row["state"] == "lead_created" and row["updated_at"]
        ]
        to_lead = GaugeMetricFamily(
            "capteo_voicemail_to_lead_seconds",
            f"Seconds from upload to lead, over the newest {RECENT_VOICEMAILS} voicemails that became a lead.",
            labels=["quantile"])
        count = GaugeMetricFamily("capteo_voicemail_to_lead_sample",
                                  "How many voicemails capteo_voicemail_to_lead_seconds is computed over.")
        count.add_metric([], len(done))
        if done:
            for q in (0.5, 0.9, 1.0):
                to_lead.add_metric([str(q)], max(0.0, _quantile(done, q)))
        yield to_lead
        yield count

    def _outbox(self) -> Iterator[Metric]:
        counts = self._counts("SELECT status AS k, count(*) AS n FROM outbox GROUP BY status", OUTBOX_STATUSES)
        family = GaugeMetricFamily("capteo_sms", "SMS in the outbox by status, all businesses together.",
                                   labels=["status"])
        for status, n in counts.items():
            family.add_metric([status], n)
        yield family
        oldest = self.db.one("SELECT min(created_at) AS at FROM outbox WHERE status IN ('pending', 'sending')")
        yield GaugeMetricFamily("capteo_sms_oldest_waiting_seconds",
                                "Seconds the oldest SMS not yet sent (nor failed) has waited; 0: none.",
                                value=_seconds_since(oldest["at"], clock.now()))

    def _webhooks(self) -> Iterator[Metric]:
        counts = self._counts("SELECT status AS k, count(*) AS n FROM webhook_deliveries GROUP BY status",
                              WEBHOOK_STATUSES)
        family = GaugeMetricFamily("capteo_webhook_deliveries",
                                   "Webhook deliveries by status, all businesses together.", labels=["status"])
        for status, n in counts.items():
            family.add_metric([status], n)
        yield family
        oldest = self.db.one(
            "SELECT min(created_at) AS at FROM webhook_deliveries WHERE status IN ('pending', 'sending')")
        yield GaugeMetricFamily("capteo_webhook_oldest_waiting_seconds",
                                "Seconds the oldest webhook delivery not yet done has waited; 0: none.",
                                value=_seconds_since(oldest["at"], clock.now()))

    def _replication(self) -> Iterator[Metric]:
        reading = replication.cached_lag(self.config)
        yield GaugeMetricFamily(
            "capteo_replication_lag_seconds",
            "Seconds the off-box replica of capteo.db is behind (0: in sync; NaN: not known yet or unreadable).",
            value=replication.lag_value(reading))
        if reading is not None and reading.problem:
            raise replication.ReplicationError(reading.problem)  # capteo_metrics_source_up{source="replication"} 0

    def _chat(self) -> Iterator[Metric]:
        counts = self._counts("SELECT state AS k, count(*) AS n FROM chat_conversations GROUP BY state", CHAT_STATES)
        family = GaugeMetricFamily("capteo_chat_conversations", "Chat conversations by state.", labels=["state"])
        for state, n in counts.items():
            family.add_metric([state], n)
        yield family
