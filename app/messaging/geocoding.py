"""Postal code -> latitude/longitude through geocoder.ca, every answer cached.

A lead with a postal code is marked `geocode_status = 'pending'` when it is
stored; `geocode_lead()` settles it. A failure (network, throttling, 5xx) leaves
the lead pending with a later `geocode_next_at`, and the periodic sweep tries
again; a postal code geocoder.ca does not know is cached as not found.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app import clock
from app.config import Config
from app.db import Database
from app.messaging import client

# geocoder.ca error codes that mean "this postal code has no answer", not "try later".
NOT_FOUND_CODES = {"005", "008"}
MAX_ATTEMPTS = 12


class GeocoderUnavailable(Exception):
    """Try again later."""


@dataclass
class GeocoderClient:
    api_base: str = "https://geocoder.ca"
    auth: str | None = None

    @classmethod
    def from_config(cls, config: Config) -> GeocoderClient:
        return cls(api_base=config.geocoder.api_base.rstrip("/"),
                   auth=config.provider_secret("geocoder_auth"))

    def locate(self, postal_code: str) -> tuple[float, float] | None:
        """(lat, lng), None when the code is unknown; GeocoderUnavailable otherwise."""
        import httpx  # at the first lookup, not with the app (app.messaging.client)

        params = {"locate": postal_code.replace(" ", ""), "json": "1"}
        if self.auth:
            params["auth"] = self.auth
        try:
            response = client.shared().get(self.api_base + "/", params=params)
        except httpx.HTTPError as e:
            raise GeocoderUnavailable(str(e) or type(e).__name__) from e
        if response.status_code != 200:
            raise GeocoderUnavailable(f"HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise GeocoderUnavailable("answer is not JSON") from None
        if "error" in payload:
            code = str(payload["error"].get("code", ""))
            if code in NOT_FOUND_CODES:
                return None
            raise GeocoderUnavailable(f"error {code}: {payload['error'].get('description', '')}")
        try:
            lat, lng = float(payload["latt"]), float(payload["longt"])
        except (KeyError, TypeError, ValueError):
            raise GeocoderUnavailable("answer has no coordinates") from None
        return lat, lng


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(minutes=min(5 * 2 ** max(attempts - 1, 0), 24 * 60))


def is_pending(db: Database, lead_id: int) -> bool:
    """The lead's address changed (or it just arrived) and its coordinates are still to find."""
    return db.query_one("SELECT 1 AS x FROM leads WHERE id = ? AND geocode_status = 'pending'", (lead_id,)) is not None


def waiting_count(db: Database, business_id: int) -> int:
    """How many of this business's leads are still waiting for their coordinates (the map
    says so rather than look empty)."""
    return db.one(
        "SELECT count(*) AS n FROM leads WHERE business_id = ? AND geocode_status = 'pending'"
        " AND status != 'anonymized'", (business_id,))["n"]


def pending(db: Database, now: datetime | None = None, limit: int = 100) -> list[int]:
    now = now or clock.now()
    return [r["id"] for r in db.query(
        "SELECT id FROM leads WHERE geocode_status = 'pending' AND geocode_next_at <= ? ORDER BY id LIMIT ?",
        (now.isoformat(timespec="seconds"), limit),
    )]


def geocode_lead(db: Database, client: GeocoderClient, lead_id: int, now: datetime | None = None) -> str:
    """Settle one lead's coordinates; returns its geocode_status afterwards."""
    now = now or clock.now()
    lead = db.query_one("SELECT postal_code, geocode_status, geocode_attempts FROM leads WHERE id = ?", (lead_id,))
    if lead is None or lead["geocode_status"] != "pending":
        return lead["geocode_status"] if lead else "missing"
    code = lead["postal_code"]
    cached = db.query_one("SELECT * FROM geocode_cache WHERE postal_code = ?", (code,))
    if cached is None:
        try:
            found = client.locate(code)
        except GeocoderUnavailable:
            attempts = lead["geocode_attempts"] + 1
            status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
            with db.write() as conn:
                conn.execute(
                    "UPDATE leads SET geocode_attempts = ?, geocode_status = ?, geocode_next_at = ? "
                    "WHERE id = ? AND geocode_status = 'pending'",
                    (attempts, status, (now + _retry_delay(attempts)).isoformat(timespec="seconds"), lead_id),
                )
            return status
        cached = {"latitude": found[0] if found else None, "longitude": found[1] if found else None,
                  "found": int(bool(found))}
        with db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO geocode_cache (postal_code, latitude, longitude, found, fetched_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (code, cached["latitude"], cached["longitude"], cached["found"], now.isoformat(timespec="seconds")),
            )
    status = "done" if cached["found"] else "failed"
    with db.write() as conn:
        # The postal code may have been corrected meanwhile: only settle the code we looked up.
        conn.execute(
            "UPDATE leads SET latitude = ?, longitude = ?, geocode_status = ?, geocode_next_at = NULL "
            "WHERE id = ? AND postal_code = ? AND geocode_status = 'pending'",
            (cached["latitude"], cached["longitude"], status, lead_id, code),
        )
    return status
