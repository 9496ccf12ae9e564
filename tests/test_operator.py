"""The operator's view of the businesses: behind a key in a header, no personal data."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from app import businesses, leads
from app import config as config_mod
from app.web import create_app
from tests.support.app import write_config
from tests.test_cli import run

KEY = "operator-key-for-tests-0123456789"


@pytest.fixture
def keyed(config, db, monkeypatch):
    with db.write() as conn:
        bid = businesses.create_business(conn, slug="gagnon", name="Plomberie Gagnon", timezone="America/Toronto")
        businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password="x" * 12)
        leads.create(conn, business_id=bid, channel="web", actor="t", first_name="Alice",
                     email="alice@example.com", phone="+15145550101", need="fuite")
    monkeypatch.setenv("CAPTEO_SECRET_OPERATOR", KEY)
    with TestClient(create_app(config, run_worker=False), base_url="http://127.0.0.1") as c:
        yield c


def test_operator_page_is_404_without_the_right_key(keyed):
    assert keyed.get("/operator/businesses").status_code == 404
    assert keyed.get("/operator/businesses", headers={"x-operator-key": "wrong"}).status_code == 404
    assert keyed.get("/operator/businesses", headers={"x-operator-key": KEY[:-1]}).status_code == 404


def test_operator_page_with_the_key_lists_businesses_without_personal_data(keyed):
    r = keyed.get("/operator/businesses", headers={"x-operator-key": KEY})
    assert r.status_code == 200 and "gagnon" in r.text and "Plomberie Gagnon" in r.text
    assert r.headers["cache-control"] == "no-store"
    for personal in ("alice@example.com", "Alice", "owner@gagnon.ca", "5145550101"):
        assert personal not in r.text
    data = keyed.get("/operator/businesses", headers={"x-operator-key": KEY, "accept": "application/json"}).json()
    row = data["businesses"][0]
    assert row["slug"] == "gagnon" and row["last_lead_at"] and row["last_activity_at"]
    assert "alice" not in str(data).lower() and "owner@" not in str(data)


def test_the_key_is_the_operator_key_of_the_incident_register(client, config, monkeypatch):
    """One operator key for every operator page: generated into the data directory when not given."""
    monkeypatch.delenv("CAPTEO_SECRET_OPERATOR", raising=False)
    assert client.get("/operator/businesses", headers={"x-operator-key": ""}).status_code == 404
    assert client.get("/operator/businesses", headers={"x-operator-key": "anything"}).status_code == 404
    assert client.get("/operator/businesses", headers={"x-operator-key": config.secret("operator")}).status_code == 200


def test_page_is_linked_from_nowhere(client):
    assert "/operator/businesses" not in client.get("/fr/").text


def test_cli_businesses(tmp_path):
    cfg = write_config(tmp_path)
    made = run(cfg, "business", "create", "--slug", "plomberie-gagnon", "--name", "Plomberie Gagnon",
               "--owner", "helene@gagnon.test", "--password", "un mot de passe solide")
    assert made.returncode == 0, made.stderr
    out = run(cfg, "businesses")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["id", "slug", "state", "trial", "end", "closed", "last", "activity"]
    assert any("plomberie-gagnon" in line for line in lines[1:])
    assert "helene@gagnon.test" not in out.stdout
    assert config_mod.load(cfg, env={}).data_dir.exists()
