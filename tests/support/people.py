"""Businesses and the people who work in them, made through the app's own functions,
and a signed-in test client."""

from __future__ import annotations

import json

from app import businesses
from app.businesses import auth
from app.leads import custom_fields
from tests.support.app import csrf_token


def make_business(db, slug, name, **settings):
    """A business with an SMS recipient, and (unless `custom=False`) two custom form
    fields; returns its id and `{"property": id, "rooms": id}` for those fields."""
    with db.write() as conn:
        bid = businesses.create_business(conn, slug=slug, name=name, timezone="America/Toronto")
        conn.execute("UPDATE businesses SET notify_phones = ?, embed_domains = ?, language = ? WHERE id = ?",
                     (json.dumps(settings.get("notify", ["+15145550100"])),
                      json.dumps(settings.get("embed", [])), settings.get("language", "fr"), bid))
        ids = {}
        if settings.get("custom", True):
            ids["property"] = custom_fields.add(
                conn, business_id=bid, kind="single_choice", label_fr="Type de propriété",
                label_en="Type of property", required=True,
                options=[{"value": "house", "fr": "Maison", "en": "House"},
                         {"value": "condo", "fr": "Condo", "en": "Condo"}])
            ids["rooms"] = custom_fields.add(conn, business_id=bid, kind="number", label_fr="Nombre de pièces",
                                             label_en="Number of rooms")
    return bid, ids


def signed_in(client, db, user_id, business_id):
    """Sign `client` in as this user of this business; returns the CSRF token for its posts."""
    token = csrf_token(client)
    client.cookies.set("capteo_session", auth.start_session(db, user_id=user_id, business_id=business_id))
    return token


PBX_TOKEN = "pbx-secret-token"


def phone_shop(db):
    """A business whose phone system posts voicemail with PBX_TOKEN, and its owner: (id, owner id)."""
    bid, _ = make_business(db, "gagnon", "Plomberie Gagnon", custom=False)
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password="x" * 12)
        conn.execute("UPDATE businesses SET pbx_token_hash = ? WHERE id = ?", (businesses.token_hash(PBX_TOKEN), bid))
    return bid, owner
