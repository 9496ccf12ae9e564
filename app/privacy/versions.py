"""Versions of the privacy policy: the operator publishes a new text with an effective date
(at least NOTICE_DAYS ahead, unless forced); owners see a notice until they dismiss it; from
the effective date the policy page serves the new text and the public form's consent records
the version in effect. A lead keeps the version its person accepted.

The texts live in `<data dir>/privacy/versions/<version>.{fr,en}.md`, the version being the
effective date and a short hash of the two texts ("2027-01-15-3f2a9c1b"). Before any version
is in effect, the shipped policy (or the operator's override) applies.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from app import audit, clock
from app.config import Config
from app.db import Database

NOTICE_DAYS = 30
# A version stays announced this long after it takes effect (an owner away that month still sees it).
SHOWN_AFTER = timedelta(days=30)
VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-[0-9a-f]{8}$")
LANGUAGES = ("fr", "en")


class VersionError(ValueError):
    """A version could not be published; the message says why (for the operator's terminal)."""


def versions_dir(config: Config) -> Path:
    return config.data_dir / "privacy" / "versions"


def text_path(config: Config, version: str, lang: str) -> Path:
    return versions_dir(config) / f"{version}.{lang}.md"


# Quebec's law, Quebec's day: a version takes effect at midnight in Quebec (stored in UTC).
ZONE = "America/Toronto"


def _effective_iso(effective: date) -> str:
    start = datetime(effective.year, effective.month, effective.day, tzinfo=ZoneInfo(ZONE))
    return start.astimezone(UTC).isoformat(timespec="seconds")


def publish(db: Database, config: Config, path_fr: Path | str, path_en: Path | str, effective: date,
            summary_fr: str = "", summary_en: str = "", force: bool = False, *,
            actor: str = "operator") -> str:
    """Record a new version taking effect on `effective`; returns its id."""
    today = clock.now().date()
    if effective < today + timedelta(days=NOTICE_DAYS) and not force:
        raise VersionError(f"the effective date must be at least {NOTICE_DAYS} days ahead "
                           f"({(today + timedelta(days=NOTICE_DAYS)).isoformat()} or later); --force to publish anyway")
    texts = {}
    for lang, path in (("fr", Path(path_fr)), ("en", Path(path_en))):
        try:
            texts[lang] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise VersionError(f"cannot read {path}: {e}") from e
        if not texts[lang].strip():
            raise VersionError(f"{path} is empty")
    digest = hashlib.sha256((texts["fr"] + "\0" + texts["en"]).encode()).hexdigest()[:8]
    version = f"{effective.isoformat()}-{digest}"
    if db.query_one("SELECT 1 AS x FROM policy_versions WHERE version = ?", (version,)):
        raise VersionError(f"version {version} is already published")
    versions_dir(config).mkdir(parents=True, exist_ok=True)
    for lang, text in texts.items():
        text_path(config, version, lang).write_text(text, encoding="utf-8")
    with db.write() as conn:
        conn.execute("INSERT INTO policy_versions (version, published_at, effective_at, summary_fr, summary_en)"
                     " VALUES (?, ?, ?, ?, ?)",
                     (version, clock.now_iso(), _effective_iso(effective), summary_fr.strip()[:2000],
                      summary_en.strip()[:2000]))
        audit.record(conn, actor=actor, action="policy.publish", entity="policy_version", entity_id=version,
                     fields=["text_fr", "text_en", "effective_at", "summary_fr", "summary_en"])
    return version


def all_versions(db: Database) -> list[dict]:
    return db.query("SELECT * FROM policy_versions ORDER BY effective_at DESC, published_at DESC")


def get(db: Database, version: str) -> dict | None:
    if not VERSION_RE.match(version):
        return None
    return db.query_one("SELECT * FROM policy_versions WHERE version = ?", (version,))


def in_effect(db: Database, now: datetime | None = None) -> dict | None:
    """The latest version whose effective date has come; None while the shipped policy applies."""
    at = (now or clock.now()).isoformat(timespec="seconds")
    return db.query_one("SELECT * FROM policy_versions WHERE effective_at <= ? "
                        "ORDER BY effective_at DESC, published_at DESC LIMIT 1", (at,))


SHIPPED = "shipped"


def current_version(db: Database, config: Config, now: datetime | None = None) -> str:
    """The id of the version in effect whose texts are present, else SHIPPED."""
    at = (now or clock.now()).isoformat(timespec="seconds")
    for row in db.query("SELECT version FROM policy_versions WHERE effective_at <= ? "
                        "ORDER BY effective_at DESC, published_at DESC", (at,)):
        if all(text_path(config, row["version"], lang).is_file() for lang in LANGUAGES):
            return row["version"]
    return SHIPPED


def pending_notice(db: Database, user_id: int, now: datetime | None = None) -> dict | None:
    """The newest version not yet in effect, or in effect for less than SHOWN_AFTER, that
    this person has not dismissed; None when there is nothing to say."""
    at = now or clock.now()
    return db.query_one(
        """SELECT v.* FROM policy_versions v
           WHERE v.effective_at > ?
             AND NOT EXISTS (SELECT 1 FROM policy_notices_dismissed d WHERE d.user_id = ? AND d.version = v.version)
           ORDER BY v.effective_at DESC, v.published_at DESC LIMIT 1""",
        ((at - SHOWN_AFTER).isoformat(timespec="seconds"), user_id))


def dismiss(db: Database, user_id: int, version: str) -> bool:
    """This person has seen the notice; False for an unknown version."""
    if get(db, version) is None:
        return False
    with db.write() as conn:
        conn.execute("INSERT OR IGNORE INTO policy_notices_dismissed (user_id, version, dismissed_at) "
                     "VALUES (?, ?, ?)", (user_id, version, clock.now_iso()))
    return True


def shipped_text(config: Config, lang: str) -> str:
    """The policy before any version: the operator's override, else the shipped default."""
    override = config.data_dir / "privacy" / f"policy.{lang}.md"
    source = override if override.is_file() else Path(__file__).parent / "policy" / f"policy.{lang}.md"
    return source.read_text(encoding="utf-8")


def text_of(db: Database, config: Config, version: str, lang: str) -> str:
    if version != SHIPPED:
        path = text_path(config, version, lang)
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return shipped_text(config, lang)


def previous_version(db: Database, config: Config, version: dict) -> str:
    """The version in effect just before `version` takes effect."""
    before = datetime.fromisoformat(version["effective_at"]) - timedelta(seconds=1)
    return current_version(db, config, before)


_LIST_ITEM = re.compile(r"\n(?=\s*(?:[-*+]|\d+[.)])\s)")


def _paragraphs(markdown: str) -> list[tuple[str, bool]]:
    """(plain text, is a heading) per paragraph, heading or list item of a Markdown text:
    what a reader reads, without `#`, `**`, list markers or link targets."""
    out = []
    for block in re.split(r"\n\s*\n", markdown):
        for piece in _LIST_ITEM.split(block.strip()):
            line = " ".join(part.strip() for part in piece.splitlines()).strip()
            heading = line.startswith("#")
            line = re.sub(r"^(?:#{1,6}|[-*+]|\d+[.)])\s+", "", line)
            line = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)  # [text](url) -> text
            line = re.sub(r"(\*\*|__|`)", "", line)
            if line:
                out.append((line, heading))
    return out


