"""Typed reader of `capteo.toml`, with `CAPTEO_<SECTION>_<KEY>` environment overrides.

Every key is declared once, as a field of its section's frozen dataclass (type,
default, check); `SCHEMA` is read off them. The shipped
`capteo.toml` documents each of them and a test keeps the two in step. A bad
value stops start-up with a `ConfigError` that names the key and where the
value came from.
"""

from __future__ import annotations

import functools
import os
import re
import secrets as _secrets
import tomllib
import typing
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
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


def _service_url(v: str) -> str | None:
    """Empty, or where the models service answers: http(s)://host[:port][/path]. No user or
    password (the token is a secret, CAPTEO_SECRET_MODELS_SERVICE), no query or fragment."""
    if problem := _http_url(v):
        return problem
    parts = urlsplit(v)
    if v and (parts.username is not None or parts.password is not None or parts.query or parts.fragment):
        return ("must be http(s)://host:port, without a user, password, query or fragment "
                "(the token goes in CAPTEO_SECRET_MODELS_SERVICE)")
    return None


def _language(v: str) -> str | None:
    return None if v in ("fr", "en") else "must be 'fr' or 'en'"


def _auth_mode(v: str) -> str | None:
    return None if v in ("builtin", "cloudflare") else "must be 'builtin' or 'cloudflare'"


def _llm_fields(v: str) -> str | None:
    from app.extraction.grounding import MODEL_FIELDS

    for item in filter(None, (part.strip() for part in v.split(","))):
        name, _, how = item.partition(":")
        if name.strip() not in MODEL_FIELDS or how.strip() not in ("fill", "model"):
            return (f"must list field:how pairs (how: fill or model; fields: {', '.join(MODEL_FIELDS)}), "
                    f"not {item!r}")
    return None


def _key(default: Any, check: Callable[[Any], str | None] | None = None) -> Any:
    """A configuration key: its default and, if any, the check its value must pass."""
    return field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class Server:
    host: str = _key("127.0.0.1")
    port: int = _key(8000, _port)
    public_url: str = _key("", _http_url)
    trust_proxy_header: str = _key("")
    max_body_bytes: int = _key(65536, _positive)
    request_timeout: float = _key(20.0, _positive)


@dataclass(frozen=True)
class Data:
    dir: str = _key("data")


def _queue_backend(v: str) -> str | None:
    return None if v in ("sqlite", "redis") else "must be 'sqlite' or 'redis'"


def _redis_url(v: str) -> str | None:
    if v == "":
        return None
    parts = urlsplit(v)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.netloc or parts.path):
        return "must be a redis://host:port/db, rediss:// or unix:// URL"
    return None


@dataclass(frozen=True)
class Queue:
    workers: int = _key(2, _positive)
    shutdown_timeout: float = _key(20.0, _positive)
    # "sqlite": the queues are files of the data directory (one box). "redis": they live in Redis,
    # so that model workers in other processes (`run.py worker --models`) share them.
    backend: str = _key("sqlite", _queue_backend)
    redis_url: str = _key("", _redis_url)
    # Whether the web server also runs the models' worker on a thread. Off: the models' work
    # waits for `run.py worker --models` processes (and the web server never loads a model).
    models_in_process: bool = _key(True)


def _replica_url(v: str) -> str | None:
    if v == "":
        return None
    parts = urlsplit(v)
    if v.startswith("/") and not v.startswith("//"):
        return None
    if parts.scheme == "file" and not parts.netloc and parts.path.startswith("/"):
        return None
    if parts.scheme == "s3" and parts.hostname:
        return None
    if parts.scheme == "sftp" and parts.hostname and parts.username:
        # A password in the URL would be a secret in capteo.toml: the key file is configured instead.
        return None if parts.password is None else "must not hold a password: set sftp_key_path"
    return "must be an absolute path, file:///path, sftp://user@host/path or s3://bucket/path"


