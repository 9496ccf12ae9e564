"""Cloudflare Access JWTs (header `Cf-Access-Jwt-Assertion`) -> the user's email.

When Capteo sits behind Cloudflare Access, Access signs in the user and adds a
JWT to every request it forwards. The header alone proves nothing (anyone who
reaches the origin can send one), so the token is checked here: RS256 signature
by one of the team's keys (a JWKS at `/cdn-cgi/access/certs`), the application's
AUD tag, the team's issuer, and expiry. Any doubt, including keys that cannot be
fetched, is an `AccessDenied`: we refuse rather than let a request through.
"""

from __future__ import annotations

import jwt

HEADER = "Cf-Access-Jwt-Assertion"
# Clock skew between Cloudflare and this host.
LEEWAY_S = 30
FETCH_TIMEOUT_S = 5
# A token's kid is read before its signature is checked, so anyone can send
# unknown kids; this bounds how often they make us refetch the keys. The price:
# a token signed with a just-rotated key is refused until this many seconds
# have passed since our last fetch.
UNKNOWN_KID_COOLDOWN_S = 30


class AccessDenied(Exception):
    """The request carries no valid Access token; the message says why."""


class AccessVerifier:
    def __init__(self, team_domain: str, audience: str, certs_url: str | None = None):
        self.team_domain = team_domain.strip().removeprefix("https://").rstrip("/")
        self.audience = audience
        # PyJWKClient caches the key set (5 minutes) and refetches it when a
        # token names a kid it does not hold: that is how key rotation reaches us.
        self._keys = jwt.PyJWKClient(
            certs_url or f"{self.issuer}/cdn-cgi/access/certs",
            timeout=FETCH_TIMEOUT_S,
            cooldown_duration=UNKNOWN_KID_COOLDOWN_S,
        )

    @property
    def issuer(self) -> str:
        return f"https://{self.team_domain}"

    def email_for(self, token: str | None) -> str:
        if not token:
            raise AccessDenied("missing token")
        try:
            key = self._keys.get_signing_key_from_jwt(token)
        except jwt.DecodeError as e:
            raise AccessDenied(f"malformed token: {e}") from e
        except (jwt.PyJWTError, ValueError, OSError) as e:
            # Keys unreachable, a bad key set, or a kid Cloudflare never issued.
            raise AccessDenied(f"no signing key: {e}") from e
        try:
            claims = jwt.decode(
                token,
                key.key,
                # Only RS256: an HS256 token "signed" with our public key must fail.
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise AccessDenied("token expired") from e
        except jwt.InvalidAudienceError as e:
            raise AccessDenied(f"wrong audience: {e}") from e
        except jwt.InvalidIssuerError as e:
            raise AccessDenied(f"wrong issuer: {e}") from e
        except jwt.InvalidSignatureError as e:
            raise AccessDenied("bad signature") from e
        except jwt.PyJWTError as e:
            raise AccessDenied(f"invalid token: {e}") from e
        email = claims.get("email")
        # Service tokens carry no email; they name no user, so they get no access.
        if not isinstance(email, str) or not email:
            raise AccessDenied("no email claim")
        return email.lower()
