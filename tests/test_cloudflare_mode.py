"""The dashboard in Cloudflare Access mode: the signed header is the sign-in."""

from __future__ import annotations

import time

import pytest
from litestar.testing import TestClient

from app import businesses, leads
from app import config as config_mod
from app.web import create_app
from tests.support.app import write_config
from tests.support.cloudflare import AUD, TEAM, JwksServer, jwk, token


@pytest.fixture
def cf_client(tmp_path, keys, db):
    jwks = JwksServer()
    jwks.jwks = {"keys": [jwk(keys[0], "k0")]}
    with db.write() as conn:
        bid = businesses.create_business(conn, slug="a", name="A", timezone="America/Toronto")
        businesses.add_user(conn, business_id=bid, email="ana.lima@example.com", password="x" * 12)
        leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Alice", need="x")
    path = write_config(tmp_path, auth={"mode": "cloudflare", "cloudflare_team_domain": TEAM,
                                        "cloudflare_audience": AUD, "cloudflare_certs_url": jwks.url})
    with TestClient(create_app(config_mod.load(path, env={}), run_worker=False), base_url="http://127.0.0.1") as c:
        yield c
    jwks.close()


def _inbox(client, tok):
    headers = {"Cf-Access-Jwt-Assertion": tok} if tok else {}
    return client.get("/fr/app/leads", headers=headers, follow_redirects=False)


def test_good_token_opens_the_dashboard(cf_client, keys):
    r = _inbox(cf_client, token(keys[0]))
    assert r.status_code == 200 and "Alice" in r.text


@pytest.mark.parametrize("case", ["missing", "expired", "audience", "signature", "issuer", "unknown user"])
def test_bad_tokens_are_refused(cf_client, keys, case):
    tok = {
        "missing": None,
        "expired": token(keys[0], exp=int(time.time()) - 120),
        "audience": token(keys[0], aud=["another-app"]),
        "signature": token(keys[1], kid="k0"),
        "issuer": token(keys[0], iss="https://evil.cloudflareaccess.com"),
        "unknown user": token(keys[0], email="nobody@example.com"),
    }[case]
    r = _inbox(cf_client, tok)
    assert r.status_code == 401 and "Connexion requise" in r.text and "Alice" not in r.text


def test_cloudflare_mode_needs_team_and_audience(tmp_path):
    with pytest.raises(config_mod.ConfigError, match="cloudflare_team_domain is required"):
        config_mod.load(write_config(tmp_path, auth={"mode": "cloudflare"}), env={})
