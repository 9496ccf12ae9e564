#!/usr/bin/env python3
"""Capteo's one entry point.

    python run.py                      serve the web app and run the queue worker in-process
    python run.py migrate              apply pending database migrations
    python run.py worker [--models|--quick]   the queue workers alone (both, or one kind)
    python run.py business create --slug S --name NAME --owner EMAIL --password P
    python run.py user password EMAIL  a new one-time password for an account (printed once)
    python run.py backup DEST          consistent copy of the data directory, while running
    python run.py audit verify         check the audit log's hash chain
    python run.py retention run [--as-of DATETIME]   Law 25 sweep now (or as if it were then)
    python run.py incident add|list|export           the privacy incident register
    python run.py policy publish FR.md EN.md --effective YYYY-MM-DD   a new privacy policy version
    python run.py policy list          the policy versions, the one in effect marked
    python run.py businesses           every business: plan state, trial end, closed, last activity
    python run.py models pull          download the configured speech and language models
    python run.py models-serve [--host H] [--port P]  the models service of a GPU box, for several web boxes
    python run.py extract FILE.jsonl   extraction of transcripts, one JSON object per line
    python run.py check                validate the configuration, load the models; say what is wrong
    python run.py restore --to DIR [--timestamp T]   capteo.db from the Litestream replica, checked
    python run.py systemd-unit         print a systemd unit for this installation

`--config FILE` (or CAPTEO_CONFIG) selects another configuration file.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import UTC
from pathlib import Path

from app import config as config_mod

ROOT = Path(__file__).resolve().parent


def _load(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.load(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.http_limits import AccessLog, h11_with_header_timeout
    from app.web import create_app

    config = _load(args)
    app = create_app(config, run_worker=not args.no_worker)
    server = uvicorn.Server(
        uvicorn.Config(
            # Our own access log: uvicorn's writes the query string and the client's address.
            AccessLog(app),
            access_log=False,
            host=config.server.host,
            port=config.server.port,
            log_level="info",
            proxy_headers=False,
            server_header=False,
            # h11 with a deadline on request headers (the body's is in the app: http_limits).
            http=h11_with_header_timeout(config.server.request_timeout),
            # In-flight requests get this long; the worker's own timeout follows.
            timeout_graceful_shutdown=10,
        )
    )
    if warning := _proxy_warning(config):
        print(f"warning: {warning}", flush=True)
    # uvicorn re-raises the stop signal once it has shut down cleanly; with these
    # handlers in place that ends the process with exit code 0, not "killed by SIGTERM".
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    replicator = _start_replication(config)
    print(f"Capteo listening on http://{config.server.host}:{config.server.port}/ "
          f"(data: {config.data_dir})", flush=True)
    try:
        server.run()
    finally:
        # Last, once the server and the workers have stopped: Litestream pushes the last writes.
        if replicator is not None:
            replicator.stop()
    return 0


def _start_replication(config: config_mod.Config):
    """Litestream as a managed child when [replication] replica_url is set (None when off)."""
    if not config.replication.replica_url:
        return None
    from app import migrations
    from app.ops import replication

    config.ensure_dirs()
    migrations.apply(config.db_path)  # Litestream watches a database that exists
    replicator = replication.Replicator(config)
    replicator.start()
    print(f"replication: capteo.db copied continuously to {replication.safe_url(replication.replica_url(config))} "
          f"(every {config.replication.sync_interval_seconds:g} s)", flush=True)
    return replicator


def _proxy_warning(config: config_mod.Config) -> str | None:
    """An https public address means a proxy or tunnel terminates TLS in front of us: without
    `trust_proxy_header`, every client then has the proxy's address and shares its limits."""
    if config.server.trust_proxy_header or not config.public_url.startswith("https://"):
        return None
    return ("public_url is https, so a proxy or tunnel sits in front, but [server] trust_proxy_header "
            "is empty: every client has the proxy's address and shares one sign-in and form limit. "
            'Set trust_proxy_header = "CF-Connecting-IP" behind Cloudflare, "X-Forwarded-For" behind '
            "nginx or Caddy (the address the proxy appends is used)")


def _prepare(config: config_mod.Config):
    from app import audit, migrations
    from app.db import Database

    config.ensure_dirs()
    migrations.apply(config.db_path)
    config.secret("audit")
    db = Database(config.db_path)
    audit.start(db.reader())
    return db


