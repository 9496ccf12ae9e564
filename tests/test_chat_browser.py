"""The chat in Debian's Chromium, as a visitor on a phone (and a desktop) and as the team:
consent refused, a guided conversation corrected once and confirmed, a visitor who leaves
after giving a phone number, a member taking over, and the page with JavaScript off.
axe-core checks the chat page and the team's pages; screenshots are kept as artifacts."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app import businesses, chat, clock
from app import config as config_mod
from app.db import Database
from tests.support.axe import violations
from tests.support.browser import ARTIFACTS, screenshot, sign_in_demo

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}

WORDS = {
    "fr": dict(accept="J'accepte, commencer la conversation", no_thanks="Non merci", message="Votre message",
               send="Envoyer", declined="Aucune conversation n'a été commencée et rien n'a été enregistré.",
               house="Maison", skip="Passer", change="Changer quelque chose", phone="Téléphone",
               confirm="Oui, envoyer ma demande", sent="Votre demande a été envoyée à Plomberie Démo.",
               need="Mon chauffe-eau fuit dans le sous-sol", name="Hélène Côté", email="non",
               address="4521 rue Saint-Hubert H2J 2X7", when="après 17 h", chats="Clavardage",
               take_over="Prendre la conversation en charge", reply="Votre réponse au visiteur",
               team_note="Un membre de l'équipe vous répond.", on_page="Visiteur sur la page"),
    "en": dict(accept="I agree, start the conversation", no_thanks="No thanks", message="Your message",
               send="Send", declined="No conversation was started and nothing was stored.",
               house="House", skip="Skip", change="Change something", phone="Phone",
               confirm="Yes, send my request", sent="Your request was sent to Plomberie Démo.",
               need="My water heater is leaking in the basement", name="Helen Cote", email="helen@example.com",
               address="4521 Saint-Hubert Street H2J 2X7", when="after 5 p.m.", chats="Chats",
               take_over="Take over the conversation", reply="Your reply to the visitor",
               team_note="A team member is answering you.", on_page="Visitor on the page"),
}


def data_db(server) -> tuple[config_mod.Config, Database]:
    cfg = config_mod.load(server.config_path, env={})
    return cfg, Database(cfg.db_path)


def count(db: Database, table: str) -> int:
    return db.query_one(f"SELECT count(*) AS n FROM {table}")["n"]


def shot(page, name: str) -> None:
    """The whole page, and for a phone what the screen shows (the composer pinned at the bottom)."""
    if page.viewport_size and page.viewport_size["width"] < 640:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"chat-{name}-screen.png"))  # first: a full page one scrolls
    screenshot(page, f"chat-{name}")


def no_violations(page, where: str) -> None:
    found = violations(page)
    assert found == [], f"{where}: {found}"


def replies(page) -> int:
    return page.locator("#chat-thread .chat-assistant").count()


def say(page, text: str, words: dict) -> None:
    """Type a message, send it with Enter, and wait for the assistant's answer."""
    before = replies(page)
    box = page.get_by_label(words["message"])
    box.fill(text)
    box.press("Enter")
    expect(page.locator("#chat-thread .chat-assistant")).to_have_count(before + 1)
    expect(box).to_have_value("")


def tap(page, label: str) -> None:
    """Tap a quick answer and wait for the assistant's answer."""
    before = replies(page)
    page.locator(".chat-quick").get_by_role("button", name=label, exact=True).click()
    expect(page.locator("#chat-thread .chat-assistant")).to_have_count(before + 1)


def start(page, url: str, lang: str) -> None:
    page.goto(f"{url}/{lang}/c/demo")
    page.get_by_role("button", name=WORDS[lang]["accept"]).click()
    expect(page.locator("#chat-thread .chat-assistant")).to_have_count(2)


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_consent_refused_stores_nothing(server, browser, lang):
    words = WORDS[lang]
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{server.url}/{lang}/c/demo")
    expect(page.locator("#chat-consent")).to_contain_text("Plomberie Démo")
    no_violations(page, "consent")
    shot(page, f"{lang}-phone-consent")
    page.goto(f"{server.url}/{lang}/c/demo?embed=1")
    expect(page.locator("#chat-consent")).to_be_visible()
    no_violations(page, "embedded consent")
    page.get_by_role("link", name=words["no_thanks"]).click()
    expect(page.get_by_text(words["declined"])).to_be_visible()
    no_violations(page, "declined")
    shot(page, f"{lang}-phone-declined")
    _, db = data_db(server)
    assert count(db, "chat_conversations") == 0 and count(db, "chat_messages") == 0
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('capteo.chat'))") == []
    assert [c for c in context.cookies() if "chat" in c["name"]] == []
    context.close()


