"""A new privacy policy version: published ahead, announced to owners, in effect on its date."""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, timedelta

import pytest

from app import businesses, clock, form
from app.privacy import versions
from tests.support.people import make_business, signed_in
from tests.test_cli import run
from tests.test_form import good, submit

NEW_FR = "# Politique\n\nNous gardons vos demandes.\n\nNouveau : les messages vocaux sont gardés 90 jours.\n"
NEW_EN = "# Policy\n\nWe keep your requests.\n\nNew: voice messages are kept 90 days.\n"


@pytest.fixture
def texts(tmp_path):
    fr, en = tmp_path / "new.fr.md", tmp_path / "new.en.md"
    fr.write_text(NEW_FR, encoding="utf-8")
    en.write_text(NEW_EN, encoding="utf-8")
    return fr, en


@pytest.fixture
def shop(db):
    bid, ids = make_business(db, "gagnon", "Plomberie Gagnon")
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.ca", password="x" * 12)
        owner2 = businesses.add_user(conn, business_id=bid, email="owner2@gagnon.ca", password="x" * 12)
        conn.execute("UPDATE memberships SET role = 'owner' WHERE user_id = ?", (owner2,))
    return bid, ids, owner, owner2


def test_publish_refuses_under_30_days_unless_forced(db, config, texts):
    soon = clock.now().date() + timedelta(days=10)
    with pytest.raises(versions.VersionError, match="30 days"):
        versions.publish(db, config, *texts, soon)
    version = versions.publish(db, config, *texts, soon, force=True)
    assert version.startswith(soon.isoformat() + "-")
    assert (config.data_dir / "privacy" / "versions" / f"{version}.fr.md").read_text(encoding="utf-8") == NEW_FR
    assert db.one("SELECT action FROM audit_log WHERE entity_id = ?", (version,))["action"] == "policy.publish"


def test_cli_publish_and_list(tmp_path, texts):
    from tests.support.app import write_config

    cfg = write_config(tmp_path)
    soon = (date.today() + timedelta(days=5)).isoformat()
    refused = run(cfg, "policy", "publish", str(texts[0]), str(texts[1]), "--effective", soon)
    assert refused.returncode == 2 and "30 days" in refused.stderr
    forced = run(cfg, "policy", "publish", str(texts[0]), str(texts[1]), "--effective", soon,
                 "--summary-en", "Voice messages kept 90 days", "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"policy version {soon}-" in forced.stdout and "/fr/privacy/changes/" in forced.stdout
    listing = run(cfg, "policy", "list")
    assert listing.returncode == 0 and "in effect: shipped" in listing.stdout
    assert "Voice messages kept 90 days" in listing.stdout


def test_notice_shown_to_each_owner_until_they_dismiss_it(client, db, config, shop, texts):
    _bid, _ids, owner, owner2 = shop
    bid = shop[0]
    version = versions.publish(db, config, *texts, clock.now().date() + timedelta(days=40))
    token = signed_in(client, db, owner, bid)
    page = client.get("/fr/app/leads").text
    assert "La politique de confidentialité de Capteo change le" in page
    assert f'href="/fr/privacy/changes/{version}"' in page
    r = client.post(f"/fr/app/policy-notice/{version}/dismiss", data={"_csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303
    assert "La politique de confidentialité de Capteo change" not in client.get("/fr/app/leads").text
    assert versions.pending_notice(db, owner) is None
    # Dismissed for that person only.
    signed_in(client, db, owner2, bid)
    assert "The privacy policy of Capteo changes on" in client.get("/en/app/leads").text
    assert client.post("/fr/app/policy-notice/2030-01-01-00000000/dismiss", data={"_csrf_token": token},
                       follow_redirects=False).status_code == 404


def test_changes_page_shows_the_diff_in_both_languages(client, db, config, texts):
    version = versions.publish(db, config, *texts, clock.now().date() + timedelta(days=45),
                               summary_fr="Les messages vocaux", summary_en="Voice messages")
    fr = client.get(f"/fr/privacy/changes/{version}")
    assert fr.status_code == 200
    text = html.unescape(fr.text)
    assert "Changements à la politique de confidentialité" in text and "Les messages vocaux" in text
    assert "<ins>Nouveau : les messages vocaux sont gardés 90 jours.</ins>" in text and "<del>" in text
    en = html.unescape(client.get(f"/en/privacy/changes/{version}").text)
    assert "Changes to the privacy policy" in en and "<ins>New: voice messages are kept 90 days.</ins>" in en
    assert client.get("/fr/privacy/changes/nope").status_code == 404


def test_diff_escapes_html():
    out = versions.diff_html("a\n", "a\n<script>x</script>\n")
    assert "<script>" not in out and "&lt;script&gt;" in out


def test_after_the_effective_date_the_new_text_and_version_apply(client, db, config, texts, monkeypatch):
    bid, ids = make_business(db, "gagnon", "Plomberie Gagnon")
    shop = (bid, ids)
    assert submit(client, good(shop)).status_code == 200
    old_lead = db.one("SELECT id, consent_version FROM leads")
    assert old_lead["consent_version"] == form.CONSENT_VERSION
    effective = clock.now().date() + timedelta(days=31)
    version = versions.publish(db, config, *texts, effective)
    assert "Nouveau : les messages vocaux" not in client.get("/fr/privacy").text
    later = datetime(effective.year, effective.month, effective.day, 12, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert versions.current_version(db, config) == version
    assert "Nouveau : les messages vocaux" in html.unescape(client.get("/fr/privacy").text)
    assert "New: voice messages are kept 90 days." in client.get("/en/privacy").text
    assert submit(client, good(shop)).status_code == 200
    new_lead = db.one("SELECT consent_version FROM leads WHERE id != ?", (old_lead["id"],))
    assert new_lead["consent_version"] == version
    assert db.one("SELECT consent_version FROM leads WHERE id = ?", (old_lead["id"],))["consent_version"] \
        == form.CONSENT_VERSION


def test_the_diff_reads_as_paragraphs_not_markdown():
    """A paragraph rewrapped or put in bold is not a change; Markdown marks do not show."""
    out = versions.diff_html("# Titre\n\nNous gardons\nvos demandes.\n\n- un\n- deux\n",
                             "# Titre\n\nNous **gardons** vos demandes.\n\n- un\n- [trois](https://x.example)\n")
    assert "<del>deux</del>" in out and "<ins>trois</ins>" in out
    assert "Nous gardons vos demandes." in out and "<del>Nous" not in out
    assert "**" not in out and "# " not in out and "https://x.example" not in out
