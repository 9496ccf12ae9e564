"""Billing routes: the owner's billing page (Paddle.js checkout, on this page only), the
"manage billing" customer-portal session, and Paddle's webhook `POST /webhooks/paddle`."""

from __future__ import annotations

import logging

from anyio import to_thread
from litestar import Request, Response, get, post
from litestar.response import Redirect, Template

from app import billing, clock, http
from app.billing import paddle
from app.http import DB, Conf, SignedIn, lang

log = logging.getLogger("capteo.billing")

PADDLE_JS = "https://cdn.paddle.com/paddle/v2/paddle.js"


def paddle_csp(environment: str) -> str:
    """The default policy, opened for Paddle.js and its checkout frame (this page only)."""
    buy = "https://sandbox-buy.paddle.com" if environment == "sandbox" else "https://buy.paddle.com"
    service = ("https://sandbox-checkout-service.paddle.com" if environment == "sandbox"
               else "https://checkout-service.paddle.com")
    return (http.DEFAULT_CSP
            .replace("script-src 'self'", "script-src 'self' https://cdn.paddle.com")
            .replace("style-src 'self'", "style-src 'self' https://cdn.paddle.com")
            .replace("img-src 'self' data:", "img-src 'self' data: https://cdn.paddle.com")
            .replace("connect-src 'self'", f"connect-src 'self' https://cdn.paddle.com {service}")
            .replace("object-src 'none'", f"frame-src {buy}; object-src 'none'"))


def _page(db: DB, config: Conf, session: dict, *, error: str | None = None, status_code: int = 200) -> Template:
    settings = billing.settings(config)
    business = billing.state_for(db, session["business_id"])
    now = clock.now()
    context = {
        "session": session, "business": business, "configured": settings is not None, "error": error,
        "read_only": billing.dashboard_read_only(config, business, now),
        "doors_open": billing.public_doors_open(config, business, now),
        "checkout": None,
    }
    headers: dict[str, str] = {}
    if settings is not None and settings.client_token and business["billing_state"] not in ("active",):
        context["checkout"] = {"token": settings.client_token, "price": settings.price_id,
                               "environment": settings.environment, "business_id": str(business["id"]),
                               "email": session["email"], "script": PADDLE_JS}
        headers["content-security-policy"] = paddle_csp(settings.environment)
    return Template("billing/page.html", context=context, status_code=status_code, headers=headers)


@get("/app/billing", name="billing", sync_to_thread=True, guards=[http.owner])
def billing_page(session: SignedIn, db: DB, config: Conf) -> Template:
    return _page(db, config, session)


@post("/app/billing/portal", name="billing_portal", sync_to_thread=True, status_code=303, guards=[http.owner])
def billing_portal(session: SignedIn, db: DB, config: Conf) -> Template | Redirect:
    """'Manage billing': a Paddle customer-portal session, and off to it."""
    settings = billing.settings(config)
    if settings is None:
        return Redirect(f"/{lang()}/app/billing", status_code=303)
    business = billing.state_for(db, session["business_id"])
    if not business["paddle_customer_id"]:
        return _page(db, config, session, error="no_customer", status_code=409)
    client = paddle.PaddleClient(settings.api_base, settings.api_key)
    subscriptions = [business["paddle_subscription_id"]] if business["paddle_subscription_id"] else []
    try:
        url = client.portal_session(business["paddle_customer_id"], subscriptions)
    except paddle.PaddleError as e:
        log.warning("Paddle portal session for business %s: %s", business["id"], e)
        return _page(db, config, session, error="paddle", status_code=502)
    return Redirect(url, status_code=303)


# ---- Paddle's webhook ---------------------------------------------------------------------------

def _answer(status_code: int, outcome: str) -> Response:
    return Response({"outcome": outcome}, status_code=status_code)


@post("/webhooks/paddle", name="paddle_webhook", status_code=200, opt={"exclude_from_csrf": True})
async def paddle_webhook(request: Request, db: DB, config: Conf) -> Response:
    """Signed by Paddle (no cookie, no CSRF token): 200 once handled, a duplicate or ignored;
    400 for a bad signature, a stale timestamp or a body that is no event. An unexpected
    failure answers 409 (never 5xx): Paddle retries, and the event id makes the retry safe."""
    settings = billing.settings(config)
    if settings is None:
        return _answer(404, "billing not configured")
    raw = await request.body()
    try:
        paddle.verify(request.headers.get("paddle-signature"), raw, settings.webhook_secrets, now=clock.now(),
                      tolerance_seconds=settings.tolerance_seconds)
    except paddle.SignatureError as e:
        log.warning("Paddle webhook refused: %s", e)
        return _answer(400, "bad signature")
    try:
        event = billing.parse_event(raw)
    except billing.BadEvent as e:
        return _answer(400, str(e))
    try:
        outcome = await to_thread.run_sync(lambda: billing.handle_event(db, config, event))
    except Exception:
        log.exception("Paddle event %s could not be handled; Paddle will retry", event.event_id)
        return _answer(409, "retry")
    return _answer(200, outcome)


routes: http.Routes = [http.dashboard(billing_page, billing_portal), paddle_webhook]