@dataclass(frozen=True)
class Replication:
    # Where Litestream copies capteo.db continuously: "" (off), /a/path or file:///a/path,
    # sftp://user@host/path, s3://bucket/path (S3-compatible: see endpoint).
    replica_url: str = _key("", _replica_url)
    # S3-compatible endpoint other than AWS (MinIO, Backblaze, a test server); "" for AWS.
    endpoint: str = _key("", _http_url)
    # How long the replica keeps what lets a restore reach an earlier moment.
    retention_hours: int = _key(72, _positive)
    # Seconds between Litestream's pushes to the replica (what a lost box can lose at most).
    sync_interval_seconds: float = _key(1.0, _positive)
    # sftp:// only: the private key Litestream signs in with, and the server's public host key
    # ("ssh-ed25519 AAAA..."; without it any host key is accepted).
    sftp_key_path: str = _key("")
    sftp_host_key: str = _key("")


@dataclass(frozen=True)
class I18n:
    default_language: str = _key("fr", _language)
    default_timezone: str = _key("America/Toronto", _timezone)


@dataclass(frozen=True)
class Models:
    whisper: str = _key("auto")
    whisper_compute_type: str = _key("auto")
    whisper_beam_size: int = _key(5, _positive)
    whisper_temperature_fallback: bool = _key(False)
    llm_file: str = _key("qwen2.5-3b-instruct-q4_k_m.gguf")
    llm_repo: str = _key("Qwen/Qwen2.5-3B-Instruct-GGUF")
    hub_url: str = _key("https://huggingface.co", _http_url)
    # Empty: the GGUF must carry its own chat template; else a llama-cpp-python chat format ("chatml", ...).
    llm_chat_format: str = _key("")
    # The Hub revision `run.py models pull` downloads: a commit hash to pin, empty for models.py's table.
    whisper_revision: str = _key("")
    llm_revision: str = _key("")
    # What the language model may change, "field:how" pairs (how: "fill" where the rules found
    # nothing, "model" to replace them); empty: nothing, and the model is not asked.
    llm_fields: str = _key("", _llm_fields)
    # Empty: the models run in this box's own process. Else the models service on a GPU box
    # (`run.py models-serve`, app/voicemail/service.py) does the speech and language work.
    service_url: str = _key("", _service_url)
    # Longest wait for one answer of the models service (a transcription on a busy GPU box).
    service_timeout_seconds: float = _key(300.0, _positive)


@dataclass(frozen=True)
class Voicemail:
    max_seconds: int = _key(300, _positive)
    max_bytes: int = _key(25_000_000, _positive)
    upload_timeout: float = _key(300.0, _positive)
    max_attempts: int = _key(5, _positive)


@dataclass(frozen=True)
class Voipms:
    api_url: str = _key("https://voip.ms/api/v1/rest.php", _http_url)
    username: str = _key("")


@dataclass(frozen=True)
class Auth:
    mode: str = _key("builtin", _auth_mode)
    cloudflare_team_domain: str = _key("")
    cloudflare_audience: str = _key("")
    cloudflare_certs_url: str = _key("")
    login_attempts: int = _key(5, _positive)
    login_window: int = _key(900, _positive)


@dataclass(frozen=True)
class Map:
    tile_url: str = _key("https://tile.openstreetmap.org/{z}/{x}/{y}.png", _http_url)
    attribution: str = _key("© OpenStreetMap contributors")


@dataclass(frozen=True)
class Forms:
    rate_limit: int = _key(5, _positive)
    rate_window: int = _key(3600, _positive)
    token_max_age: int = _key(86400, _positive)


def _port_or_zero(v: int) -> str | None:
    return None if 0 <= v <= 65535 else "must be between 0 and 65535"


@dataclass(frozen=True)
class Smtp:
    host: str = _key("")
    port: int = _key(587, _port_or_zero)
    starttls: bool = _key(True)
    username: str = _key("")
    from_address: str = _key("")


@dataclass(frozen=True)
class Twilio:
    account_sid: str = _key("")
    api_key_sid: str = _key("")
    from_number: str = _key("")
    messaging_service_sid: str = _key("")
    api_base: str = _key("https://api.twilio.com", _http_url)


