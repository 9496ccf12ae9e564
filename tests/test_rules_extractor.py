"""Rules layer of voicemail extraction (app/extraction/rules.py).

Sentences here are made up for the tests (not taken from the dev data), in Quebec French
and English, one rule at a time, then whole messages; the last test runs the extractor
over the dev data and guards the phone accuracy against regressions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.extraction.numbers import normalize_spoken_digits
from app.extraction.phones import phone_candidates
from app.extraction.rules import Extracted, extract

DEV_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "dev-data" / "voicemails.jsonl"


# --- spoken numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("said, digits", [
    ("cinq cent quatorze", "514"),
    ("huit cent dix-neuf", "819"),
    ("quatre cent cinquante", "450"),
    ("cinquante-cinq", "55"),
    ("soixante-dix", "70"),
    ("soixante et onze", "71"),
    ("soixante-dix-huit", "78"),
    ("quatre-vingts", "80"),
    ("quatre-vingt-dix-neuf", "99"),
    ("vingt et un", "21"),
    ("zéro", "0"),
    ("cinq-un-quatre", "514"),
    ("deux mille trois cents", "2300"),
    ("five one four", "514"),
    ("six one three", "613"),
    ("oh one oh seven", "0107"),
    ("double five", "55"),
    ("triple two", "222"),
    ("four fifty", "450"),
    ("seven eighty-eight", "788"),
    ("one hundred and twelve", "112"),
    ("nineteen", "19"),
])
def test_normalize_spoken_digits_numbers(said, digits):
    assert normalize_spoken_digits(said) == digits


def test_normalize_spoken_digits_keeps_text_and_punctuation():
    assert normalize_spoken_digits("au quatre cinq zéro, six six six, douze trente-quatre merci") == \
        "au 450, 666, 1234 merci"
    assert normalize_spoken_digits("call me at eight one nine, four four two") == "call me at 819, 442"


@pytest.mark.parametrize("text", ["J'ai un rendez-vous", "Oh, sorry, one more thing", "un char neuf"])
def test_lone_ambiguous_words_stay_words(text):
    assert normalize_spoken_digits(text) == text


def test_connectors_do_not_glue_two_numbers():
    assert normalize_spoken_digits("deux et trois") == "2 et 3"


# --- phone numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Rappelez-moi au 418 681-2277.", ["+14186812277"]),
    ("my number is 6137229187", ["+16137229187"]),
    ("joignez-moi au (819) 772.4410 svp", ["+18197724410"]),
    ("c'est le 1-800-463-2211", ["+18004632211"]),
    ("call me at +1 438 290 1175", ["+14382901175"]),
    ("c'est le quatre un huit, six huit un, vingt-deux soixante-dix-sept", ["+14186812277"]),
    ("Rappelez-moi au cinq-un-quatre, huit-six-deux, trois-trois-quatre-quatre.", ["+15148623344"]),
    ("c'est le cinq cent quatorze, huit cent soixante-deux, trente-trois quarante-quatre", ["+15148623344"]),
    ("It's six one three, double seven two, nine one eight seven", ["+16137729187"]),
    ("reach me at five one four, eight six two, triple three four", ["+15148623334"]),
    ("quatre cent cinquante, 678-1290 merci", ["+14506781290"]),
])
def test_phone_written_or_spoken(text, expected):
    assert phone_candidates(text) == expected


def test_phone_two_different_numbers_in_order():
    text = "Mon cell c'est 514 862 3344, sinon au bureau 438 290 1175."
    assert phone_candidates(text) == ["+15148623344", "+14382901175"]


def test_phone_repeated_once():
    assert phone_candidates("c'est 418 681 2277, je répète, 418 681 2277") == ["+14186812277"]
    assert phone_candidates("613-722-9187, 613-722-9187") == ["+16137229187"]


@pytest.mark.parametrize("text, expected", [
    ("mon numéro c'est 418 681 2277, non, 2278", "+14186812278"),
    ("Rappelez-moi au 450 678 1290, pardon, c'est 1209.", "+14506781209"),
    ("you can call 613 722 9187... sorry, 9178", "+16137229178"),
    ("my number is 819 772 4410, I mean 819 772 4401", "+18197724401"),
    ("c'est 514 862 3344, excusez, je veux dire 438 862 3344", "+14388623344"),
    ("c'est le 418... non attendez, 581 681 2277", "+15816812277"),
])
def test_phone_corrections(text, expected):
    assert phone_candidates(text) == [expected]


@pytest.mark.parametrize("text", [
    "Rappelez-moi au 819 772 4410 poste 35.",
    "Call me back at 819-772-4410, extension 7, thanks.",
    "c'est le 819 772 4410 poste vingt-deux",
    "819 772 4410 ext. 112",
])
def test_phone_extensions_are_not_part_of_the_number(text):
    assert phone_candidates(text) == ["+18197724410"]


@pytest.mark.parametrize("text", ["Vous pouvez me rappeler au 418 681 22", "call me at six one three, seven two"])
def test_phone_cut_off_is_ignored(text):
    assert phone_candidates(text) == []


def test_phone_address_and_postal_code_digits_are_not_numbers():
    assert phone_candidates("Je reste au 1290 rue Jarry, H2P 1W3, depuis 12 ans.") == []


def test_phone_said_number_wins_over_caller_id():
    e = extract("Bonjour, rappelez-moi sur mon cell au 581 681 2277.", "+14186812200")
    assert e.phone == "+15816812277"


def test_phone_caller_id_when_none_said():
    assert extract("Hi, please call me back, thanks.", "+16137229187").phone == "+16137229187"
    assert extract("Rappelez-moi au numéro affiché.", "4186812277").phone == "+14186812277"


def test_phone_none_when_neither():
    assert extract("Allô, je vais rappeler plus tard.", None).phone is None
    assert extract("Allô, je vais rappeler plus tard.", "anonymous").phone is None


def test_phone_cut_off_falls_back_to_caller_id():
    assert extract("Call me back at 613 722 91", "+16137220000").phone == "+16137220000"


def test_phone_prefers_the_callback_number():
    text = "J'appelle du bureau, 438 290 1175, mais rappelez-moi au 514 862 3344."
    assert extract(text, None).phone == "+15148623344"


# --- postal codes ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Je suis dans le coin de G1R 4P5.", "G1R 4P5"),
    ("my postal code is k2p1l4", "K2P 1L4"),
    ("code postal J8Y-6T2", "J8Y 6T2"),
    ("mon code postal c'est j huit y, six t deux", "J8Y 6T2"),
    ("code postal: G comme Gaston, un, R comme Robert, quatre, P comme Pierre, cinq", "G1R 4P5"),
    ("it's Kilo Two Papa, One Lima Four", "K2P 1L4"),
    ("Hotel Three Bravo, Four Kilo One", "H3B 4K1"),
    ("H, trois, X, deux, W, neuf", "H3X 2W9"),
    ("c'est H3X 2W9, non pardon, H3X 2W8", "H3X 2W8"),
])
def test_postal_code_written_or_spelled(text, expected):
    assert extract(text, None).postal_code == expected


@pytest.mark.parametrize("text", [
    "J'ai 2 A 3 B 4 C",  # starts with a digit
    "code postal D1A 2B3",  # D is never a first letter
    "code postal H3B 4K",  # cut off
])
def test_postal_code_invalid_is_none(text):
    assert extract(text, None).postal_code is None


# --- emails -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Écrivez-moi à Luc.Pelletier@Videotron.ca merci", "luc.pelletier@videotron.ca"),
    ("mon courriel c'est luc point pelletier arobas videotron point ca", "luc.pelletier@videotron.ca"),
    ("mon courriel c'est luc tiret pelletier arobase gmail point com.", "luc-pelletier@gmail.com"),
    ("my email is sam underscore wu at outlook dot com. Thanks", "sam_wu@outlook.com"),
    ("it's d k w at protonmail dot me", "dkw@protonmail.me"),
    ("c'est b-o-b arobas sympatico point ca", "bob@sympatico.ca"),
    ("email me at renos four u at yahoo dot ca", "renos4u@yahoo.ca"),  # digits said after a word join it
    ("it's jordan dot lee ninety at gmail dot com", "jordan.lee90@gmail.com"),
    ("c'est jblackwood soixante-dix-sept arobas yahoo point ca", "jblackwood77@yahoo.ca"),
    ("my email is w dot park at icloud dot com", "w.park@icloud.com"),
    ("courriel: info arobas toitures-boucher point qc point ca", "info@toitures-boucher.qc.ca"),
    ("send it to kim dot lee at shaw dot ca or call", "kim.lee@shaw.ca"),
])
def test_email_written_or_spoken(text, expected):
    assert extract(text, None).email == expected


@pytest.mark.parametrize("text", [
    "I'm at 45 Elm Street, call me.",
    "Je suis au point où j'ai besoin d'aide.",
    "Call me at home at five.",
])
def test_email_none_without_a_real_address(text):
    assert extract(text, None).email is None


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, first, last", [
    ("Bonjour, c'est Ginette Lavallée, j'appelle pour un prix.", "Ginette", "Lavallée"),
    ("Oui allô, mon nom c'est Jean-Sébastien Ouimet-Lacroix.", "Jean-Sébastien", "Ouimet-Lacroix"),
    ("Bonjour, je m'appelle Aurélie Bédard.", "Aurélie", "Bédard"),
    ("Bonsoir, ici Mathieu Grenier, je vous appelle pour un devis.", "Mathieu", "Grenier"),
    ("Allô, moi c'est Karim, pis mon nom de famille c'est Haddad.", "Karim", "Haddad"),
    ("Bonjour, Mélissa Girard à l'appareil.", "Mélissa", "Girard"),
    ("Oui bonjour, ici madame Lachapelle, je voudrais un rendez-vous.", None, "Lachapelle"),
    ("Hello, this is Mrs. Eleanor Voss, I need my gutters cleaned.", "Eleanor", "Voss"),
    ("Bonjour, je m'appelle Marie Josée Lalonde.", "Marie-Josée", "Lalonde"),
    ("Hi, my name is Aisha Mbeki, I need a quote.", "Aisha", "Mbeki"),
    ("Hey, it's Connor, call me back.", "Connor", None),
    ("Hello, this is Deborah McAllister calling about my roof.", "Deborah", "McAllister"),
    ("Hi, I'm Jessica Nguyen and I need a plumber.", "Jessica", "Nguyen"),
    ("Good morning, Ryan O'Connor here, need a quote for a fence.", "Ryan", "O'Connor"),
    ("Hi there, it's Noémie, Noémie Turcotte.", "Noémie", "Turcotte"),
])
def test_name_self_introductions(text, first, last):
    e = extract(text, None)
    assert (e.first_name, e.last_name) == (first, last)


@pytest.mark.parametrize("text, first, last", [
    ("Bonjour, c'est Denise Leclair, L-E-C-L-A-I-R.", "Denise", "Leclair"),
    ("Bonjour, mon nom c'est Annie Lebland, B-L-A-N-C.", "Annie", "Blanc"),  # the spelling wins
    ("My name is Omar Siddiqui, that's S-I-D-D-I-Q-U-I.", "Omar", "Siddiqui"),
    ("Bonjour, c'est Julie Côté, C-O-T-E.", "Julie", "Côté"),  # spelling without accents confirms
    ("mon nom c'est Lise Dubé, D comme David, U, B comme Bernard, E", "Lise", "Dubé"),
])
def test_name_spelled_letter_by_letter(text, first, last):
    e = extract(text, None)
    assert (e.first_name, e.last_name) == (first, last)


def test_name_said_alone_as_a_sign_off():
    e = extract("Mon évier est bouché, rappelez-moi au 819 772 4410. Thérèse Labrecque.", None)
    assert (e.first_name, e.last_name) == ("Thérèse", "Labrecque")
    e = extract("The fence fell down in the storm. Gordon Blake, 613 722 9187.", None)
    assert (e.first_name, e.last_name) == ("Gordon", "Blake")


def test_name_first_name_spelled_then_family_name():
    e = extract("Hi, this is Ann, A-N-N, Whitfield, calling about the deck.", None)
    assert (e.first_name, e.last_name) == ("Ann", "Whitfield")


@pytest.mark.parametrize("text", [
    "Bonjour, c'est pour un rendez-vous. C'est urgent.",
    "Oui allô Francine, c'est moi, rappelle-moi.",
    "Bonjour, c'est la garderie des Petits Pas, on aimerait un prix.",
    "Hi, this is Tremblay Roofing calling back about the invoice.",
    "Hi, it's about my furnace, please call back.",
    "Allô, c'est Lundi que je voudrais venir.",
    "Hello, is this the bakery? I want to order a cake.",
    "Bonjour, j'appelle pour une soumission, l'adresse c'est Boisbriand.",
    "Rappelez-moi s'il vous plaît.",
    "Merci, bonjour. Bonne Journée.",
    "Hi, I'm Looking for a quote.",
    "Hi, this is Dr. Patel's office calling about an appointment.",
])
def test_no_name_from_common_words_or_businesses(text):
    e = extract(text, None)
    assert (e.first_name, e.last_name) == (None, None)


def test_business_name_is_not_the_callers_name():
    e = extract("Oui allô, c'est Rénald Laplante?", None, business="Rénald Laplante Excavation")
    assert e.first_name is None
    e = extract("Bonjour, c'est Luc Gagnon, un client.", None, business="Plomberie Gagnon")
    assert (e.first_name, e.last_name) == ("Luc", "Gagnon")  # a common surname stays a surname


def test_name_caller_speaking_for_a_business():
    e = extract("Bonjour, ici Sylvain de chez Béton Provincial, on a besoin d'un prix.", None)
    assert (e.first_name, e.last_name) == ("Sylvain", None)
    e = extract("Hi, this is Rachel from Lakeshore Dental, we need our carpets cleaned.", None)
    assert (e.first_name, e.last_name) == ("Rachel", None)


# --- street address -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Je suis au 1234 rue Notre-Dame Ouest à Lachine.", "1234 rue Notre-Dame Ouest"),
    ("c'est au 55, boulevard René-Lévesque Est, à Québec", "55 boulevard René-Lévesque Est"),
    ("au 7 chemin du Lac-Noir, à Sainte-Adèle", "7 chemin du Lac-Noir"),
    ("on est au 1200 rang Saint-Joseph", "1200 rang Saint-Joseph"),
    ("au 12-450 avenue du Parc", "12-450 avenue du Parc"),
    ("c'est au quatre cent vingt rue Principale", "420 rue Principale"),
    ("I live at 99 Elm Street, unit 4, in Westmount.", "99 Elm Street, unit 4"),
    ("the address is 3400 Côte-des-Neiges Road", "3400 Côte-des-Neiges Road"),
    ("we're at 250 Wellington Drive, Gatineau", "250 Wellington Drive"),
    ("it's 18 Birch Lane", "18 Birch Lane"),
    ("c'est au 301 rue Cartier Nord... non, Sud, 301 rue Cartier Sud", "301 rue Cartier Sud"),
])
def test_street_address(text, expected):
    assert extract(text, None).street_address == expected


@pytest.mark.parametrize("text", [
    "Je suis sur la rue Principale, à côté de l'église.",
    "La maison a 25 ans.",
    "Rappelez-moi au 514 862 3344.",
    "I'm in Beaconsfield.",
])
def test_street_address_none(text):
    assert extract(text, None).street_address is None


# --- urgency ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Mon sous-sol est inondé, l'eau monte!",
    "On a un dégât d'eau dans la cuisine.",
    "Ça fait deux jours qu'on a pu de chauffage pis il fait froid.",
    "Notre fournaise est en panne depuis cette nuit.",
    "Ça sent le gaz dans le garage.",
    "Il y a de la fumée qui sort du panneau électrique.",
    "Je suis barré dehors avec mon bébé.",
    "There's water everywhere, a pipe burst under the sink.",
    "We have no heat since last night.",
    "I'm locked out of my car.",
    "There's a strong gas smell in the basement.",
    "Please come as soon as you can, it's an emergency.",
    "I need someone right away.",
    "There's water dripping from the ceiling in the kitchen.",
    "On a une infiltration d'eau par le toit du garage.",
    "Mon auto est pognée sur l'autoroute, j'ai besoin d'un remorquage.",
    "My toilet is overflowing and won't stop.",
])
def test_urgent(text):
    assert extract(text, None).urgent is True


@pytest.mark.parametrize("text", [
    "C'est pas urgent, j'aimerais juste un prix pour un muret.",
    "C'est pas super pressé, dans les prochaines semaines.",
    "Il n'y a pas de dégât d'eau, c'est juste pour une question.",
    "J'aimerais faire installer des détecteurs de fumée.",
    "No rush, sometime next month is fine.",
    "It's not urgent, the faucet drips a little.",
    "I'd like a quote for a fireplace inspection.",
    "Ma sécheuse fonctionne plus, rappelez-moi quand vous aurez le temps.",
    "I'm at work right now, call me after five.",
])
def test_not_urgent(text):
    assert extract(text, None).urgent is False


def test_safety_beats_pas_urgent():
    assert extract("Ça sent un peu le gaz près du poêle, c'est pas urgent je pense.", None).urgent is True


# --- language, need ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text, language", [
    ("Bonjour, j'aimerais avoir un prix pour faire réparer ma galerie. Merci!", "fr"),
    ("Hi, I'd like a price to fix my deck. Thanks!", "en"),
    ("Bonjour, euh, sorry, I don't speak French well, I need a plumber for my kitchen sink.", "en"),
    ("Allô, j'ai un breaker qui saute tout le temps, so can you call me back? Merci.", "fr"),
])
def test_language(text, language):
    assert extract(text, None).language == language


def test_need_is_the_request_sentence_and_short():
    e = extract("Bonjour, c'est Ginette Lavallée. J'aimerais avoir une soumission pour repeindre ma cuisine. "
                "Mon numéro c'est le 418 681 2277. Merci, bonne journée!", None)
    assert e.need == "J'aimerais avoir une soumission pour repeindre ma cuisine."
    long = extract("Hi. I need " + "a very long description of the work " * 20 + ".", None)
    assert long.need is not None and len(long.need) <= 200


# --- whole messages ------------------------------------------------------------------------------------


def test_whole_message_french():
    text = ("Oui bonjour, euh, c'est Roxanne Tessier. J'ai de l'eau qui rentre dans le sous-sol par la fenêtre, "
            "ça coule partout. Je suis au 872 rue des Ormeaux à Blainville, J7C, quatre R, six. "
            "Rappelez-moi au quatre cinq zéro, six six six, douze trente-quatre, ou par courriel roxanne point "
            "tessier arobas gmail point com. Merci.")
    e = extract(text, "+14505550000")
    assert e.as_dict() == {
        "first_name": "Roxanne", "last_name": "Tessier", "phone": "+14506661234",
        "email": "roxanne.tessier@gmail.com", "postal_code": "J7C 4R6",
        "street_address": "872 rue des Ormeaux", "need": e.need, "urgent": True, "language": "fr",
    }
    assert e.need and "eau" in e.need


def test_whole_message_english():
    text = ("Hi, my name is Gordon Fraser, F-R-A-S-E-R. I'd like an estimate to replace the shingles on my garage "
            "roof, no rush, sometime this summer. I'm at 61 Cedar Avenue, Pointe-Claire, H9S 4H2. "
            "Call me at six one three, two two four, seven seven eight one, extension 12. Thanks.")
    e = extract(text, None)
    assert (e.first_name, e.last_name, e.phone, e.email) == ("Gordon", "Fraser", "+16132247781", None)
    assert (e.postal_code, e.street_address, e.urgent, e.language) == ("H9S 4H2", "61 Cedar Avenue", False, "en")


def test_not_a_request_still_returns_what_it_contains():
    e = extract("Bonjour, ici Kevin de Solutions Web Plus, on offre des sites internet pas chers. "
                "Rappelez-moi au 438 290 1175.", "+14382901175")
    assert (e.first_name, e.phone, e.urgent, e.language) == ("Kevin", "+14382901175", False, "fr")
    e = extract("Hi, sorry, wrong number. Bye.", "+16137229187")
    assert (e.first_name, e.last_name, e.phone, e.urgent) == (None, None, "+16137229187", False)


def test_empty_and_hallucinated_transcripts():
    e = extract("", None)
    assert isinstance(e, Extracted) and e.phone is None and e.urgent is False and e.language == "fr"
    e = extract("Sous-titrage Société Radio-Canada", "+15148623344")
    assert e.phone == "+15148623344" and e.first_name is None


def test_as_dict_has_the_dev_data_keys():
    assert list(extract("Bonjour", None).as_dict()) == [
        "first_name", "last_name", "phone", "email", "postal_code", "street_address", "need", "urgent", "language",
    ]


# --- dev data regression guard -----------------------------------------------------------------------


@pytest.mark.skipif(not DEV_DATA.exists(), reason="dev data not present")
def test_dev_data_runs_and_phone_accuracy_floor():
    """Runs over every dev voicemail without error. The phone accuracy measured when this
    was written was 100 % (60/60), on data the rules were developed against; the floor
    is set lower on purpose: a guard against regressions, not a target."""
    rows = [json.loads(line) for line in DEV_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert rows
    correct = 0
    for row in rows:
        e = extract(row["transcript"], row.get("caller_id"))
        assert e.language in ("fr", "en")
        assert e.need is None or len(e.need) <= 200
        correct += e.phone == row["expected"]["phone"]
    assert correct / len(rows) >= 0.90