def cmd_migrate(args: argparse.Namespace) -> int:
    from app import migrations

    config = _load(args)
    config.ensure_dirs()
    applied = migrations.apply(config.db_path)
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import jobs

    config = _load(args)
    if problem := jobs.check_queue(config):
        print(f"queue: {problem}", file=sys.stderr)
        return 1
    db = _prepare(config)
    jobs.configure(config, db)
    # --models: only the models' consumer (one thread: this process owns the GPU); with Redis,
    # several such processes share the models' queue. --quick: only the quick work and the sweeps.
    jobs.InProcessWorker(config, quick=not args.models, models=not args.quick).run()
    return 0


def cmd_user_password(args: argparse.Namespace) -> int:
    from app.businesses import recovery

    config = _load(args)
    db = _prepare(config)
    password = recovery.reset_by_operator(db, args.email)
    if password is None:
        print(f"error: no account has the email {args.email!r}", file=sys.stderr)
        return 1
    print(f"one-time password for {args.email}: {password}\n(shown once; they choose their own at the next "
          f"sign-in; their open sessions have ended)")
    return 0


def cmd_business_create(args: argparse.Namespace) -> int:
    from app import businesses

    config = _load(args)
    db = _prepare(config)
    password = args.password
    if password is None and args.password_file:
        password = Path(args.password_file).read_text().strip()
    if not password:
        print("error: give --password or --password-file", file=sys.stderr)
        return 2
    try:
        with db.write() as conn:
            business_id = businesses.create_business(
                conn, slug=args.slug, name=args.name,
                timezone=args.timezone or config.i18n.default_timezone,
                language=args.language,
            )
            businesses.add_user(conn, business_id=business_id, email=args.owner, password=password,
                                role="owner", language=args.language)
    except businesses.BusinessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    url = config.public_url
    print(f"business {args.slug!r} created (id {business_id}); owner {args.owner} signs in at "
          f"{url}/{args.language}/login")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from app.ops.backup import BackupError, backup

    config = _load(args)
    try:
        report = backup(config.data_dir, Path(args.dest), include_models=args.include_models)
    except BackupError as e:
        print(f"backup failed: {e}", file=sys.stderr)
        return 1
    dbs = ", ".join(f"{k} {v}" for k, v in report.databases.items())
    print(f"backup written to {report.dest}: {dbs}; {report.files} other files, "
          f"{report.bytes / 1e6:.1f} MB")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from app import audit

    config = _load(args)
    db = _prepare(config)
    result = audit.verify(db.reader())
    if result.ok:
        print(f"audit log OK: {result.checked} entries, chain intact")
        return 0
    print(f"audit log BROKEN at entry {result.first_broken_id}: {result.reason} "
          f"({result.checked} entries before it are intact)")
    return 1


def cmd_retention_run(args: argparse.Namespace) -> int:
    from datetime import datetime

    from app.businesses import closing
    from app.privacy import retention

    config = _load(args)
    db = _prepare(config)
    as_of = None
    if args.as_of:
        try:
            as_of = datetime.fromisoformat(args.as_of)
        except ValueError:
            print("error: --as-of takes an ISO date-time, e.g. 2026-12-31T12:00:00+00:00", file=sys.stderr)
            return 2
        as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    report = retention.sweep(db, config, as_of=as_of)
    closed = closing.finalize_due(db, config, as_of=as_of)  # the hourly task does both too
    print(f"anonymized {len(report.anonymized)} lead(s); deleted the audio of {len(report.audio_deleted)} "
          f"voicemail(s); erased {len(closed)} closed business(es)")
    return 0


def cmd_incident_add(args: argparse.Namespace) -> int:
    from app.privacy import incidents

    config = _load(args)
    db = _prepare(config)
    try:
        incident_id = incidents.add(db, {k: getattr(args, k) for k in incidents.FIELDS})
    except incidents.IncidentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"incident {incident_id} recorded")
    return 0


def cmd_incident_list(args: argparse.Namespace) -> int:
    from app.privacy import incidents

    config = _load(args)
    db = _prepare(config)
    for row in incidents.all(db):
        serious = "SERIOUS" if row["serious_injury_risk"] else "not serious"
        print(f"#{row['id']} recorded {row['recorded_at']} · occurred {row['occurred']} · {serious} · "
              f"{row['persons_concerned']} person(s) · {row['circumstances'][:60]}")
    # The key is typed into the page (or sent as a header), never put in the address:
    # proxies, access logs and browser history keep addresses.
    print(f"read-only page: {config.public_url}/fr/operator/incidents (enter the operator key there)")
    print(f"operator key: {config.secret('operator')}")
    return 0


