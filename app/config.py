"""Typed reader of `capteo.toml`, with `CAPTEO_<SECTION>_<KEY>` environment overrides.

Every key is declared once in `SCHEMA` (type, default, check); the shipped
`capteo.toml` documents each of them and a test keeps the two in step. A bad
value stops start-up with a `ConfigError` that names the key and where the
value came from.
"""

from __future__ import annotations

import os
import secrets as _secrets
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "capteo.toml"


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names the key."""


def _port(v: int) -> str | None:
    return None if 1 <= v <= 65535 else "must be between 1 and 65535"


def _positive(v: int | float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _timezone(v: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return "is not a known time zone (e.g. America/Toronto)"
    return None


def _http_url(v: str) -> str | None:
    if v == "":
        return None
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an absolute http:// or https:// URL"
    return None


def _language(v: str) -> str | None:
    return None if v in ("fr", "en") else "must be 'fr' or 'en'"


@dataclass(frozen=True)
class Key:
    type: type
    default: Any
    check: Callable[[Any], str | None] | None = None


SCHEMA: dict[str, dict[str, Key]] = {
    "server": {
        "host": Key(str, "127.0.0.1"),
        "port": Key(int, 8000, _port),
        "public_url": Key(str, "", _http_url),
        "trust_proxy_header": Key(str, ""),
    },
    "data": {
        "dir": Key(str, "data"),
    },
    "queue": {
        "workers": Key(int, 2, _positive),
        "shutdown_timeout": Key(float, 20.0, _positive),
    },
    "i18n": {
        "default_language": Key(str, "fr", _language),
        "default_timezone": Key(str, "America/Toronto", _timezone),
    },
    "models": {
        "whisper": Key(str, "auto"),
        "whisper_compute_type": Key(str, "auto"),
        "whisper_beam_size": Key(int, 5, _positive),
        "whisper_temperature_fallback": Key(bool, True),
        "llm_file": Key(str, "qwen2.5-3b-instruct-q4_k_m.gguf"),
        "llm_repo": Key(str, "Qwen/Qwen2.5-3B-Instruct-GGUF"),
        "hub_url": Key(str, "https://huggingface.co", _http_url),
    },
    "voicemail": {
        "max_seconds": Key(int, 300, _positive),
        "max_bytes": Key(int, 25_000_000, _positive),
        "max_attempts": Key(int, 5, _positive),
    },
    "voipms": {
        "api_url": Key(str, "https://voip.ms/api/v1/rest.php", _http_url),
        "username": Key(str, ""),
    },
    "auth": {
        "mode": Key(str, "builtin", lambda v: None if v in ("builtin", "cloudflare") else "must be 'builtin' or 'cloudflare'"),
        "cloudflare_team_domain": Key(str, ""),
        "cloudflare_audience": Key(str, ""),
        "cloudflare_certs_url": Key(str, ""),
        "login_attempts": Key(int, 5, _positive),
        "login_window": Key(int, 900, _positive),
    },
    "map": {
        "tile_url": Key(str, "https://tile.openstreetmap.org/{z}/{x}/{y}.png", _http_url),
        "attribution": Key(str, "© OpenStreetMap contributors"),
    },
    "forms": {
        "rate_limit": Key(int, 5, _positive),
        "rate_window": Key(int, 3600, _positive),
        "token_max_age": Key(int, 86400, _positive),
    },
    "twilio": {
        "account_sid": Key(str, ""),
        "api_key_sid": Key(str, ""),
        "from_number": Key(str, ""),
        "messaging_service_sid": Key(str, ""),
        "api_base": Key(str, "https://api.twilio.com", _http_url),
    },
    "geocoder": {
        "api_base": Key(str, "https://geocoder.ca", _http_url),
    },
    "retention": {
        "anonymize_archived_after_days": Key(int, 30, _positive),
        "delete_audio_after_days": Key(int, 30, _positive),
    },
    "privacy": {
        "contact": Key(str, ""),
    },
    "demo": {
        "create": Key(bool, True),
    },
}


def _parse_env(raw: str, typ: type) -> Any:
    if typ is bool:
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError
    return typ(raw.strip()) if typ is not str else raw


def _coerce(value: Any, typ: type) -> Any:
    # TOML gives real types; accept an int where a float is wanted, never a bool for an int.
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is int and isinstance(value, bool):
        raise ValueError
    if not isinstance(value, typ):
        raise ValueError
    return value


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


@dataclass
class Config:
    """The validated configuration; `get(section, key)` or the typed shortcuts."""

    path: Path
    values: dict[str, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    @property
    def data_dir(self) -> Path:
        p = Path(self.get("data", "dir"))
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    @property
    def db_path(self) -> Path:
        return self.data_dir / "capteo.db"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def public_url(self) -> str:
        """Base of absolute links, without a trailing slash."""
        url = self.get("server", "public_url") or f"http://{self.get('server', 'host')}:{self.get('server', 'port')}"
        return url.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.audio_dir, self.models_dir, self.data_dir / "secrets"):
            d.mkdir(parents=True, exist_ok=True)

    def provider_secret(self, name: str) -> str | None:
        """A credential someone else issued (never generated): `CAPTEO_SECRET_<NAME>` or
        the file named by `CAPTEO_SECRET_<NAME>_FILE`; None when not configured."""
        env = f"CAPTEO_SECRET_{name.upper()}"
        if os.environ.get(env):
            return os.environ[env]
        if os.environ.get(env + "_FILE"):
            return self._read_secret_file(env)
        return None

    def _read_secret_file(self, env: str) -> str:
        try:
            value = Path(os.environ[env + "_FILE"]).read_text().strip()
        except OSError as e:
            raise ConfigError(f"{env}_FILE: cannot read {os.environ[env + '_FILE']}: {e.strerror}")
        if not value:
            raise ConfigError(f"{env}_FILE: {os.environ[env + '_FILE']} is empty")
        return value

    def secret(self, name: str, nbytes: int = 32) -> str:
        """A secret from `CAPTEO_SECRET_<NAME>`, `CAPTEO_SECRET_<NAME>_FILE`, or
        generated once into `data/secrets/<name>` (mode 0600) and reused after."""
        provided = self.provider_secret(name)
        if provided:
            return provided
        path = self.data_dir / "secrets" / name
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = _secrets.token_urlsafe(nbytes)
        # O_EXCL: two processes starting at once must not write two different secrets.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value


def load(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the configuration file (default: `CAPTEO_CONFIG` or ./capteo.toml), apply
    environment overrides and check every value. Raises ConfigError."""
    env = os.environ if env is None else env
    path = Path(path or env.get("CAPTEO_CONFIG") or DEFAULT_CONFIG).resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}")
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: not valid TOML: {e}")

    values: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for section, table in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"{path.name}: unknown section [{section}]")
        if not isinstance(table, dict):
            raise ConfigError(f"{path.name}: [{section}] must be a table")
        for key in table:
            if key not in SCHEMA[section]:
                raise ConfigError(f"{path.name}: unknown key [{section}] {key}")

    for section, keys in SCHEMA.items():
        values[section] = {}
        for key, spec in keys.items():
            env_name = f"CAPTEO_{section.upper()}_{key.upper()}"
            where = f"{path.name} [{section}] {key}"
            if env_name in env:
                where = f"{env_name} (environment)"
                try:
                    value = _parse_env(env[env_name], spec.type)
                except ValueError:
                    raise ConfigError(
                        f"{where}: expected {_TYPE_WORDS[spec.type]}, got {env[env_name]!r}"
                    )
            elif key in raw.get(section, {}):
                try:
                    value = _coerce(raw[section][key], spec.type)
                except ValueError:
                    raise ConfigError(
                        f"{where}: expected {_TYPE_WORDS[spec.type]}, got {raw[section][key]!r}"
                    )
            else:
                value = spec.default
                where = "default"
            if spec.check and (problem := spec.check(value)):
                raise ConfigError(f"[{section}] {key} = {value!r} ({where}): {problem}")
            values[section][key] = value
            sources[f"{section}.{key}"] = where
    if values["auth"]["mode"] == "cloudflare":
        for key in ("cloudflare_team_domain", "cloudflare_audience"):
            if not values["auth"][key]:
                raise ConfigError(f"[auth] {key} is required when [auth] mode = 'cloudflare'")
    return Config(path=path, values=values, sources=sources)