@dataclass(frozen=True)
class Geocoder:
    api_base: str = _key("https://geocoder.ca", _http_url)


@dataclass(frozen=True)
class Signup:
    open: bool = _key(True)
    trial_days: int = _key(14, _positive)


def _paddle_environment(v: str) -> str | None:
    return None if v in ("sandbox", "production") else "must be 'sandbox' or 'production'"


@dataclass(frozen=True)
class Billing:
    paddle_environment: str = _key("sandbox", _paddle_environment)
    paddle_api_base: str = _key("", _http_url)
    price_id: str = _key("")
    client_token: str = _key("")
    grace_days: int = _key(7, _positive)
    accept_days: int = _key(30, _positive)
    signature_tolerance_seconds: int = _key(300, _positive)


@dataclass(frozen=True)
class Retention:
    anonymize_archived_after_days: int = _key(30, _positive)
    delete_audio_after_days: int = _key(30, _positive)


@dataclass(frozen=True)
class Privacy:
    contact: str = _key("")


@dataclass(frozen=True)
class Demo:
    create: bool = _key(True)


def _port_list(v: str) -> str | None:
    parts = [part.strip() for part in v.split(",")]
    if not all(re.fullmatch(r"[0-9]{1,5}", part) and 1 <= int(part) <= 65535 for part in parts):
        return 'must list ports between 1 and 65535 separated by commas (e.g. "443,8443")'
    return None


@dataclass(frozen=True)
class Integrations:
    # Let integrations (webhooks) reach private, loopback and link-local addresses, and plain
    # http:// URLs: for tests and on-premise CRMs only. Cloud metadata addresses stay refused.
    allow_private_targets: bool = _key(False)
    # Ports an integration URL may name, comma-separated (no port: 443 for https, 80 for http).
    allowed_ports: str = _key("443,8443", _port_list)
    timeout_seconds: float = _key(10.0, _positive)
    max_response_bytes: int = _key(65536, _positive)

    @property
    def ports(self) -> frozenset[int]:
        """`allowed_ports` as numbers."""
        return frozenset(int(part) for part in self.allowed_ports.split(","))


def _chat_engine(v: str) -> str | None:
    return None if v in ("auto", "guided") else "must be 'auto' or 'guided'"


@dataclass(frozen=True)
class Chat:
    # "auto": the local language model drives the conversation when it is loaded; "guided": never.
    engine: str = _key("auto", _chat_engine)
    message_max_length: int = _key(1000, _positive)
    max_messages: int = _key(120, _positive)
    messages_per_minute: int = _key(20, _positive)
    ip_messages_per_minute: int = _key(40, _positive)
    conversations_per_hour: int = _key(10, _positive)
    reply_timeout_seconds: float = _key(20.0, _positive)
    quiet_minutes: int = _key(30, _positive)
    resume_minutes: int = _key(30, _positive)
    keep_days: int = _key(30, _positive)


@dataclass(frozen=True)
class Metrics:
    # GET /metrics (Prometheus text format); false: 404.
    enabled: bool = _key(True)
    # Requests from 127.0.0.1/::1 that came through no proxy may read it without the token.
    allow_localhost: bool = _key(True)


# Section name in capteo.toml -> its dataclass. The attribute of `Config` has the same name.
SECTIONS: dict[str, type] = {
    "server": Server, "data": Data, "queue": Queue, "i18n": I18n, "models": Models, "voicemail": Voicemail,
    "voipms": Voipms, "auth": Auth, "map": Map, "forms": Forms, "twilio": Twilio, "smtp": Smtp, "geocoder": Geocoder,
    "retention": Retention, "privacy": Privacy, "demo": Demo, "integrations": Integrations,
    "signup": Signup, "billing": Billing, "chat": Chat, "metrics": Metrics, "replication": Replication,
}


@dataclass(frozen=True)
class Key:
    type: type
    default: Any
    check: Callable[[Any], str | None] | None = None