def cmd_incident_export(args: argparse.Namespace) -> int:
    from app.privacy import incidents

    config = _load(args)
    sys.stdout.write(incidents.csv_export(_prepare(config)))
    return 0


def cmd_policy_publish(args: argparse.Namespace) -> int:
    from datetime import date

    from app.privacy import versions

    config = _load(args)
    db = _prepare(config)
    try:
        effective = date.fromisoformat(args.effective)
    except ValueError:
        print(f"error: --effective {args.effective!r}: expected a date, YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        version = versions.publish(db, config, args.file_fr, args.file_en, effective, args.summary_fr or "",
                                   args.summary_en or "", force=args.force)
    except versions.VersionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"policy version {version} published; in effect from {effective.isoformat()}")
    print(f"changes: {config.public_url}/fr/privacy/changes/{version}")
    return 0


def cmd_policy_list(args: argparse.Namespace) -> int:
    from app import clock
    from app.privacy import versions

    config = _load(args)
    db = _prepare(config)
    current = versions.current_version(db, config, clock.now())
    print(f"in effect: {current}")
    for row in versions.all_versions(db):
        mark = "*" if row["version"] == current else " "
        print(f"{mark} {row['version']}  effective {row['effective_at']}  published {row['published_at']}  "
              f"{row['summary_en'][:60]}")
    return 0


