"""Debian's Chromium through Playwright: how it is launched, screenshots kept as
artifacts, and signing in as the demo owner through the real sign-in page."""

from __future__ import annotations

from pathlib import Path

from tests.support.app import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


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
