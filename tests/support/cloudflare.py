"""A Cloudflare Access team for tests: its JWKS served by a real local HTTP server,
and tokens signed with RSA keys generated in the test session (the `keys` fixture)."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

TEAM = "acme.cloudflareaccess.com"
ISSUER = f"https://{TEAM}"
AUD = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2"
CERTS_PATH = "/cdn-cgi/access/certs"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict:
    numbers = key.public_key().public_numbers()
    as_bytes = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")  # noqa: E731
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64url(as_bytes(numbers.n)), "e": b64url(as_bytes(numbers.e))}


class JwksServer:
    def __init__(self):
        self.jwks: dict = {"keys": []}
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != CERTS_PATH:
                    self.send_error(404)
                    return
                server.requests += 1
                body = json.dumps(server.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{CERTS_PATH}"
        # A short poll interval so shutdown() does not cost half a second per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def claims(**overrides) -> dict:
    now = int(time.time())
    c = {"aud": [AUD], "email": "Ana.Lima@Example.com", "exp": now + 300, "iat": now,
         "nbf": now, "iss": ISSUER, "sub": "7335d417-61da-459d-899c-0a01c76a2f94",
         "type": "app", "identity_nonce": "6ei69kawdKzMIAPF"}
    c.update(overrides)
    return {k: v for k, v in c.items() if v is not None}


def token(key: rsa.RSAPrivateKey, kid: str = "k0", **overrides) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})
