"""The chat's pages over HTTP, JavaScript off (each message a plain form post): consent,
a guided conversation that becomes one lead, the embed's frame rules, refusals, and the
team's side (list, thread, take-over, replies, the thread on the lead)."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest

from app import businesses, chat, clock, leads
from tests.support.people import make_business, signed_in

PASSWORD = "correct horse battery"


@pytest.fixture
def shop(db):
    bid, ids = make_business(db, "gagnon", "Plomberie Gagnon", embed=["plomberie-gagnon.ca"])
    with db.write() as conn:
        owner = businesses.add_user(conn, business_id=bid, email="owner@gagnon.test", password=PASSWORD,
                                    name="Marie")
        member = businesses.add_user(conn, business_id=bid, email="aide@gagnon.test", password=PASSWORD,
                                     name="Luc", role="member")
        conn.execute("UPDATE businesses SET service_area = 'H2J, H2X\nLaval', callback_hours = 4 WHERE id = ?",
                     (bid,))
    return {"id": bid, "owner": owner, "member": member, **ids}


def count(db, table: str) -> int:
    return db.query_one(f"SELECT count(*) AS n FROM {table}")["n"]


def start(client, lang="fr", embed=False):
    """Accept the notice; returns (the page, the session token it holds)."""
    q = "?embed=1" if embed else ""
    page = client.get(f"/{lang}/c/gagnon{q}")
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    started = client.post(f"/{lang}/c/gagnon/start{q}", data={"form_token": token, "consent": "yes"})
    assert started.status_code == 200
    return started, re.search(r'name="session" value="([^"]+)"', started.text).group(1)


def bubbles(page_html: str) -> list[str]:
    return [html.unescape(b) for b in re.findall(r'<div class="chat-bubble"><p class="pre">(.*?)</p>', page_html, re.S)]


def say(client, session, text, lang="fr", **extra):
    return client.post(f"/{lang}/c/gagnon/send", data={"session": session, "message": text, **extra})


def test_consent_page_names_who_why_and_the_policy_and_refusing_stores_nothing(client, db, shop):
    page = client.get("/fr/c/gagnon")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Plomberie Gagnon" in text and "serveur de Capteo" in text
    assert 'href="/fr/privacy?b=gagnon"' in page.text
    assert 'name="session"' not in page.text and count(db, "chat_conversations") == 0
    # "No thanks" is a link: nothing posted, nothing stored, the other doors offered.
    declined = client.get("/fr/c/gagnon?declined=1")
    assert "Aucune conversation n'a été commencée et rien n'a été enregistré." in html.unescape(declined.text)
    assert 'href="/fr/f/gagnon"' in declined.text
    # A start posted without the consent (forged, or a robot): refused, still nothing stored.
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    refused = client.post("/fr/c/gagnon/start", data={"form_token": token})
    assert refused.status_code == 422 and count(db, "chat_conversations") == 0
    forged = client.post("/fr/c/gagnon/start", data={"form_token": token, "consent": ["yes", "no"]})
    assert forged.status_code == 422 and count(db, "chat_conversations") == 0
    english = client.get("/en/c/gagnon")
    assert "Capteo's own server" in html.unescape(english.text) and "Privacy policy" in english.text


def test_start_greets_and_keeps_the_session_in_the_page_only(client, db, shop):
    page, session = start(client, "en")
    said = bubbles(page.text)
    assert said[0].startswith("Hello! You are writing to Plomberie Gagnon.")
    assert said[1] == "How can we help you? Describe your request in a few words."
    assert session not in "".join(page.headers.get_list("set-cookie"))
    conversation = db.query_one("SELECT * FROM chat_conversations")
    assert conversation["session_hash"] == chat.session_hash(session) and conversation["language"] == "en"
    assert "Plomberie Gagnon" in conversation["consent_text"] and conversation["consent_version"]


STEPS = {
    "fr": ["Mon chauffe-eau fuit au sous-sol", "Hélène Côté", "514 555-0101", "non",
           "4521 rue Saint-Hubert H2J 2X7", "Maison", "3", "après 17 h"],
    "en": ["My water heater is leaking in the basement", "Helen Cote", "514 555-0101", "helen@example.com",
           "4521 Saint-Hubert Street H2J 2X7", "House", "no", "after 5 p.m."],
}
WORDS = {"fr": dict(summary="Voici ce que je vais transmettre à l'équipe :", phone_label="Téléphone",
                    change="Changer quelque chose", thanks="Merci ! Votre demande a été envoyée à Plomberie Gagnon.",
                    over="Votre demande a été envoyée à Plomberie Gagnon."),
         "en": dict(summary="Here is what I will send to the team:", phone_label="Phone",
                    change="Change something", thanks="Thank you! Your request has been sent to Plomberie Gagnon.",
                    over="Your request was sent to Plomberie Gagnon.")}


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_guided_conversation_with_one_correction_makes_exactly_one_lead(client, db, shop, lang):
    words = WORDS[lang]
    _, session = start(client, lang)
    for text in STEPS[lang]:
        page = say(client, session, text, lang)
        assert page.status_code == 200, page.text
    assert bubbles(page.text)[-1].startswith(words["summary"])
    # The summary's quick answers are buttons of a plain form (no JavaScript needed).
    assert f'value="change">{words["change"]}</button>' in html.unescape(page.text)
    page = say(client, session, "change", lang)
    assert f'value="fix:phone">{words["phone_label"]}</button>' in page.text
    page = say(client, session, "fix:phone", lang)
    # The tapped answer shows by its label, not its value.
    assert words["phone_label"] in bubbles(page.text) and "fix:phone" not in bubbles(page.text)
    page = say(client, session, "438 555-0199", lang)
    assert "555-0199" in bubbles(page.text)[-1] and count(db, "leads") == 0
    done = say(client, session, "yes", lang)
    assert bubbles(done.text)[-1].startswith(words["thanks"])
    assert words["over"] in html.unescape(done.text) and 'id="chat-composer"' not in done.text

    assert count(db, "leads") == 1
    lead = db.query_one("SELECT * FROM leads")
    assert lead["channel"] == "chat" and lead["language"] == lang and lead["business_id"] == shop["id"]
    assert lead["phone"] == "+14385550199" and lead["postal_code"] == "H2J 2X7"
    assert lead["first_name"] in ("Hélène", "Helen") and lead["last_name"] in ("Côté", "Cote")
    assert lead["need"] == STEPS[lang][0] and lead["callback_time"] == STEPS[lang][7]
    assert lead["email"] == (None if lang == "fr" else "helen@example.com")
    answers = {e["label_en"]: e["value"] for e in json.loads(lead["custom_fields"]).values()}
    assert answers["Type of property"] == "house"
    assert answers.get("Number of rooms") == (3 if lang == "fr" else None)
    assert lead["consent_text"] and lead["session_id"] == chat.session_hash(session)
    # The transcript is the whole thread, who said what, the wrong number and its correction.
    assert STEPS[lang][0] in lead["transcript"] and "514 555-0101" in lead["transcript"]
    assert "438 555-0199" in lead["transcript"]
    assert db.query_one("SELECT state, lead_id FROM chat_conversations") == {"state": "lead", "lead_id": lead["id"]}
    # The conversation is over: another message is refused (translated), no second lead.
    again = say(client, session, "yes", lang)
    assert again.status_code == 409 and count(db, "leads") == 1


def test_business_questions_are_answered_from_its_settings(client, db, shop):
    _, session = start(client, "fr")
    page = say(client, session, "Quels secteurs desservez-vous ?")
    assert "H2J, H2X, Laval" in bubbles(page.text)[-1]
    page = say(client, session, "Quand allez-vous me rappeler ?")
    assert "4 heures" in bubbles(page.text)[-1]


def test_how_long_in_french_is_a_question_about_the_delay(client, db, shop):
    _, session = start(client, "fr")
    page = say(client, session, "Combien de temps avant que vous me rappeliez ?")
    assert "4 heures" in bubbles(page.text)[-1]


def test_embedded_chat_may_be_framed_by_the_business_sites_only(client, db, shop):
    page = client.get("/fr/c/gagnon?embed=1")
    assert "frame-ancestors https://plomberie-gagnon.ca" in page.headers["content-security-policy"]
    assert 'class="site-header"' not in page.text and 'action="/fr/c/gagnon/start?embed=1"' in page.text
    assert "frame-ancestors 'none'" in client.get("/fr/c/gagnon").headers["content-security-policy"]
    started, session = start(client, "fr", embed=True)
    assert "frame-ancestors https://plomberie-gagnon.ca" in started.headers["content-security-policy"]
    sent = client.post("/fr/c/gagnon/send?embed=1", data={"session": session, "message": "Une fuite"})
    assert "frame-ancestors https://plomberie-gagnon.ca" in sent.headers["content-security-policy"]
    assert 'action="/fr/c/gagnon/send?embed=1#chat-anchor"' in sent.text


@pytest.mark.parametrize("lang, error", [
    ("fr", "Ce message est trop long : 1000 caractères au plus."),
    ("en", "This message is too long: 1000 characters at most."),
])
def test_too_long_a_message_is_refused_and_kept_in_the_box(client, db, shop, lang, error):
    _, session = start(client, lang)
    long_text = "Fuite " + "é" * 9994
    page = say(client, session, long_text, lang)
    assert page.status_code == 422
    assert error in html.unescape(page.text)
    box = re.search(r'<textarea id="chat-message"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert html.unescape(box.group(1)) == long_text
    assert 'aria-invalid="true"' in box.group(0)
    assert count(db, "chat_messages") == 2  # the greeting and the first question only
    empty = say(client, session, "   ", lang)
    assert empty.status_code == 422


def test_check_for_a_reply_without_javascript_sends_nothing(client, db, shop):
    _, session = start(client, "fr")
    page = say(client, session, "", check="1")
    assert page.status_code == 200 and count(db, "chat_messages") == 2


def test_unknown_session_is_404_and_a_session_opens_only_its_business(client, db, shop):
    make_business(db, "autre", "Autre Business", custom=False)
    _, session = start(client, "fr")
    assert say(client, "not-a-session", "Bonjour").status_code == 404
    assert client.post("/fr/c/autre/send", data={"session": session, "message": "x"}).status_code == 404


def test_quiet_conversation_with_a_phone_becomes_a_lead_and_one_without_is_closed(client, db, config, shop):
    _, with_phone = start(client, "fr")
    say(client, with_phone, "Une fuite sous l'évier")
    say(client, with_phone, "Luc Roy")
    say(client, with_phone, "514 555-0123")
    _, without = start(client, "fr")
    say(client, without, "Juste une question")
    later = clock.now() + timedelta(minutes=config.chat.quiet_minutes + 1)
    report = chat.sweep(db, config, lambda bid: businesses.get(db, bid), now=later)
    assert len(report.leads) == 1 and len(report.closed) == 1
    lead = db.query_one("SELECT * FROM leads")
    assert lead["phone"] == "+15145550123" and lead["channel"] == "chat"
    assert "Une fuite sous l'évier" in lead["transcript"]
    assert chat.sweep(db, config, lambda bid: businesses.get(db, bid), now=later).leads == []
    assert count(db, "leads") == 1


def test_team_lists_reads_takes_over_and_replies(client, db, shop):
    _, session = start(client, "fr")
    say(client, session, "Mon drain est bouché")
    conversation = db.query_one("SELECT id FROM chat_conversations")["id"]

    csrf = signed_in(client, db, shop["member"], shop["id"])
    listing = client.get("/fr/app/chats")
    assert listing.status_code == 200 and f'/fr/app/chats/{conversation}"' in listing.text
    assert 'href="/fr/app/chats" aria-current="page">Clavardage</a>' in listing.text
    thread = client.get(f"/fr/app/chats/{conversation}")
    assert "Mon drain est bouché" in html.unescape(thread.text) and "Prendre la conversation en charge" in thread.text
    assert re.search(r"<dt>Demande</dt><dd class=\"pre\">Mon drain est bouché</dd>", html.unescape(thread.text))
    assert db.query_one("SELECT count(*) AS n FROM audit_log WHERE action = 'chat.view' AND entity_id = ?",
                        (str(conversation),))["n"] == 1
    # htmx polls the thread: the new messages only, and the state line out of band.
    polled = client.get(f"/fr/app/chats/{conversation}?after=1",
                        headers={"hx-request": "true", "hx-target": "chat-poll"})
    assert "<html" not in polled.text and 'hx-swap-oob="true"' in polled.text

    taken = client.post(f"/fr/app/chats/{conversation}/take-over", data={"_csrf_token": csrf},
                        follow_redirects=False)
    assert taken.status_code == 303
    # The assistant stops: the visitor's next message gets no automated answer.
    before = count(db, "chat_messages")
    visitor = say(client, session, "Êtes-vous là ?")
    assert count(db, "chat_messages") == before + 1
    assert "Un membre de l'équipe vous répond." in html.unescape(visitor.text)
    assert 'name="check" value="1"' in visitor.text  # without JavaScript: "check for a reply"

    empty = client.post(f"/fr/app/chats/{conversation}/reply", data={"_csrf_token": csrf, "message": " "})
    assert empty.status_code == 422 and "Écrivez d'abord un message." in html.unescape(empty.text)
    sent = client.post(f"/fr/app/chats/{conversation}/reply",
                       data={"_csrf_token": csrf, "message": "Bonjour, ici Luc. Je peux passer demain."},
                       follow_redirects=False)
    assert sent.status_code == 303
    # The visitor's page polls (chat.js) and gets the team's reply.
    update = client.post("/fr/c/gagnon/poll", data={"session": session, "after": "0"},
                         headers={"x-capteo-chat": "1"})
    assert "Bonjour, ici Luc. Je peux passer demain." in html.unescape(update.text)
    assert "Équipe de Plomberie Gagnon" in html.unescape(update.text)
    # The owner sees who answered; another member cannot write in it.
    client.cookies.clear()
    csrf = signed_in(client, db, shop["owner"], shop["id"])
    owner_view = client.get(f"/fr/app/chats/{conversation}")
    assert "Luc a pris cette conversation en charge." in html.unescape(owner_view.text)
    refused = client.post(f"/fr/app/chats/{conversation}/reply", data={"_csrf_token": csrf, "message": "Moi aussi"})
    assert refused.status_code == 422
    made = client.post(f"/fr/app/chats/{conversation}/lead", data={"_csrf_token": csrf}, follow_redirects=False)
    assert made.status_code == 303 and count(db, "leads") == 1


def test_another_business_gets_404(client, db, shop):
    _, session = start(client, "fr")
    conversation = db.query_one("SELECT id FROM chat_conversations")["id"]
    other, _ = make_business(db, "autre", "Autre Business", custom=False)
    with db.write() as conn:
        outsider = businesses.add_user(conn, business_id=other, email="x@autre.test", password=PASSWORD)
    csrf = signed_in(client, db, outsider, other)
    assert client.get(f"/fr/app/chats/{conversation}").status_code == 404
    assert client.post(f"/fr/app/chats/{conversation}/take-over", data={"_csrf_token": csrf}).status_code == 404
    assert f"/fr/app/chats/{conversation}" not in client.get("/fr/app/chats").text


def test_lead_page_shows_the_conversation_and_audits_its_view(client, db, shop):
    _, session = start(client, "en")
    for text in STEPS["en"]:
        say(client, session, text, "en")
    say(client, session, "yes", "en")
    lead = db.query_one("SELECT id FROM leads")["id"]
    signed_in(client, db, shop["owner"], shop["id"])
    page = client.get(f"/en/app/leads/{lead}")
    text = html.unescape(page.text)
    thread = text[text.index('id="lead-chat"'):]
    assert "The chat conversation" in thread and STEPS["en"][0] in thread
    assert thread.index("Hello! You are writing to") < thread.index(STEPS["en"][0]) < thread.index("555-0101")
    conversation = db.query_one("SELECT id FROM chat_conversations")["id"]
    assert db.query_one("SELECT count(*) AS n FROM audit_log WHERE action = 'chat.view' AND entity_id = ?",
                        (str(conversation),))["n"] == 1
    # A lead from the form has no conversation section.
    with db.write() as conn:
        web = leads.create(conn, business_id=shop["id"], channel="web", actor="test", language="fr",
                           phone="+15145550100", need="x")["id"]
    assert "The chat conversation" not in client.get(f"/en/app/leads/{web}").text


def test_settings_save_the_chat_facts_and_show_the_chat_address(client, db, shop):
    csrf = signed_in(client, db, shop["owner"], shop["id"])
    page = client.get("/en/app/settings")
    assert "/en/c/gagnon" in page.text and "/en/c/gagnon?embed=1" in page.text
    base = {"_csrf_token": csrf, "name": "Plomberie Gagnon", "slug": "gagnon", "timezone": "America/Toronto",
            "language": "fr"}
    bad = client.post("/en/app/settings", data={**base, "service_area": "x" * 90, "callback_hours": "soon"})
    assert bad.status_code == 422
    assert "Enter a number of hours from 1 to 720, or leave it empty." in bad.text
    assert "List at most 100 places, each under 80 characters." in bad.text
    bad_fr = client.post("/fr/app/settings", data={**base, "callback_hours": "0"})
    assert bad_fr.status_code == 422 and "Entrez un nombre d'heures de 1 à 720" in html.unescape(bad_fr.text)
    ok = client.post("/en/app/settings", data={**base, "service_area": "h2x, H2Y ; Laval\nLongueuil",
                                               "callback_hours": "24"}, follow_redirects=False)
    assert ok.status_code == 303
    saved = businesses.get(db, shop["id"])
    assert saved["service_area"] == "H2X\nH2Y\nLaval\nLongueuil" and saved["callback_hours"] == 24
    cleared = client.post("/en/app/settings", data={**base, "service_area": "", "callback_hours": ""},
                          follow_redirects=False)
    assert cleared.status_code == 303
    saved = businesses.get(db, shop["id"])
    assert saved["service_area"] == "" and saved["callback_hours"] is None
