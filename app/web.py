"""Assemble the Litestar application from each area's routes.

`create_app(config)` builds everything from the configuration; `run.py` serves it
with uvicorn. On start-up it migrates the database, creates the demo business
when the data directory is new, binds the queue to `queue.db` and (unless told
not to) starts the Huey consumer on worker threads inside this process.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

import jobs
from app import audit, businesses, http, http_limits, i18n, migrations
from app.appointments import pages as appointment_pages
from app.billing import pages as billing_pages
from app.businesses import closing_pages, signup_pages
from app.businesses import pages as business_pages
from app.businesses.ratelimit import Limits
from app.chat import pages as chat_pages
from app.clients import pages as client_pages
from app.config import ROOT, Config
from app.db import Database
from app.form import pages as form_pages
from app.integrations import pages as integration_pages
from app.leads import pages as lead_pages
from app.ops import demo, metrics, operator_pages
from app.ops import pages as ops_pages
from app.privacy import pages as privacy_pages
from app.privacy import versions_pages as policy_version_pages
from app.templating import make_environment
from app.voicemail import pages as voicemail_pages

# Seconds after start-up before the sign-in's dummy hash is made (a sign-in before makes it).
WARM_UP_DELAY = 2.0


def create_app(config: Config, *, run_worker: bool = True) -> Litestar:
    config.ensure_dirs()
    i18n.check_catalogs()
    db = Database(config.db_path)
    demo.prepare(config)  # a first start's demo password is hashed while the app is built

    async def on_startup(app: Litestar) -> None:
        # The sign-in's dummy hash, once the first pages are out rather than in their way.
        businesses.warm_up(delay=WARM_UP_DELAY)
        migrations.apply(config.db_path)
        config.secret("audit")  # made on first start; entries are signed with it from then on
        audit.start(db.reader())
        demo.ensure(db, config)
        jobs.configure(config, db)
        if run_worker:
            app.state.worker = jobs.InProcessWorker(config)
            app.state.worker.start()
            # Catch up at once on work a crash left behind (the periodic sweeps would
            # only find it at the next minute): tasks are wake-ups, capteo.db is the truth.
            jobs.catch_up()

    async def on_shutdown(app: Litestar) -> None:
        worker = app.state.get("worker")
        if worker is not None:
            worker.stop()
        db.close()

    csrf = CSRFConfig(
        secret=config.secret("csrf"),
        cookie_name="capteo_csrf",
        header_name="x-csrftoken",
        cookie_secure=config.secure_cookies,
        cookie_samesite="lax",
        # The token reaches pages through the template (form field, hx-headers): no script reads the cookie.
        cookie_httponly=True,
        # Machine endpoints authenticate otherwise (tokens, signatures), never by cookie.
        # The public form works inside other sites' iframes, where cookies are not sent:
        # its signed one-time token (form.check_token) is its CSRF protection. The chat's start
        # form has the same token, and every later post the conversation's secret session token.
        exclude=["/healthz", "/metrics", "/api/", r"^/(fr|en)/f/", r"^/(fr|en)/c/"],
    )
    app = Litestar(
        route_handlers=[
            *ops_pages.routes,
            *business_pages.routes,
            *signup_pages.routes,
            *closing_pages.routes,
            *lead_pages.routes,
            *appointment_pages.routes,
            *form_pages.routes,
            *chat_pages.routes,
            *client_pages.routes,
            *privacy_pages.routes,
            *voicemail_pages.routes,
            *integration_pages.routes,
            *billing_pages.routes,
            *policy_version_pages.routes,
            *operator_pages.routes,
            *metrics.routes,
            create_static_files_router(path="/static", directories=[ROOT / "static"], name="static"),
        ],
        template_config=TemplateConfig(engine=JinjaTemplateEngine.from_environment(make_environment())),
        dependencies=http.DEPENDENCIES,
        csrf_config=csrf,
        before_send=[http.before_send],
        before_request=http.refuse_control_characters,
        exception_handlers=http.EXCEPTION_HANDLERS,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        openapi_config=None,
        # Small bodies everywhere; the two voicemail uploads get theirs below (size_uploads).
        request_max_body_size=config.server.max_body_bytes,
        multipart_form_part_limit=http_limits.MAX_FORM_FIELDS,
        debug=False,
    )
    # The multipart envelope of an upload is well under 1 MB.
    http_limits.size_uploads(app, config.voicemail.max_bytes + 1_000_000)
    # Outside every route, so that error pages and unmatched routes are bounded too.
    app.asgi_handler = http_limits.RequestLimits(app.asgi_handler, config)
    # Outermost: every answer is timed, the limits' own 408s and 413s too.
    app.state.metrics = metrics.Metrics(config, db)
    app.asgi_handler = metrics.timed(app.asgi_handler, app.state.metrics)
    app.state.config = config
    app.state.db = db
    app.state.worker = None
    app.state.limits = Limits.from_config(config)
    if config.auth.mode == "cloudflare":
        from app.businesses.cloudflare_access import AccessVerifier

        app.state.access_verifier = AccessVerifier(
            config.auth.cloudflare_team_domain, config.auth.cloudflare_audience,
            config.auth.cloudflare_certs_url or None)
    return app
