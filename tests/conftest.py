"""Shared fixtures: a real data directory per test, its capteo.db a copy of one built
by the real migrations once per session; the app in-process (TestClient) or as a real
server process; Debian's Chromium. Helpers the test modules share are in tests/support/."""

from __future__ import annotations

import shutil
from pathlib import Path

import argon2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app import businesses, migrations
from app import config as config_mod
from app.db import Database
from tests.support.app import ServerProcess, write_config
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS


def pytest_sessionstart(session):
    # Passwords hashed in this process take argon2's cheapest profile: a real hash, not
    # 64 MiB and three passes each. Server processes the tests start keep the real one.
    businesses.use_password_profile(argon2.profiles.CHEAPEST)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """A capteo.db built once by the real migrations; tests get copies of it."""
    path = tmp_path_factory.mktemp("migrated") / "capteo.db"
    migrations.apply(path)
    # apply() closed its connections: the WAL is checkpointed into the file and gone,
    # so the file alone is the whole database.
    assert not path.with_name("capteo.db-wal").exists()
    return path


@pytest.fixture
def empty_config(tmp_path: Path) -> config_mod.Config:
    """A data directory with no database yet (for tests of the migrations themselves)."""
    cfg = config_mod.load(write_config(tmp_path), env={})
    cfg.ensure_dirs()
    return cfg


@pytest.fixture
def config(empty_config: config_mod.Config, migrated_db: Path) -> config_mod.Config:
    shutil.copyfile(migrated_db, empty_config.db_path)
    return empty_config


@pytest.fixture
def db(config: config_mod.Config) -> Database:
    database = Database(config.db_path)
    yield database
    database.close()


@pytest.fixture
def client(config: config_mod.Config):
    from litestar.testing import TestClient

    from app.web import create_app

    with TestClient(create_app(config, run_worker=False), base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture
def server(tmp_path: Path):
    srv = ServerProcess(tmp_path)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def tiny() -> Path:
    """The tiny random speech and language models (built once, cached in tests/.model-cache)."""
    from tests.support.tiny_models import tiny_models_dir

    return tiny_models_dir()


@pytest.fixture(scope="module")
def recording(request, tmp_path_factory) -> bytes:
    """A French voicemail saying the test module's SAID, in the system's speech synthesizer's voice."""
    from tests.support.audio import speak

    return speak(request.module.SAID, "fr", tmp_path_factory.mktemp("rec") / "fr.wav").read_bytes()


@pytest.fixture(scope="session")
def keys() -> list[rsa.RSAPrivateKey]:
    """Cloudflare Access signing keys (tests/support/cloudflare.py serves and uses them)."""
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run `make test` (it installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    yield pg
    context.close()
