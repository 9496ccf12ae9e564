import re
from pathlib import Path

import pytest

from app import config as config_mod
from app.config import SCHEMA, ConfigError
from tests.support.app import write_config

SHIPPED = Path(__file__).resolve().parent.parent / "capteo.toml"


def test_shipped_file_loads_with_defaults():
    cfg = config_mod.load(SHIPPED, env={})
    assert cfg.server.port == 8000
    assert cfg.i18n.default_language == "fr"
    assert cfg.data_dir == SHIPPED.parent / "data"


def test_every_key_is_documented_in_the_shipped_file():
    """Like Datasette's settings test: a key added to SCHEMA without a comment above it
    in capteo.toml fails here."""
    lines = SHIPPED.read_text().splitlines()
    section = None
    documented: set[str] = set()
    for i, line in enumerate(lines):
        if m := re.match(r"^\[(\w+)\]$", line):
            section = m.group(1)
        elif m := re.match(r"^(\w+)\s*=", line):
            assert lines[i - 1].startswith("#"), f"[{section}] {m.group(1)} has no comment above it"
            documented.add(f"{section}.{m.group(1)}")
    declared = {f"{s}.{k}" for s, keys in SCHEMA.items() for k in keys}
    assert declared == documented


def test_environment_overrides_every_type(tmp_path):
    path = write_config(tmp_path)
    cfg = config_mod.load(path, env={
        "CAPTEO_SERVER_PORT": "9123",
        "CAPTEO_DATA_DIR": str(tmp_path / "elsewhere"),
        "CAPTEO_DEMO_CREATE": "yes",
        "CAPTEO_QUEUE_SHUTDOWN_TIMEOUT": "2.5",
    })
    assert cfg.server.port == 9123
    assert cfg.data_dir == tmp_path / "elsewhere"
    assert cfg.demo.create is True
    assert cfg.queue.shutdown_timeout == 2.5
    assert cfg.sources["server.port"] == "CAPTEO_SERVER_PORT (environment)"


@pytest.mark.parametrize("env, toml, message", [
    ({"CAPTEO_SERVER_PORT": "eighty"}, {}, "CAPTEO_SERVER_PORT (environment): expected an integer, got 'eighty'"),
    ({"CAPTEO_SERVER_PORT": "70000"}, {}, "[server] port = 70000 (CAPTEO_SERVER_PORT (environment)): must be between 1 and 65535"),
    ({}, {"server": {"port": "8000"}}, "[server] port: expected an integer, got '8000'"),
    ({}, {"i18n": {"default_timezone": "Mars/Olympus"}}, "[i18n] default_timezone = 'Mars/Olympus'"),
    ({}, {"i18n": {"default_language": "de"}}, "must be 'fr' or 'en'"),
    ({}, {"server": {"public_url": "ftp://x"}}, "[server] public_url"),
    ({}, {"queue": {"workers": 0}}, "[queue] workers = 0"),
    ({"CAPTEO_DEMO_CREATE": "maybe"}, {}, "CAPTEO_DEMO_CREATE (environment): expected true or false"),
])
def test_bad_values_name_the_key(tmp_path, env, toml, message):
    path = write_config(tmp_path, **toml)
    with pytest.raises(ConfigError) as e:
        config_mod.load(path, env=env)
    assert message in str(e.value)


def test_unknown_key_and_section_are_refused(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[server]\nprot = 80\n")
    with pytest.raises(ConfigError, match=r"unknown key \[server\] prot"):
        config_mod.load(path, env={})
    path.write_text("[sevrer]\nport = 80\n")
    with pytest.raises(ConfigError, match=r"unknown section \[sevrer\]"):
        config_mod.load(path, env={})


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config_mod.load(tmp_path / "none.toml", env={})
    (tmp_path / "bad.toml").write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config_mod.load(tmp_path / "bad.toml", env={})


def test_secrets_from_env_file_or_generated_once(tmp_path, monkeypatch):
    cfg = config_mod.load(write_config(tmp_path), env={})
    generated = cfg.secret("csrf")
    assert len(generated) >= 40
    assert cfg.secret("csrf") == generated  # kept, not regenerated
    stored = cfg.data_dir / "secrets" / "csrf"
    assert stored.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("CAPTEO_SECRET_CSRF", "from-env")
    assert cfg.secret("csrf") == "from-env"
    monkeypatch.delenv("CAPTEO_SECRET_CSRF")
    (tmp_path / "s").write_text("from-file\n")
    monkeypatch.setenv("CAPTEO_SECRET_CSRF_FILE", str(tmp_path / "s"))
    assert cfg.secret("csrf") == "from-file"
    monkeypatch.setenv("CAPTEO_SECRET_CSRF_FILE", str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="CAPTEO_SECRET_CSRF_FILE: cannot read"):
        cfg.secret("csrf")


def test_public_url_defaults_to_host_and_port(tmp_path):
    cfg = config_mod.load(write_config(tmp_path, server={"port": 8123}), env={})
    assert cfg.public_url == "http://127.0.0.1:8123"
    assert not cfg.secure_cookies
    cfg = config_mod.load(write_config(tmp_path, server={"public_url": "https://capteo.example/"}), env={})
    assert cfg.public_url == "https://capteo.example"
    assert cfg.secure_cookies
