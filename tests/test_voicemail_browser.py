"""An owner tries voicemail from the dashboard, in Debian's Chromium, with the tiny models."""

from __future__ import annotations

import re

import pytest

from app import config as config_mod
from tests.support.app import ServerProcess
from tests.support.audio import speak
from tests.support.browser import screenshot, sign_in_demo
from tests.support.tiny_models import FAST, install_models, tiny_models_dir

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_upload_watch_progress_open_the_lead(tmp_path, page):
    srv = ServerProcess(tmp_path, extra_env=FAST)
    cfg = config_mod.load(srv.config_path, env={})
    cfg.ensure_dirs()
    install_models(cfg, tiny_models_dir())
    srv.start()
    try:
        wav = speak("Bonjour, c'est Hélène Côté, rappelez-moi au 514 555 0101.", "fr", tmp_path / "m.wav")
        sign_in_demo(page, srv.url, tmp_path / "data")
        page.get_by_role("link", name="Messagerie vocale").click()
        page.locator("input[type=file]").set_input_files(str(wav))
        screenshot(page, "voicemail-upload-fr")
        page.get_by_role("button", name="Envoyer l'enregistrement").click()
        page.wait_for_url(re.compile(r".*/fr/app/voicemail/\d+$"))
        page.get_by_role("link", name="Ouvrir la demande").wait_for()  # the lead exists at once (issue 12)
        page.locator("#vm-progress:not([hx-trigger])").wait_for(timeout=60_000)  # filled in: polling stopped
        screenshot(page, "voicemail-progress-fr")
        page.get_by_role("link", name="Ouvrir la demande").click()
        page.get_by_text("Extrait par l'IA — à vérifier").wait_for()
        assert page.locator("audio").count() == 1
        screenshot(page, "voicemail-lead-fr")
        page.get_by_role("button", name="J'ai vérifié : confirmer").click()
        page.wait_for_load_state()
        assert page.get_by_text("Extrait par l'IA — à vérifier").count() == 0
    finally:
        srv.stop()
