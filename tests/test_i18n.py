import subprocess
from datetime import UTC, datetime

import pytest
from babel.messages.pofile import read_po

from app import i18n
from tests.support.app import ROOT


def _catalog(lang):
    with open(i18n.catalog_path(lang), "rb") as f:
        return read_po(f)


def test_every_string_in_the_code_is_in_the_french_catalog(tmp_path):
    """Extract the strings the templates and code use now; each must have a French
    translation that is neither empty nor fuzzy."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [str(ROOT / ".venv/bin/pybabel"), "extract", "-F", "babel.cfg", "-k", "_", "-k", "gettext", "-k", "gettext_in:2", "-k", "N_", "-k", "NP_:1c,2",
         "--no-location", "-o", str(pot), "."],
        cwd=ROOT, check=True, capture_output=True,
    )
    with open(pot, "rb") as f:
        used = {m.id for m in read_po(f) if m.id}
    assert len(used) > 30
    french = {m.id: m for m in _catalog("fr") if m.id}
    missing = sorted(used - french.keys(), key=str)
    assert missing == [], f"not in locales/fr: {missing} (run `make extract`)"
    untranslated = sorted((m for m in used if not all(french[m].string if isinstance(french[m].string, tuple) else [french[m].string]) or french[m].fuzzy), key=str)
    assert untranslated == []


@pytest.mark.parametrize("header, expected", [
    (None, "fr"),
    ("", "fr"),
    ("en-CA,en;q=0.9", "en"),
    ("fr-CA,fr;q=0.9,en;q=0.8", "fr"),
    ("de-DE,en;q=0.5,fr;q=0.7", "fr"),
    ("de-DE,en;q=0.8,fr;q=0.7", "en"),
    ("es", "fr"),
    ("en;q=0", "fr"),
    ("en;q=abc,fr;q=0.1", "fr"),
])
def test_best_language(header, expected):
    assert i18n.best_language(header) == expected


def test_dates_in_the_business_time_zone_and_locale():
    moment = datetime(2026, 1, 15, 3, 30, tzinfo=UTC)  # 22:30 the day before in Montreal
    token = i18n.current_language.set("fr")
    try:
        fr = i18n.format_datetime(moment, "America/Toronto", "medium")
        assert "14 janv. 2026" in fr and "22 h 30" in fr
        assert i18n.format_date(moment.isoformat(), "America/Toronto") == "14 janvier 2026"
        i18n.current_language.set("en")
        en = i18n.format_datetime(moment, "America/Toronto", "medium")
        assert "Jan 14, 2026" in en and "10:30" in en and "p.m." in en
        assert i18n.format_datetime(moment, "America/Vancouver", "short").startswith("2026-01-14")
    finally:
        i18n.current_language.reset(token)


def test_phone_numbers_formatted_per_language():
    token = i18n.current_language.set("fr")
    try:
        assert i18n.format_phone("+15145550101") == "514 555-0101"
        i18n.current_language.set("en")
        assert i18n.format_phone("+15145550101") == "(514) 555-0101"
        assert i18n.format_phone("+33142685300") == "+33 1 42 68 53 00"
        assert i18n.format_phone(None) == ""
    finally:
        i18n.current_language.reset(token)


def test_an_erasure_leaves_no_phone_number_in_the_formatting_cache(db, config):
    from app.privacy import retention

    assert i18n.format_phone("+15145550199")
    assert i18n._formatted_phone.cache_info().currsize >= 1
    retention.checkpoint(db, config)  # what every erasure ends with
    assert i18n._formatted_phone.cache_info().currsize == 0
    assert i18n._formatted_datetime.cache_info().currsize == 0
