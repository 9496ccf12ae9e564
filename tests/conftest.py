"""Shared fixtures: a real data directory per test, built by the real migrations;
the app in-process (TestClient) or as a real server process; Debian's Chromium."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app import config as config_mod
from app import migrations
from app.db import Database

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"


def write_config(directory: Path, **sections: dict) -> Path:
    """A capteo.toml in `directory` whose data dir is `directory/data`."""
    lines = ['[data]', 'dir = "data"', '[demo]', f'create = {str(sections.pop("demo", False)).lower()}']
    for section, values in sections.items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            lines.append(f"{k} = {v!r}" if not isinstance(v, bool) else f"{k} = {str(v).lower()}")
    path = directory / "capteo.toml"
    path.write_text("\n".join(lines).replace("'", '"') + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> config_mod.Config:
    cfg = config_mod.load(write_config(tmp_path), env={})
    cfg.ensure_dirs()
    return cfg


@pytest.fixture
def db(config: config_mod.Config) -> Database:
    migrations.apply(config.db_path)
    database = Database(config.db_path)
    yield database
    database.close()


@pytest.fixture
def client(config: config_mod.Config):
    from litestar.testing import TestClient

    from app.web import create_app

    with TestClient(create_app(config, run_worker=False), base_url="http://127.0.0.1") as c:
        yield c


def csrf_token(client) -> str:
    """Fetch a page so the CSRF cookie is set, and return the token the page carries."""
    page = client.get("/fr/login")
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert match, "login page has no CSRF field"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`python run.py` for real: its own process, port and data directory."""

    def __init__(self, directory: Path, demo: bool = True, extra_env: dict | None = None,
                 script: Path = ROOT / "run.py", queue: dict | None = None, args: tuple = ()):
        self.script = script
        self.args = list(args)
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = write_config(directory, demo=demo, server={"port": self.port},
                                        **({"queue": queue} if queue else {}))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CAPTEO_")}
        self.env.update(extra_env or {})
        self.log = directory / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait for the first 200; returns the seconds it took."""
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), "--config", str(self.config_path), *self.args],
            cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
        )
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/fr/", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not answer within {timeout}s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 40.0) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else 0


@pytest.fixture
def server(tmp_path: Path):
    srv = ServerProcess(tmp_path)
    srv.start()
    yield srv
    srv.stop()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


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


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in_demo(page, url: str, data_dir: Path, lang: str = "fr") -> None:
    """Sign in as the demo owner through the real sign-in page."""
    labels = {"fr": ("Courriel", "Mot de passe", "Se connecter"), "en": ("Email", "Password", "Sign in")}[lang]
    page.goto(f"{url}/{lang}/login")
    page.get_by_label(labels[0]).fill("demo@capteo.test")
    page.get_by_label(labels[1]).fill((data_dir / "secrets" / "demo-password").read_text().strip())
    page.get_by_role("button", name=labels[2]).click()
    page.wait_for_url(f"{url}/{lang}/app/leads")
