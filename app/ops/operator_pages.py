"""The operator's read-only list of businesses, `GET /operator/businesses`.

Answers only a request carrying `X-Operator-Key` equal to the operator key — the same one
the incident register's operator pages take (`config.secret("operator")`:
`CAPTEO_SECRET_OPERATOR`, or generated into <data dir>/secrets/operator) — compared in
constant time; otherwise a plain 404: the page does not announce itself. Linked from
nowhere; `run.py businesses` prints the same."""

from __future__ import annotations

import hmac

from litestar import Request, Response, get
from litestar.response import Template

from app import http, i18n
from app.http import DB, Conf
from app.ops import operator

NO_STORE = {"cache-control": "no-store", "x-robots-tag": "noindex"}


def key_ok(config: Conf, given: str) -> bool:
    expected = config.secret("operator")
    if not expected or not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


@get("/operator/businesses", name="operator_businesses", sync_to_thread=True)
def businesses_page(request: Request, db: DB, config: Conf) -> Response | Template:
    i18n.current_language.set(i18n.best_language(request.headers.get("accept-language"),
                                                 config.i18n.default_language))
    if not key_ok(config, request.headers.get("x-operator-key", "")):
        return Template("error.html", context={"status": 404}, status_code=404)
    rows = operator.overview(db)
    if "application/json" in request.headers.get("accept", ""):
        return Response({"businesses": rows}, headers=NO_STORE)
    return Template("ops/operator_businesses.html", context={"rows": rows}, headers=NO_STORE)


routes: http.Routes = [businesses_page]
