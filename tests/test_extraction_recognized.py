"""The rules extractor on real speech recognition output (Whisper base, greedy decoding,
of espeak-ng speech of the dev voicemails: tests/support/data/recognized/).

Recognised transcripts loop ("400 500 500 500 500 500"), garble greetings ("Oui mon
jour" for "Oui bonjour") and glue or split words. Each test quotes the recognised
transcript that showed a problem; the last tests run over every line of every file in
that folder and check that nothing extracted is something the caller did not say, as
whole words of the recognised transcript.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.extraction.grounding import address_grounded, email_grounded, name_grounded, postal_grounded, words
from app.extraction.phones import _normalize_caller_id, callback_phone, phone_candidates
from app.extraction.rules import extract

RECOGNIZED = Path(__file__).resolve().parent / "support" / "data" / "recognized"
FILES = sorted(RECOGNIZED.glob("*.jsonl"))


def _rows() -> list[dict]:
    rows = []
    for path in FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append(json.loads(line) | {"file": path.name})
    return rows


def _business(row: dict) -> str | None:
    return (row.get("business") or "").split(" (")[0] or None


# --- 1. grounding by whole words ----------------------------------------------------------------

DEV_001 = ("Oui mon jour, c'était l'un côté, et j'ai un dégâtre dans mon sous-sol à, le duo de sous-dremier de la "
           "salle de ramage à pétés pis à coup d'un tout. Fait que si vous pouvez m'en voir y quelqu'un ou plus vite, "
           "cette ou quatre mile s'accent, on va t'aient ou ça ou bien, à cheveux y de x7. Vous pouvez me rappeler "
           "aux s'accent, on s'accent, on s'accent, on s'accent, on ne voit pas, on ne voit pas. Merci.")


@pytest.mark.parametrize("value", ["OUR", "Ou", "Jour", "Mon", "Mon Jour", "Côt"])
def test_garbled_greeting_grounds_no_name(value):
    # A substring test found "OUR" in "jour" and "Ou" everywhere; "Jour" and "Mon" are words
    # of the transcript but a garbled "bonjour", never a name.
    assert name_grounded(value, DEV_001) is None


def test_a_name_the_recogniser_kept_is_still_grounded():
    transcript = ("Hi, this is Michael Chan. There are sparks coming out of my electrical panel when I turn on the "
                  "dryer and there's a burning smell. I shut off the main breaker. I'm at 612 mL on Eastern level, "
                  "H72L5. Could you call me Mac ASAP on myself? I'm 179-155-0132")
    assert name_grounded("Michael", transcript) == "Michael"
    assert name_grounded("Chan", transcript) == "Chan"
    assert address_grounded("612 Bellerose East", transcript) is None  # "612 mL on Eastern level"


def test_a_postal_code_cut_by_the_recogniser_is_not_grounded():
    # "H2J 2X7" became "à cheveux y de x7": the model may guess it, the transcript does not hold it.
    assert postal_grounded("H2J 2X7", DEV_001, None) is None


def test_an_email_garbled_into_pieces_is_not_grounded():
    transcript = ("Hi, this is Mark and Ray Lafember calling. I'm looking to get a quote for installing an EV charger "
                  "in my garage, a level 2. No rush, sometime in the next few weeks is fine. You can reach me at "
                  "438-555-0102 or by email at mod.fmware.outlook.com. Thanks.")
    assert email_grounded("ma.lefebvre@outlook.com", transcript, None) is None
    assert email_grounded("mod.fmware@outlook.com", transcript, None) is None  # no "@" written or said


# --- 2. a street address needs a civic number said as such and a street word --------------------


def test_phone_digits_are_never_a_civic_number():
    # No line of the greedy file shows it; this is the shape of the attack seen on a recognised
    # correction ("2218, non… 221-555-0168"): the tail of a phone number before a street.
    text = "Je suis au 2218, non attendez, rappelez-moi au 221-555-0168 rue Principale."
    assert extract(text, None).street_address is None
    assert extract("Mon numéro 514 555 0101 rue Saint-Hubert", None).street_address is None
    assert address_grounded("221-555-0168", text) is None
    assert extract("Rappelez-moi au 514-555-0101, 4521 rue Saint-Hubert.", None).street_address == \
        "4521 rue Saint-Hubert"  # a complete number, then the address


def test_a_garbled_civic_number_with_a_street_word_is_still_found():
    transcript = ("Bonjour, je m'appelle Karine le mieux, j'ai trouvé des punettes de l'idée de la chambre de Mouca. "
                  "J'aimerais m'avoir un rendez-vous pour un traitement, cette semaine si possible. Je suis au 2045 ch. "
                  "de Chamblé, j'y caste un peu d'élite. La plémois au 4455455, n'est pas un tout à l'aide si vous "
                  "pliez.")
    street = extract(transcript, "+14505550138").street_address
    assert street == "2045 ch. de Chamblé"
    assert address_grounded(street, transcript) == street


# --- 3. names ---------------------------------------------------------------------------------------


def test_garbled_greeting_gives_no_name():
    assert (extract(DEV_001, "+15145550101", business="Plomberie Gagnon & Fils").first_name,
            extract(DEV_001, "+15145550101").last_name) == (None, None)
    variant = "Oui Mon Jour. C'était l'un côté, j'ai un dégât dans mon sous-sol."
    assert extract(variant, None).first_name is None


def test_an_elided_verb_is_not_a_name():
    transcript = ("Oui bonjour, c'est faim. J'appelle Buba Voim, un prix pour changer si ferait-tu la porte passu? Mon "
                  "numéro 7, toi, sans soit sans 7, 5, 5, 5, 5, mais ou un, mais ou deux, je répète. Toi, sans soit "
                  "sans 7, 5, 5, 5, 5, mais ou un, mais ou deux. Même si...")
    e = extract(transcript, None, business="Portes et Fenêtres Lavoie")
    assert (e.first_name, e.last_name) == (None, None)  # was ("J'appelle", "Buba")


def test_a_name_inside_a_recognition_loop_is_dropped():
    transcript = ("Je suis le mot de mille sept sondis de l'Eine, je m'appelle Mémer, je suis le mot de mille sept "
                  "sondis de l'Eine, je m'appelle Mémer, je suis le mot de mille sept sondis de l'Eine, je m'appelle "
                  "Mémer, je m'appelle Mémer, je m'appelle Mémer, je m'appelle Mémer, je m'appelle Mémer")
    assert extract(transcript, "+14185550108").first_name is None


def test_a_word_cut_in_the_middle_is_not_a_name():
    transcript = ("Hi, my name is AudioHead and I'm a contractor and I need a post construction cleaning for a condo "
                  "we just finished in Brith and town, around 1100 square feet, for next Friday.")
    assert extract(transcript, "+14385550115").first_name is None  # was "AudioHead"


def test_spelled_name_with_accented_letters_is_whole():
    # Whisper writes spelled letters with their accent; the greedy file has no spelled name
    # left, the written dev data has ("Côté, C-O-T-E").
    e = extract("Bonjour, c'est Hélène D-E-S-C-H-Ê-N-E-S, rappelez-moi.", None)
    assert (e.first_name, e.last_name) == ("Hélène", "Deschênes")


def test_a_full_name_is_never_whole_in_first_name():
    e = extract("Hi, this is Marc-André-Lefebvre calling about an EV charger.", None)
    assert (e.first_name, e.last_name) == ("Marc-André", "Lefebvre")
    e = extract("Hi, this is Marc-André Lefebvre calling.", None)
    assert (e.first_name, e.last_name) == ("Marc-André", "Lefebvre")


def test_business_words_are_not_the_callers_name():
    e = extract("Oui bonjour, Gagnon et Fils? C'est pour un prix.", None, business="Plomberie Gagnon & Fils")
    assert e.first_name is None


# --- 4. phones: the caller id wins over a weakly supported spoken number ---------------------------


@pytest.mark.parametrize("transcript, caller_id", [
    ("Bonjour, c'est Sophie Bengeau de Repartini. Ma tème mopop est toute pleine de glaciers le souffle juste de "
     "Renfawa. J'ai quand même fait plein de sélectrique, fait que c'est pas la fin du monde, mais j'aimerais ça que "
     "vous passiez. Mon numéro c'est le 400 500 500 500 500 500 000 1 2 9. Merci.", "+14505550129"),
    ("Bonjour, mon oucette a dit la « Aïncric » J'aime effet nettoyer les coudres de ventilation de ma mémou Ou bien "
     "t'achètes et s'achemez des faits Cet un peu en galopaté bon Moumets au centre, quatre, quatre, quatre, quatre, "
     "quatre, quatre, cinq, quatre, quatre, quatre, quatre, quatre, quatre, quatre, quatre, quatre, quatre, quatre, "
     "quatre, quatre, quatre, quatre, quatre", "+14385550135"),
    ("Je suis ma maille à la plaie moi-même plutôt, 516,515,515,510,510,514. La graisse est 4,510,510,510. Merci "
     "de faire m'y t'inquié.", "+14505550103"),
    ("Oui, mon jour, c'est un force à protéger. J'aimerais que quelqu'un passe cette semaine. Mon numéro 7, 4, 100, "
     "355, 5, 5, 5, 5, 5, 1 de l'îte, 14,7,1,2,7 4,3,5,5,5,5,1,2,7 Même si...", "+15145550126"),
])
def test_a_number_assembled_in_a_loop_loses_to_the_caller_id(transcript, caller_id):
    assert callback_phone(transcript, caller_id) == caller_id


def test_a_loop_number_without_caller_id_is_not_returned():
    assert callback_phone("Mon numéro c'est le 400 500 500 500 500 500 000 1 2 9. Merci.", None) is None


def test_a_cued_number_outside_a_loop_still_wins():
    transcript = ("Hi, it's Ryan McLeod, I dropped off my Honda Civic on Tuesday for the breaks. Just wondering if it's "
                  "ready and what the final build is. You can call me at 438-555-0107. Sorry, 0106. 438-555-01-06 "
                  "Thanks")
    assert callback_phone(transcript, "+14385550106") == "+14385550106"
    assert callback_phone(transcript, "+15145550000") == "+14385550106"  # cued, corrected


def test_an_uncued_number_said_once_loses_to_the_caller_id():
    assert callback_phone("Je suis ma maille, 450 555 0199. Merci.", "+14505550103") == "+14505550103"
    assert callback_phone("Je suis ma maille, 450 555 0199. Merci.", None) == "+14505550199"
    assert callback_phone("450 555 0199, je répète, 450 555 0199", "+14505550103") == "+14505550199"  # twice


# --- 5. whole files: nothing extracted that was not said ---------------------------------------------


@pytest.mark.skipif(not FILES, reason="no recognised transcripts")
@pytest.mark.parametrize("row", _rows(), ids=lambda r: f"{r['file']}:{r['id']}")
def test_every_value_was_said_as_whole_words(row):
    transcript = row["transcript"]
    e = extract(transcript, row.get("caller_id"), business=_business(row))
    for name in (e.first_name, e.last_name):
        assert name is None or name_grounded(name, transcript) == name, name
    assert e.email is None or email_grounded(e.email, transcript, None) == e.email
    assert e.street_address is None or address_grounded(e.street_address, transcript) == e.street_address
    assert e.postal_code is None or postal_grounded(e.postal_code, transcript, None) == e.postal_code
    assert e.phone is None or e.phone == _normalize_caller_id(row.get("caller_id")) or \
        e.phone in phone_candidates(transcript)


@pytest.mark.skipif(not FILES, reason="no recognised transcripts")
def test_recognized_phone_accuracy_floor():
    """Measured 81.7 % (49/60) on the greedy file after the loop rules (78.3 % before); every
    remaining miss is a number the recogniser lost. A floor, not a target."""
    rows = [r for r in _rows() if r["file"] == "whisper-base-greedy.jsonl"]
    correct = sum(extract(r["transcript"], r.get("caller_id"), business=_business(r)).phone == r["expected"]["phone"]
                  for r in rows)
    assert correct / len(rows) >= 0.80


def test_words_helper_matches_the_bench():
    assert words("Oui mon jour") == ["oui", "mon", "jour"]


# --- loops and amounts, as Whisper writes them -------------------------------------------------

def test_a_civic_number_written_as_an_amount_is_an_address_and_grounded():
    # Whisper base, beam 5, on "4870 Cumberland Avenue, H4B 2K7".
    transcript = ("Hi, it's Claire Dolly. A pipe just burst in my basement, I think it flows overnight, there's "
                  "wagers praying everywhere. I don't know where the shut-off valve is. 4,870 Cumberland Avenue, "
                  "H4B2K7. Please call me right away, 514-555-0147.")
    got = extract(transcript, "+15145550147")
    assert got.street_address == "4870 Cumberland Avenue"
    assert address_grounded(got.street_address, transcript) == "4870 Cumberland Avenue"
    assert extract("Phone is 5,145,550,122. Thanks, talk soon.", None).phone == "+15145550122"


def test_a_loop_counts_once_for_the_language_and_the_need():
    # Whisper base, beam 5, on French speech: a loop of "so" is not English.
    transcript = ("Bonjour, c'est Francine Pochand de Saint-Géôme. Mon chauffeau électrique dans le bout d'eau chaude "
                  "depuis deux jours, j'ai checké le break-up et il est correct. C'est pas du tout chance mais "
                  "j'aimerais savoir que quelqu'un passe cette semaine. Moubume-ho, c'est le cas-t-à-so-so-so-so-so-"
                  "so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so-so")
    got = extract(transcript, "+14505550113")
    assert got.language == "fr"
    assert "so-so" not in (got.need or "")
