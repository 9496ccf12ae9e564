"""The operator's commands, run as the operator runs them."""

import shutil
import subprocess
import sys

from tests.support.app import ROOT, write_config


def run(config_path, *args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(config_path), *args],
                          capture_output=True, text=True, cwd=ROOT, env=env)


def test_migrate_creates_then_is_idempotent(tmp_path):
    cfg = write_config(tmp_path)
    first = run(cfg, "migrate")
    assert first.returncode == 0 and "applied: m001_businesses_and_users" in first.stdout
    assert run(cfg, "migrate").stdout.strip() == "database is up to date"


def test_business_create_and_refusals(tmp_path):
    cfg = write_config(tmp_path)
    ok = run(cfg, "business", "create", "--slug", "plomberie-gagnon", "--name", "Plomberie Gagnon",
             "--owner", "helene@gagnon.test", "--password", "un mot de passe solide")
    assert ok.returncode == 0, ok.stderr
    assert "business 'plomberie-gagnon' created" in ok.stdout and "/fr/login" in ok.stdout
    again = run(cfg, "business", "create", "--slug", "plomberie-gagnon", "--name", "X",
                "--owner", "x@y.test", "--password", "un mot de passe solide")
    assert again.returncode == 2 and "already taken" in again.stderr
    bad = run(cfg, "business", "create", "--slug", "Bad Slug!", "--name", "X", "--owner", "x@y.test",
              "--password", "un mot de passe solide")
    assert bad.returncode == 2 and "lowercase letters" in bad.stderr
    short = run(cfg, "business", "create", "--slug", "ok", "--name", "X", "--owner", "x@y.test",
                "--password", "short")
    assert short.returncode == 2 and "at least 10 characters" in short.stderr
    assert "audit log OK: 2 entries" in run(cfg, "audit", "verify").stdout


def test_bad_configuration_stops_with_the_key_named(tmp_path):
    cfg = write_config(tmp_path)
    import os
    env = {**os.environ, "CAPTEO_SERVER_PORT": "not-a-port"}
    for args in (["check"], ["migrate"], []):
        result = run(cfg, *args, env=env)
        assert result.returncode == 2
        assert "configuration error: CAPTEO_SERVER_PORT (environment): expected an integer" in result.stderr


def test_check_lists_what_is_missing(tmp_path):
    cfg = write_config(tmp_path)
    result = run(cfg, "check")
    assert "configuration:" in result.stdout and "translations: compiled" in result.stdout
    assert "model whisper: small MISSING" in result.stdout
    assert "model llm: qwen2.5-3b-instruct-q4_k_m.gguf MISSING" in result.stdout
    assert "twilio: not configured" in result.stdout and "geocoder.ca: no auth token" in result.stdout
    assert result.returncode == 1
    (tmp_path / "data" / "models" / "whisper-small").mkdir(parents=True)
    (tmp_path / "data" / "models" / "whisper-small" / "model.bin").write_bytes(b"x")
    (tmp_path / "data" / "models" / "qwen2.5-3b-instruct-q4_k_m.gguf").write_bytes(b"GGUF")
    # Files that exist are not enough: each model is loaded, and what is wrong said in plain words.
    result = run(cfg, "check")
    assert result.returncode == 1 and "2 thing(s) missing or unusable" in result.stdout
    assert "model whisper: small UNUSABLE" in result.stdout
    assert "the speech model is incomplete: config.json is missing — run `python run.py models pull` again" \
        in result.stdout
    assert "model llm: qwen2.5-3b-instruct-q4_k_m.gguf UNUSABLE" in result.stdout
    assert "is incomplete or damaged, or not a GGUF model" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    from tests.support.tiny_models import tiny_models_dir

    tiny = tiny_models_dir()
    shutil.copytree(tiny / "whisper", tmp_path / "data" / "models" / "whisper-small", dirs_exist_ok=True)
    shutil.copy(tiny / "tiny.gguf", tmp_path / "data" / "models" / "qwen2.5-3b-instruct-q4_k_m.gguf")
    result = run(cfg, "check")
    assert result.returncode == 0 and "nothing missing" in result.stdout, result.stdout
    assert "model whisper: small usable" in result.stdout


def test_systemd_unit(tmp_path):
    cfg = write_config(tmp_path, queue={"shutdown_timeout": 30})
    unit = run(cfg, "systemd-unit").stdout
    assert f"ExecStart={ROOT}/.venv/bin/python {ROOT}/run.py --config {cfg}" in unit
    assert f"ReadWritePaths={tmp_path / 'data'}" in unit
    assert "KillSignal=SIGTERM" in unit and "TimeoutStopSec=45" in unit
    assert "[Install]" in unit and "WantedBy=multi-user.target" in unit


def test_extract_prints_one_object_per_line_like_the_dev_data(tmp_path):
    import json

    cfg = write_config(tmp_path)
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        json.dumps({"id": "a", "caller_id": "+14385550123",
                    "transcript": "Bonjour c'est Hélène Côté, rappelez-moi au 514 555 0101, j'ai un dégât d'eau."})
        + "\n" + json.dumps({"transcript": "Hi, wrong number, sorry.", "caller_id": None}) + "\n")
    result = run(cfg, "extract", str(lines))
    assert result.returncode == 0, result.stderr
    first, second = [json.loads(line) for line in result.stdout.splitlines()]
    assert first["id"] == "a" and first["phone"] == "+15145550101" and first["first_name"] == "Hélène"
    assert first["last_name"] == "Côté" and first["urgent"] is True and first["language"] == "fr"
    assert set(second) == {"first_name", "last_name", "phone", "email", "postal_code", "street_address", "need",
                           "urgent", "language"}
    assert second["phone"] is None and second["language"] == "en"