def diff_html(old: str, new: str, context: int = 2) -> Markup:
    """A readable diff of two Markdown texts, paragraph by paragraph (a paragraph rewrapped
    or reformatted is not a change): removed ones struck out, added ones marked, unchanged
    runs shortened to `context` paragraphs around each change. Everything is escaped."""
    before, after = _paragraphs(old), _paragraphs(new)
    matcher = difflib.SequenceMatcher(a=[t for t, _ in before], b=[t for t, _ in after], autojunk=False)

    def paragraph(css: str, text: str, heading: bool, mark: str = "") -> str:
        body = f"<{mark}>{escape(text)}</{mark}>" if mark else str(escape(text))
        return f'<p class="{css}{" diff-heading" if heading else ""}">{body}</p>'

    parts = ['<div class="policy-diff">']
    for i, group in enumerate(matcher.get_grouped_opcodes(context)):
        if i:
            parts.append('<p class="diff-gap">…</p>')
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                parts.extend(paragraph("diff-same", t, h) for t, h in before[i1:i2])
                continue
            if tag in ("replace", "delete"):
                parts.extend(paragraph("diff-del", t, h, "del") for t, h in before[i1:i2])
            if tag in ("replace", "insert"):
                parts.extend(paragraph("diff-add", t, h, "ins") for t, h in after[j1:j2])
    parts.append("</div>")
    return Markup("\n".join(parts))


def changes(db: Database, config: Config, version: dict, lang: str) -> Markup:
    """The diff a version makes to the policy in `lang`."""
    before = previous_version(db, config, version)
    return diff_html(text_of(db, config, before, lang), text_of(db, config, version["version"], lang))
