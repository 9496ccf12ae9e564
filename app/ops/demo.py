"""The demo business created on first start, so a newcomer has something to try."""

from __future__ import annotations

import json
import secrets
import threading
from datetime import timedelta
from typing import Any

from app import businesses, clock, leads
from app.config import Config
from app.db import Database
from app.leads import custom_fields

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@capteo.test"

DEMO_HOURS = {d: [["08:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": [["09:00", "12:00"]]}
DEMO_CUSTOM_FIELDS: list[dict[str, Any]] = [
    dict(kind="single_choice", label_fr="Type de propriété", label_en="Type of property", required=True,
         options=[{"value": "house", "fr": "Maison", "en": "House"},
                  {"value": "condo", "fr": "Condo ou appartement", "en": "Condo or apartment"},
                  {"value": "business", "fr": "Commerce", "en": "Business"}]),
    dict(kind="yes_no", label_fr="Y a-t-il de l'eau qui coule en ce moment?",
         label_en="Is water leaking right now?"),
]

# Fictional people; 555-01xx numbers are reserved for fiction in North America.
SAMPLE_LEADS: list[dict[str, Any]] = [
    dict(channel="phone", language="fr", status="new", hours_ago=1, first_name="Hélène",
         last_name="Côté", phone="+15145550101", street_address="4521 rue Saint-Hubert",
         postal_code="H2J 2X7",
         need="Dégât d'eau au sous-sol, tuyau brisé sous l'évier de la salle de lavage"),
    dict(channel="web", language="en", status="new", hours_ago=5, first_name="Marc-André",
         last_name="Lefebvre", phone="+14385550102", email="ma.lefebvre@example.com",
         need="Quote for a level 2 EV charger in the garage, within a few weeks"),
    dict(channel="web", language="fr", status="scheduled", hours_ago=26, first_name="Julie",
         last_name="Tremblay", phone="+14185550105", postal_code="G1R 4P5",
         need="Remplacement du chauffe-eau, rendez-vous jeudi après-midi"),
    dict(channel="phone", language="fr", status="contacted", hours_ago=50, first_name="Éric",
         last_name="Bélanger", phone="+15795550104", street_address="88 rue des Érables",
         need="Fournaise en panne, maison à 15 °C"),
    dict(channel="web", language="en", status="closed", hours_ago=120, first_name="Priya",
         last_name="Nair", phone="+15145550177", email="priya.nair@example.com",
         postal_code="H3Z 2Y7", need="Leaking kitchen faucet, replaced"),
]


# A first start's demo password and its hash being made (`prepare`), by database file.
_prepared: dict[str, tuple[str, threading.Thread, list[str]]] = {}


def prepare(config: Config) -> None:
    """On a first start (no database yet), draw the demo owner's password and start hashing
    it in a thread (argon2 releases the GIL): its few tenths of a second then overlap the
    rest of the start-up (building the app, the migrations) instead of following them.
    `ensure` takes the result; without it, it hashes there."""
    if not config.demo.create or config.db_path.exists() or str(config.db_path) in _prepared:
        return
    password = secrets.token_urlsafe(9)
    made: list[str] = []
    thread = threading.Thread(target=lambda: made.append(businesses.hash_password(password)),
                              name="capteo-demo-hash", daemon=True)
    thread.start()
    _prepared[str(config.db_path)] = (password, thread, made)


def _password(config: Config) -> tuple[str, str]:
    """(the demo owner's password, its hash): the prepared pair, or one made now."""
    prepared = _prepared.pop(str(config.db_path), None)
    if prepared is not None:
        password, thread, made = prepared
        thread.join()
        if made:
            return password, made[0]
    password = secrets.token_urlsafe(9)
    return password, businesses.hash_password(password)


def ensure(db: Database, config: Config) -> str | None:
    """Create the demo business when the database has no business at all.
    Returns the owner's password when it was just created (printed once), else None."""
    if not config.demo.create or businesses.count(db):
        _prepared.pop(str(config.db_path), None)
        return None
    password, password_hash = _password(config)  # before the write lock, not under it
    now = clock.now()
    with db.write() as conn:
        # Re-check inside the write lock: two processes may start together.
        if businesses.any_in(conn):
            return None
        business_id = businesses.create_business(
            conn, slug=DEMO_SLUG, name="Plomberie Démo", timezone=config.i18n.default_timezone,
            actor="system:demo",
        )
        businesses.add_user(conn, business_id=business_id, email=DEMO_EMAIL, password=password,
                            name="Démo", actor="system:demo", password_hash=password_hash)
        businesses.set_contact(conn, business_id, hours=json.dumps(DEMO_HOURS),
                               notify_phones=json.dumps(["+15145550100"]), phone="+15145550100")
        for field in DEMO_CUSTOM_FIELDS:
            custom_fields.add(conn, business_id=business_id, **field)
        for sample in SAMPLE_LEADS:
            sample = dict(sample)
            created = (now - timedelta(hours=sample.pop("hours_ago"))).isoformat(timespec="seconds")
            leads.create(conn, business_id=business_id, actor="system:demo", created_at=created, **sample)
    url = config.public_url
    print(
        f"\nDemo business created. Sign in at {url}/fr/login\n"
        f"  email:    {DEMO_EMAIL}\n  password: {password}\n"
        f"(also kept in {config.data_dir / 'secrets' / 'demo-password'})\n",
        flush=True,
    )
    path = config.data_dir / "secrets" / "demo-password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password
