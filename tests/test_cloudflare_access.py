"""Cloudflare Access token verification against a real local JWKS server.

The keys are RSA keys generated for the session (the `keys` fixture); the server
(tests/support/cloudflare.py) is http.server on 127.0.0.1, serving whatever JWKS the
test sets and counting the requests it gets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time

import pytest
from cryptography.hazmat.primitives import serialization

from app.businesses import cloudflare_access
from app.businesses.cloudflare_access import AccessDenied, AccessVerifier
from tests.support.cloudflare import AUD, CERTS_PATH, ISSUER, TEAM, JwksServer, b64url, claims, jwk, token


@pytest.fixture
def server(keys):
    s = JwksServer()
    s.jwks = {"keys": [jwk(keys[0], "k0")]}
    yield s
    s.close()


@pytest.fixture
def verifier(server) -> AccessVerifier:
    return AccessVerifier(TEAM, AUD, certs_url=server.url)


def denied(verifier: AccessVerifier, tok: str | None) -> str:
    with pytest.raises(AccessDenied) as e:
        verifier.email_for(tok)
    return str(e.value)


def test_good_token_gives_lower_cased_email(verifier, keys):
    assert verifier.email_for(token(keys[0])) == "ana.lima@example.com"


def test_issuer_and_team_domain_forms():
    for domain in (TEAM, ISSUER, ISSUER + "/"):
        assert AccessVerifier(domain, AUD).issuer == ISSUER


def test_expired_token_refused_past_the_leeway(verifier, keys):
    now = int(time.time())
    assert "expired" in denied(verifier, token(keys[0], exp=now - 60))
    # A few seconds of clock skew is tolerated.
    assert verifier.email_for(token(keys[0], exp=now - 5))


def test_token_without_exp_refused(verifier, keys):
    assert "exp" in denied(verifier, token(keys[0], exp=None))


def test_wrong_audience(verifier, keys):
    assert "audience" in denied(verifier, token(keys[0], aud=["another-app-aud-tag"]))


def test_wrong_issuer(verifier, keys):
    assert "issuer" in denied(verifier, token(keys[0], iss="https://evil.cloudflareaccess.com"))


def test_signed_by_key_not_in_jwks_with_a_served_kid(verifier, keys):
    assert "signature" in denied(verifier, token(keys[1], kid="k0"))


@pytest.mark.parametrize("tok", [None, ""])
def test_missing_token(verifier, tok):
    assert "missing" in denied(verifier, tok)


@pytest.mark.parametrize("tok", ["garbage", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30."])
def test_garbage_token(verifier, tok):
    denied(verifier, tok)


def test_no_email_claim(verifier, keys):
    # What a service token looks like: signed and valid, but naming no user.
    assert "email" in denied(verifier, token(keys[0], email=None, common_name="ci.access"))


def test_hs256_token_signed_with_the_public_key_refused(verifier, keys):
    # The classic algorithm-confusion forgery: the public key used as an HMAC secret.
    # Built by hand because PyJWT itself refuses to sign it.
    secret = keys[0].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k0"}).encode())
    payload = b64url(json.dumps(claims()).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert "alg" in denied(verifier, f"{header}.{payload}.{b64url(signature)}")


def test_unknown_kid_refused(verifier, keys):
    assert "signing key" in denied(verifier, token(keys[1], kid="nobody"))


def test_keys_are_cached(verifier, server, keys):
    assert verifier.email_for(token(keys[0])) == "ana.lima@example.com"
    assert verifier.email_for(token(keys[0], email="bo@example.com")) == "bo@example.com"
    assert server.requests == 1


def test_unknown_kids_do_not_hammer_the_jwks_server(verifier, server, keys):
    verifier.email_for(token(keys[0]))
    for i in range(5):
        denied(verifier, token(keys[1], kid=f"forged-{i}"))
    assert server.requests == 1


def test_key_rotation_picked_up_by_the_same_verifier(server, keys, monkeypatch):
    # Lift the unknown-kid cooldown so the rotation need not wait 30 s.
    monkeypatch.setattr(cloudflare_access, "UNKNOWN_KID_COOLDOWN_S", 0)
    verifier = AccessVerifier(TEAM, AUD, certs_url=server.url)
    assert verifier.email_for(token(keys[0]))
    server.jwks = {"keys": [jwk(keys[0], "k0"), jwk(keys[2], "k2")]}
    assert verifier.email_for(token(keys[2], kid="k2", email="new@example.com")) == "new@example.com"
    assert server.requests == 2
    # The old key still works until Cloudflare drops it from the set.
    assert verifier.email_for(token(keys[0]))
    assert server.requests == 2


def test_jwks_server_down_refuses(keys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on `port` now: the connection is refused.
    verifier = AccessVerifier(TEAM, AUD, certs_url=f"http://127.0.0.1:{port}{CERTS_PATH}")
    assert "signing key" in denied(verifier, token(keys[0]))


def test_jwks_server_error_refuses(keys, server):
    verifier = AccessVerifier(TEAM, AUD, certs_url=server.url.replace(CERTS_PATH, "/missing"))
    assert "signing key" in denied(verifier, token(keys[0]))