@pytest.mark.parametrize("lang, size", [("fr", "phone"), ("en", "phone"), ("fr", "desktop")])
def test_guided_conversation_corrected_once_makes_one_lead(server, browser, lang, size):
    words = WORDS[lang]
    context = browser.new_context(viewport=PHONE if size == "phone" else DESKTOP)
    page = context.new_page()
    start(page, server.url, lang)
    no_violations(page, "conversation start")
    say(page, words["need"], words)
    say(page, words["name"], words)
    say(page, "514 555-0101", words)
    say(page, words["email"], words)
    say(page, words["address"], words)
    tap(page, words["house"])  # the business's own question, answered by a quick answer
    tap(page, words["skip"])  # its optional yes/no question, skipped
    say(page, words["when"], words)
    # The summary, and the visitor corrects the phone once.
    expect(page.locator("#chat-thread .chat-assistant").last).to_contain_text("555-0101")
    if size == "phone":
        # The composer stays at the bottom of the screen while the thread scrolls.
        dock = page.locator("#chat-dock").bounding_box()
        assert abs(dock["y"] + dock["height"] - PHONE["height"]) < 2, dock
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, f"{lang}-{size}-summary")  # before axe, which scrolls
    no_violations(page, "summary")
    tap(page, words["change"])
    tap(page, words["phone"])
    say(page, "438 555-0199", words)
    expect(page.locator("#chat-thread .chat-assistant").last).to_contain_text("555-0199")
    # A tapped quick answer shows by its label.
    expect(page.locator("#chat-thread .chat-visitor").filter(has_text="fix:")).to_have_count(0)
    tap(page, words["confirm"])
    expect(page.locator("#chat-over")).to_contain_text(words["sent"])
    expect(page.get_by_label(words["message"])).to_have_count(0)
    shot(page, f"{lang}-{size}-sent")

    _, db = data_db(server)
    rows = db.query("SELECT * FROM leads WHERE channel = 'chat'")
    assert len(rows) == 1
    lead = rows[0]
    assert lead["phone"] == "+14385550199" and lead["postal_code"] == "H2J 2X7" and lead["language"] == lang
    assert lead["need"] == words["need"] and lead["callback_time"] == words["when"]
    assert (lead["first_name"], lead["last_name"]) == tuple(words["name"].split())
    assert lead["email"] == (None if lang == "fr" else "helen@example.com")
    assert words["need"] in lead["transcript"] and "514 555-0101" in lead["transcript"]
    assert "438 555-0199" in lead["transcript"]
    # Nothing more is kept on this device once the conversation is over.
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('capteo.chat'))") == []
    context.close()
    if size == "desktop":
        # The owner reads the conversation on the lead, as a thread.
        team = browser.new_context(viewport=DESKTOP).new_page()
        sign_in_demo(team, server.url, server.directory / "data", lang)
        team.goto(f"{server.url}/{lang}/app/leads/{lead['id']}")
        thread = team.locator("#lead-chat")
        expect(thread.locator(".chat-visitor")).to_have_count(12)
        expect(thread.locator(".chat-visitor").first).to_contain_text(words["need"])
        no_violations(team, "lead with its chat")
        shot(team, f"{lang}-team-lead")
        team.context.close()


