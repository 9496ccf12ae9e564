"""Sign-up (/{lang}/signup) and the first-run checklist's "done" buttons.

The sign-up form has the public form's protections: CSRF (the app's middleware), a honeypot
field, a limit per address (the public form's counter, its own key), and the password rule
of the account page. In Cloudflare Access mode the email Access verified is the account:
no email or password field is shown. `[signup] open = false`: a page saying sign-up is
closed (404), the operator invites instead (`run.py business create`).
"""

from __future__ import annotations

from litestar import Request, get, post
from litestar.datastructures import Cookie
from litestar.params import FromQuery
from litestar.response import Redirect, Template

from app import http, i18n
from app.businesses import auth, signup
from app.businesses.ratelimit import client_ip
from app.config import Config
from app.form import HONEYPOT_FIELD
from app.http import DB, Conf, Form, RateLimits, SignedIn, lang
from app.i18n import N_


def _access_email(request: Request) -> str | None:
    """Cloudflare Access mode: the verified email (None: no valid token)."""
    from app.businesses.cloudflare_access import HEADER, AccessDenied

    try:
        return request.app.state.access_verifier.email_for(request.headers.get(HEADER))
    except AccessDenied:
        return None


def _page(config: Config, *, values: dict | None = None, errors: dict | None = None, error: str | None = None,
          access_email: str | None = None, status_code: int = 200) -> Template:
    values = {"timezone": signup.TIMEZONE_DEFAULT, "language": lang(), **(values or {})}
    values.pop("password", None)
    values.pop("password_again", None)
    return Template("businesses/signup.html", status_code=status_code, context={
        "closed": False, "values": values, "errors": {k: i18n.gettext(v) for k, v in (errors or {}).items()},
        "error": error, "access_email": access_email, "cloudflare": config.auth.mode == "cloudflare",
        "timezones": signup.timezones(), "honeypot": HONEYPOT_FIELD, "public_url": config.public_url,
        "trial_days": config.signup.trial_days})


def _closed() -> Template:
    return Template("businesses/signup.html", status_code=404, context={"closed": True})


def _refused() -> Template:
    """Cloudflare Access mode without a valid Access token: as on the dashboard, a 401."""
    return Template("error.html", context={"status": 401}, status_code=401)


@get("/signup", name="signup", sync_to_thread=True)
def signup_page(request: Request, config: Conf) -> Template | Redirect:
    if not config.signup.open:
        return _closed()
    if http.find_session(request) is not None:
        return Redirect(f"/{lang()}/app/leads", status_code=303)
    access_email = None
    if config.auth.mode == "cloudflare":
        access_email = _access_email(request)
        if access_email is None:
            return _refused()
    return _page(config, access_email=access_email)


@post("/signup", name="signup_submit", sync_to_thread=True, status_code=200)
def signup_submit(request: Request, db: DB, config: Conf, limits: RateLimits, data: Form) -> Template | Redirect:
    if not config.signup.open:
        return _closed()
    access_email = None
    if config.auth.mode == "cloudflare":
        access_email = _access_email(request)
        if access_email is None:
            return _refused()
    # Taken before the work (concurrent posts cannot pass together), given back for a typo.
    slot = limits.forms.take("signup", client_ip(request))
    if slot is None:
        return _page(config, values=data, access_email=access_email, status_code=429, error=i18n.gettext(
            N_("Too many sign-ups from your connection. Wait an hour and try again.")))
    if (data.get(HONEYPOT_FIELD) or "").strip():
        # A robot fills every field; a person never sees this one. Nothing is stored.
        return _page(config, values=data, access_email=access_email, status_code=400, error=i18n.gettext(
            N_("Your sign-up could not be accepted. Check your answers and send it again.")))
    try:
        created = signup.create(db, config, data, email=access_email)
    except signup.SignupInvalid as e:
        slot.give_back()
        return _page(config, values=data, errors=e.errors, access_email=access_email,
                     status_code=409 if _taken(e.errors) else 422,
                     error=i18n.gettext(N_("Some answers need your attention.")))
    response = Redirect(f"/{lang()}/app/leads", status_code=303)
    if access_email is None:
        # Signed in at once: a new token, as at every sign-in.
        token = auth.start_session(db, user_id=created.user_id, business_id=created.business_id)
        response.set_cookie(Cookie(key=auth.COOKIE, value=token, path="/", httponly=True, samesite="lax",
                                   secure=config.secure_cookies, max_age=int(auth.LIFETIME.total_seconds())))
    return response


def _taken(errors: dict) -> bool:
    return any(v in (N_("This address is already taken."), N_("An account already uses this email. Sign in instead."))
               for v in errors.values())


@get("/signup/slug", name="signup_slug", sync_to_thread=True)
def signup_slug(db: DB, config: Conf, slug: FromQuery[str] = "") -> Template:
    """The form's live check of an address (htmx): available, taken or reserved. Addresses are
    public (they are the forms' URLs), so this tells nothing secret."""
    if not config.signup.open:
        return _closed()
    return Template("businesses/_signup_slug.html", headers=http.VARY_HTMX, context={
        "slug": slug.strip().lower()[:80], "available": signup.slug_available(db, slug[:80])})


@post("/app/settings/checklist", name="checklist_mark", sync_to_thread=True, status_code=303, guards=[http.owner])
def checklist_mark(session: SignedIn, db: DB, data: Form) -> Redirect | Template:
    """An item of the first-run checklist marked done, or the whole list dismissed."""
    if not signup.mark(db, session["business_id"], data.get("item", ""), actor=f"user:{session['user_id']}"):
        return Template("error.html", context={"status": 422}, status_code=422)
    return Redirect(f"/{lang()}/app/leads#first-run", status_code=303)


routes: http.Routes = [
    http.localized(signup_page, signup_submit, signup_slug),
    http.dashboard(checklist_mark),
]