def cmd_businesses(args: argparse.Namespace) -> int:
    from app.ops import operator

    config = _load(args)
    db = _prepare(config)
    header = ("id", "slug", "state", "trial end", "closed", "last activity")
    rows = [(str(r["id"]), r["slug"], r["billing_state"] or "-", (r["trial_ends_at"] or "-")[:10],
             (r["closed_at"] or "-")[:10], r["last_activity_at"] or "-") for r in operator.overview(db)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    from app.voicemail import models

    config = _load(args)
    config.ensure_dirs()
    print(f"downloading from {config.models.hub_url} into {config.models_dir}", file=sys.stderr)
    try:
        got = models.pull(config, whisper=not args.llm_only, llm=not args.speech_only)
    except (models.PullError, OSError) as e:
        print(f"models pull failed: {e}", file=sys.stderr)
        return 1
    print(f"{len(got)} file(s) in place under {config.models_dir}")
    return 0


def cmd_models_serve(args: argparse.Namespace) -> int:
    from app.voicemail import service

    return service.serve(_load(args), args.host, args.port)


def cmd_extract(args: argparse.Namespace) -> int:
    """One JSON object per input line, with the same keys as the dev data's `expected`."""
    import json

    from app.voicemail.engine import ModelEngine

    config = _load(args)
    engine = ModelEngine(config)
    with open(args.file, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                print(f"line {number}: not JSON", file=sys.stderr)
                return 2
            result = engine.extract(item.get("transcript") or "", item.get("caller_id"),
                                    {"name": item.get("business", "")}, "fr")
            out = {k: result.get(k) for k in ("first_name", "last_name", "phone", "email", "postal_code",
                                               "street_address", "need", "urgent", "language")}
            if "id" in item:
                out = {"id": item["id"], **out}
            print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from app.ops import replication

    config = _load(args)
    to = Path(args.to).resolve()
    try:
        report = replication.restore(config, to, args.timestamp)
    except replication.ReplicationError as e:
        print(f"restore failed: {e}", file=sys.stderr)
        return 1
    at = f" as it was at {args.timestamp}" if args.timestamp else " at its newest state"
    if not report.ok:
        print(f"the replica's copy{at} ({report.bytes / 1e6:.1f} MB) did not pass its check; nothing was put in "
              f"{to} (try --timestamp with an earlier moment)")
        print("integrity check: FAILED: " + "; ".join(report.integrity[:10]))
        return 1
    print(f"restored {report.path}{at}: {report.bytes / 1e6:.1f} MB in {report.seconds:.1f} s")
    print("integrity check: ok")
    if to != config.data_dir:
        print(f"next, with the service stopped: remove capteo.db-wal, capteo.db-shm and .capteo.db-litestream/ "
              f"from the data directory ({config.data_dir}) and move this capteo.db there")
    print("only capteo.db is replicated: audio files, secrets/ and queue.db come from the last `run.py backup` copy")
    return 0


def _check_replication(config: config_mod.Config) -> int:
    """The replication's state in plain words; 1 when configured but unreachable or far behind."""
    from app.ops import replication

    if not replication.enabled(config):
        print("replication: off ([replication] replica_url is empty): a lost box loses what changed since "
              "the last `run.py backup`")
        return 0
    where = replication.safe_url(replication.replica_url(config))
    if not config.db_path.exists():
        try:
            found = replication.replica_files(config)
        except replication.ReplicationError as e:
            print(f"replication to {where}: UNREACHABLE — {e}")
            return 1
        print(f"replication to {where}: the replica answers ({len(found)} file(s)); capteo.db will be created "
              "and copied at start-up")
        return 0
    reading = replication.lag(config)
    assert reading is not None
    limit = replication.lag_limit(config)
    if reading.seconds is None:
        print(f"replication to {where}: UNKNOWN — {reading.problem}")
        return 1
    behind = f"{reading.seconds:.0f} s behind ({reading.transactions} transaction(s) not on the replica yet)"
    if reading.seconds > limit:
        print(f"replication to {where}: LAGGING — {behind}; more than {limit:.0f} s: is the service running, "
              "does the replica accept writes?")
        return 1
    state = "in sync" if reading.seconds == 0 else behind
    newest = reading.replica_at.isoformat() if reading.replica_at else "-"
    print(f"replication to {where}: {state} (replica at transaction {reading.replica_txid}, newest file {newest})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from app import i18n, migrations
    from app.voicemail import models

    config = _load(args)  # raises ConfigError on any bad value
    problems = 0
    print(f"configuration: {config.path} OK")
    print(f"data directory: {config.data_dir}")
    try:
        config.ensure_dirs()
        probe = config.data_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        print(f"  MISSING: the data directory is not writable ({e.strerror})")
        problems += 1
    try:
        i18n.check_catalogs()
        print("translations: compiled")
    except i18n.CatalogMissing as e:
        print(f"  MISSING: {e}")
        problems += 1
    if config.db_path.exists():
        pending = migrations.pending(config.db_path)
        print(f"database: {config.db_path} ({len(pending)} migrations pending; applied at start-up)")
    else:
        print(f"database: {config.db_path} will be created at start-up")
    import jobs

    if problem := jobs.check_queue(config):
        print(f"queue: UNREACHABLE: {problem}")
        problems += 1
    elif config.queue.backend == "redis":
        print(f"queue: Redis at {jobs.redis_address(config)}"
              + ("" if config.queue.models_in_process else "; the models' work runs in `run.py worker --models`"))
    if config.models.service_url:  # the models run on the GPU box: its answer is what matters here
        from app.voicemail import service

        answer = models.health(config, wait=True)
        said = ", ".join(f"{kind} {'usable' if v['usable'] else v['code']}" for kind, v in answer.items())
        reached = all(v["code"] not in ("service_down", "service_refused", "service_error") for v in answer.values())
        print(f"models service: {service.safe_url(config.models.service_url)} "
              + (f"answers ({said})" if reached else f"NOT USABLE: {answer['whisper']['problem']}"))
        if not service.private_or_tls(config.models.service_url):
            print("  WARNING: [models] service_url is plain http:// to a public address: audio, transcripts and "
                  "the token would cross the network in clear; use https:// (a TLS proxy) or a private network")
    else:
        print(f"GPU: {'yes' if models.has_gpu() else 'no (models run on the CPU)'}")
    # Each model loaded as the worker loads it (never from the Hub): a file on disk is not enough.
    for kind, info in models.health(config, wait=True).items():
        label = "speech" if kind == "whisper" else "language"
        if info["usable"]:
            print(f"model {kind}: {info['name']} usable ({info['path']})")
            continue
        state = "MISSING" if info["code"] == "missing" else "UNUSABLE"
        print(f"model {kind}: {info['name']} {state} ({info['path']})")
        print(f"  {state}: {info['problem']} — {info['fix']}")
        if kind == "whisper":
            print(f"  until then voicemails wait for their transcript (the {label} model is needed)")
        else:
            print(f"  until then voicemails are read by the rules alone (no {label} model)")
        problems += 1
    # Outside services are optional: say what each one's absence means.
    from app.messaging.twilio import TwilioClient

    print("twilio: " + ("configured" if TwilioClient.from_config(config) else
                        "not configured (account_sid, from_number or messaging_service_sid, and "
                        "CAPTEO_SECRET_TWILIO_AUTH_TOKEN): SMS stay in the outbox, shown as not sent"))
    print("geocoder.ca: " + ("with auth token" if config.provider_secret("geocoder_auth") else
                             "no auth token (CAPTEO_SECRET_GEOCODER_AUTH): throttled, lookups retried later"))
    if warning := _proxy_warning(config):
        print(f"  WARNING: {warning}")
    problems += _check_replication(config)
    if config.integrations.allow_private_targets:
        print("  WARNING: [integrations] allow_private_targets is on: webhooks may reach this server's own "
              "network (private and loopback addresses, plain http); keep it off unless the CRM is on-premise")
    print(f"{problems} thing(s) missing or unusable" if problems else "nothing missing")
    return 1 if problems else 0


def cmd_systemd_unit(args: argparse.Namespace) -> int:
    config = _load(args)
    python = ROOT / ".venv" / "bin" / "python"
    timeout = int(config.queue.shutdown_timeout) + 15
    if config.replication.replica_url:
        from app.ops.replication import SHUTDOWN_SYNC_SECONDS

        timeout += 2 * SHUTDOWN_SYNC_SECONDS + 5  # Litestream stops last, pushing the last writes
    print(f"""# /etc/systemd/system/capteo.service — generated by `run.py systemd-unit`
[Unit]
Description=Capteo (web app and background worker)
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={os.environ.get('SUDO_USER') or os.environ.get('USER') or 'capteo'}
WorkingDirectory={ROOT}
ExecStart={python} {ROOT / 'run.py'} --config {config.path}
Restart=on-failure
RestartSec=3
# SIGTERM lets requests and running tasks finish; past this, systemd kills.
KillSignal=SIGTERM
# SIGTERM to run.py only: it stops Litestream itself, after the last writes.
KillMode=mixed
TimeoutStopSec={timeout}
Environment=PYTHONUNBUFFERED=1
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={config.data_dir}

[Install]
WantedBy=multi-user.target""")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="Capteo")
    parser.add_argument("--config", help="configuration file (default: capteo.toml or $CAPTEO_CONFIG)")
    parser.add_argument("--no-worker", action="store_true", help="serve without the in-process worker")
    parser.set_defaults(func=cmd_serve)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the app (the default)").set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    worker = sub.add_parser("worker", help="run the queue workers alone (both, or --models / --quick)")
    only = worker.add_mutually_exclusive_group()
    only.add_argument("--models", action="store_true", help="only the models' worker (one thread, one GPU)")
    only.add_argument("--quick", action="store_true", help="only the quick work and the periodic sweeps")
    worker.set_defaults(func=cmd_worker)

    business = sub.add_parser("business", help="manage businesses").add_subparsers(dest="action", required=True)
    create = business.add_parser("create", help="create a business and its owner")
    create.add_argument("--slug", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--owner", required=True, help="owner's email")
    create.add_argument("--password", help="owner's password (or --password-file)")
    create.add_argument("--password-file")
    create.add_argument("--timezone")
    create.add_argument("--language", choices=["fr", "en"], default="fr")
    create.set_defaults(func=cmd_business_create)

    user = sub.add_parser("user", help="manage accounts").add_subparsers(dest="action", required=True)
    reset = user.add_parser("password", help="give an account a new one-time password (shown once)")
    reset.add_argument("email")
    reset.set_defaults(func=cmd_user_password)

    bk = sub.add_parser("backup", help="consistent copy of the data directory")
    bk.add_argument("dest")
    bk.add_argument("--include-models", action="store_true")
    bk.set_defaults(func=cmd_backup)

    audit = sub.add_parser("audit", help="audit log").add_subparsers(dest="action", required=True)
    audit.add_parser("verify", help="check the hash chain").set_defaults(func=cmd_audit_verify)

    retention = sub.add_parser("retention", help="Law 25 retention").add_subparsers(dest="action", required=True)
    sweep = retention.add_parser("run", help="anonymize and delete what is due now (or as of --as-of)")
    sweep.add_argument("--as-of", help="run as if it were this ISO date-time (checks, tests)")
    sweep.set_defaults(func=cmd_retention_run)

    incident = sub.add_parser("incident", help="the privacy incident register").add_subparsers(
        dest="action", required=True)
    add = incident.add_parser("add", help="record an incident (every field is required)")
    add.add_argument("--business", help="slug of the business concerned, if one")
    add.add_argument("--information-involved", required=True, dest="information_involved",
                     help="the personal information involved, or why it is not known")
    add.add_argument("--circumstances", required=True)
    add.add_argument("--occurred", required=True, help="date or period of the incident")
    add.add_argument("--learned-on", required=True, dest="learned_on", help="date the business learned of it")
    add.add_argument("--persons-concerned", required=True, dest="persons_concerned",
                     help="number of persons concerned (or an estimate, and why)")
    add.add_argument("--risk-assessment", required=True, dest="risk_assessment",
                     help="assessment of the risk of serious injury")
    add.add_argument("--serious", choices=["yes", "no"], required=True, dest="serious_injury_risk")
    add.add_argument("--commission-notified-on", dest="commission_notified_on")
    add.add_argument("--persons-notified-on", dest="persons_notified_on")
    add.add_argument("--measures", required=True, help="measures taken")
    add.set_defaults(func=cmd_incident_add)
    incident.add_parser("list", help="list the register").set_defaults(func=cmd_incident_list)
    incident.add_parser("export", help="the register as CSV on stdout").set_defaults(func=cmd_incident_export)

    policy = sub.add_parser("policy", help="privacy policy versions").add_subparsers(dest="action", required=True)
    publish = policy.add_parser("publish", help="publish a new policy version, in effect from --effective")
    publish.add_argument("file_fr", help="the new policy in French (Markdown)")
    publish.add_argument("file_en", help="the new policy in English (Markdown)")
    publish.add_argument("--effective", required=True, help="YYYY-MM-DD, at least 30 days ahead")
    publish.add_argument("--summary-fr", dest="summary_fr", help="what changes, in French")
    publish.add_argument("--summary-en", dest="summary_en", help="what changes, in English")
    publish.add_argument("--force", action="store_true", help="allow an effective date less than 30 days ahead")
    publish.set_defaults(func=cmd_policy_publish)
    policy.add_parser("list", help="the published versions").set_defaults(func=cmd_policy_list)

    sub.add_parser("businesses", help="every business: plan state, trial end, last activity").set_defaults(
        func=cmd_businesses)

    models = sub.add_parser("models", help="speech and language models").add_subparsers(dest="action", required=True)
    pull = models.add_parser("pull", help="download the configured models into <data dir>/models/")
    pull.add_argument("--speech-only", action="store_true")
    pull.add_argument("--llm-only", action="store_true")
    pull.set_defaults(func=cmd_models_pull)
    serve_models = sub.add_parser("models-serve", help="serve this box's models to the web boxes "
                                  "([models] service_url there)")
    serve_models.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve_models.add_argument("--port", type=int, default=8100, help="port (default 8100)")
    serve_models.set_defaults(func=cmd_models_serve)
    extract = sub.add_parser("extract", help="run the voicemail extraction on a JSONL file of transcripts")
    extract.add_argument("file", help="lines holding `transcript` and `caller_id`")
    extract.set_defaults(func=cmd_extract)

    sub.add_parser("check", help="validate configuration, list what is missing").set_defaults(func=cmd_check)
    restore = sub.add_parser("restore", help="capteo.db from the Litestream replica into DIR, then checked")
    restore.add_argument("--to", required=True, help="directory to restore into (its capteo.db must not exist)")
    restore.add_argument("--timestamp", help="as it was at this ISO date-time (default: the newest state)")
    restore.set_defaults(func=cmd_restore)
    sub.add_parser("systemd-unit", help="print a systemd unit file").set_defaults(func=cmd_systemd_unit)
    return parser


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Huey says "Executing ..." and "... executed in" for every task (four lines for each form
    # post, 5-8% of the server's CPU under load): its warnings and errors are what matter.
    logging.getLogger("huey").setLevel(logging.WARNING)
    # httpx logs every request's URL with its query string at INFO: a lead's postal code and the
    # geocoder's token, VoIP.ms's API password. Its warnings and errors are enough.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except config_mod.ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