def test_visitor_who_leaves_after_a_phone_becomes_one_lead_after_the_quiet_period(server, browser):
    words = WORDS["fr"]
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    start(page, server.url, "fr")
    say(page, "Une fuite sous l'évier de la cuisine", words)
    say(page, "Luc Roy", words)
    say(page, "514 555-0123", words)
    context.close()  # the visitor leaves
    cfg, db = data_db(server)
    assert count(db, "leads WHERE channel = 'chat'") == 0
    later = clock.now() + timedelta(minutes=cfg.chat.quiet_minutes + 1)
    report = chat.sweep(db, cfg, lambda bid: businesses.get(db, bid), now=later)
    assert len(report.leads) == 1
    chat.sweep(db, cfg, lambda bid: businesses.get(db, bid), now=later + timedelta(minutes=5))
    rows = db.query("SELECT * FROM leads WHERE channel = 'chat'")
    assert len(rows) == 1 and rows[0]["phone"] == "+15145550123" and rows[0]["first_name"] == "Luc"
    assert "Une fuite sous l'évier de la cuisine" in rows[0]["transcript"]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_member_takes_over_and_the_visitor_sees_the_replies(server, browser, lang):
    words = WORDS[lang]
    visitor_context = browser.new_context(viewport=PHONE)
    visitor = visitor_context.new_page()
    start(visitor, server.url, lang)
    say(visitor, words["need"], words)
    # Back on the page (a reload): the conversation again, not the notice.
    visitor.reload()
    expect(visitor.locator("#chat-thread .chat-visitor")).to_have_count(1)

    team_context = browser.new_context(viewport=DESKTOP)
    team = team_context.new_page()
    sign_in_demo(team, server.url, server.directory / "data", lang)
    team.get_by_role("link", name=words["chats"], exact=True).click()
    expect(team.locator("#chat-list")).to_contain_text(words["on_page"])
    no_violations(team, "chats list")
    shot(team, f"{lang}-team-list")
    team.locator("#chat-list a[href*='/app/chats/']").first.click()
    expect(team.locator("#chat-thread")).to_contain_text(words["need"])
    no_violations(team, "thread")
    team.get_by_role("button", name=words["take_over"]).click()
    team.get_by_label(words["reply"]).fill("Bonjour! Ici Démo. / Hello, this is Démo.")
    team.get_by_role("button", name=words["send"], exact=True).click()
    expect(team.locator("#chat-thread .chat-team")).to_have_count(1)
    no_violations(team, "thread taken over")
    shot(team, f"{lang}-team-thread")

    # The visitor's page shows it (it polls), and that a person is answering; the assistant is quiet.
    expect(visitor.locator("#chat-thread .chat-team")).to_contain_text("Hello, this is Démo.", timeout=15000)
    expect(visitor.locator("#chat-status")).to_contain_text(words["team_note"])
    expect(visitor.locator(".chat-quick")).to_have_count(0)
    assistants = replies(visitor)
    box = visitor.get_by_label(words["message"])
    box.fill("Merci, demain matin / Thanks, tomorrow morning")
    box.press("Enter")
    expect(visitor.locator("#chat-thread .chat-visitor")).to_have_count(2)
    expect(team.locator("#chat-thread")).to_contain_text("Thanks, tomorrow morning", timeout=15000)
    assert replies(visitor) == assistants
    shot(visitor, f"{lang}-phone-taken-over")
    no_violations(visitor, "visitor taken over")
    visitor_context.close()
    team_context.close()


def test_javascript_off_each_message_is_a_plain_post(server, browser):
    words = WORDS["fr"]
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.url}/fr/c/demo")
    page.get_by_role("button", name=words["accept"]).click()
    page.wait_for_url(re.compile(r".*/fr/c/demo/start$"))
    steps = [words["need"], words["name"], "514 555-0101", "non", words["address"]]
    for text in steps:
        page.get_by_label(words["message"]).fill(text)
        page.get_by_role("button", name=words["send"], exact=True).click()
        page.wait_for_load_state()
        # The page comes back scrolled to the visitor's last message.
        expect(page.locator("#chat-anchor")).to_contain_text(text)
    page.get_by_role("button", name=words["house"], exact=True).click()
    page.get_by_role("button", name=words["skip"], exact=True).click()
    page.get_by_label(words["message"]).fill(words["when"])
    page.get_by_role("button", name=words["send"], exact=True).click()
    expect(page.locator("#chat-thread .chat-assistant").last).to_contain_text("514 555-0101")
    shot(page, "fr-nojs-summary")
    page.get_by_role("button", name=words["confirm"], exact=True).click()
    expect(page.locator("#chat-over")).to_contain_text(words["sent"])
    _, db = data_db(server)
    rows = db.query("SELECT * FROM leads WHERE channel = 'chat'")
    assert len(rows) == 1 and rows[0]["phone"] == "+15145550101" and rows[0]["need"] == words["need"]
    context.close()


def test_settings_show_the_chat_facts_and_address(server, browser):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    sign_in_demo(page, server.url, server.directory / "data", "fr")
    page.goto(f"{server.url}/fr/app/settings")
    page.get_by_label("Territoire desservi").fill("H2J, H2X\nLaval")
    page.get_by_label("Délai habituel de rappel, en heures").fill("4")
    page.get_by_role("button", name="Enregistrer les paramètres").click()
    expect(page.get_by_text("Paramètres enregistrés.")).to_be_visible()
    expect(page.locator("#s-chat-snippet")).to_have_value(re.compile(r"/fr/c/demo\?embed=1"))
    no_violations(page, "settings")
    page.locator("#chat-settings").scroll_into_view_if_needed()
    shot(page, "fr-phone-settings")
    # The chat answers from them.
    page.goto(f"{server.url}/fr/c/demo")
    page.get_by_role("button", name=WORDS["fr"]["accept"]).click()
    say(page, "Quels secteurs desservez-vous ?", WORDS["fr"])
    expect(page.locator("#chat-thread .chat-assistant").last).to_contain_text("H2J, H2X, Laval")
    context.close()