def _schema() -> dict[str, dict[str, Key]]:
    schema = {}
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        schema[name] = {f.name: Key(hints[f.name], f.default, f.metadata["check"]) for f in fields(cls)}
    return schema


# Every key, its type, default and check, read off the section dataclasses.
SCHEMA: dict[str, dict[str, Key]] = _schema()


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


@dataclass(frozen=True)
class Config:
    """The validated configuration, one typed section per table: `config.server.port`."""

    path: Path
    server: Server
    data: Data
    queue: Queue
    i18n: I18n
    models: Models
    voicemail: Voicemail
    voipms: Voipms
    auth: Auth
    map: Map
    forms: Forms
    twilio: Twilio
    smtp: Smtp
    geocoder: Geocoder
    retention: Retention
    privacy: Privacy
    demo: Demo
    integrations: Integrations
    signup: Signup
    billing: Billing
    chat: Chat
    metrics: Metrics
    replication: Replication
    # Where each value came from ("default", the file, or an environment variable), by "section.key".
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @functools.cached_property
    def data_dir(self) -> Path:
        """Resolved once (every secret, queue and database path starts here)."""
        p = Path(self.data.dir)
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
        url = self.server.public_url or f"http://{self.server.host}:{self.server.port}"
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
        return _read_secret_file(env)

    def secret(self, name: str, nbytes: int = 32) -> str:
        """A secret from `CAPTEO_SECRET_<NAME>`, `CAPTEO_SECRET_<NAME>_FILE`, or
        generated once into `data/secrets/<name>` (mode 0600) and reused after."""
        provided = self.provider_secret(name)
        if provided:
            return provided
        path = self.data_dir / "secrets" / name
        # Made once and never rewritten: read once per process (the forms' key is asked at every
        # form shown and posted), not a file read and a path resolution each time.
        known = _generated_secrets.get(str(path))
        if known is None:
            known = _generated_secrets[str(path)] = self._read_or_make(path, nbytes)
        return known

    @staticmethod
    def _read_or_make(path: Path, nbytes: int) -> str:
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


# Generated secrets already read, by file (Config.secret).
_generated_secrets: dict[str, str] = {}


def _read_secret_file(env: str) -> str:
    try:
        value = Path(os.environ[env + "_FILE"]).read_text().strip()
    except OSError as e:
        raise ConfigError(f"{env}_FILE: cannot read {os.environ[env + '_FILE']}: {e.strerror}") from e
    if not value:
        raise ConfigError(f"{env}_FILE: {os.environ[env + '_FILE']} is empty")
    return value


def find_secret(data_dir: Path, name: str) -> str | None:
    """A secret already provided (environment) or generated into `data_dir/secrets/`,
    for code that has the data directory but not the configuration; never generates one."""
    env = f"CAPTEO_SECRET_{name.upper()}"
    if os.environ.get(env):
        return os.environ[env]
    if os.environ.get(env + "_FILE"):
        return _read_secret_file(env)
    path = data_dir / "secrets" / name
    return path.read_text().strip() if path.exists() else None


def load(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration file (default: `CAPTEO_CONFIG` or ./capteo.toml), apply
    environment overrides and check every value. Raises ConfigError."""
    if env is None:
        env = os.environ
    path = Path(path or env.get("CAPTEO_CONFIG") or DEFAULT_CONFIG).resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: not valid TOML: {e}") from e

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
                    ) from None
            elif key in raw.get(section, {}):
                try:
                    value = _coerce(raw[section][key], spec.type)
                except ValueError:
                    raise ConfigError(
                        f"{where}: expected {_TYPE_WORDS[spec.type]}, got {raw[section][key]!r}"
                    ) from None
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
    if values["queue"]["backend"] == "redis" and not values["queue"]["redis_url"]:
        raise ConfigError("[queue] redis_url is required when [queue] backend = 'redis'")
    sections = {name: SECTIONS[name](**values[name]) for name in SECTIONS}
    return Config(path=path, sources=sources, **sections)
