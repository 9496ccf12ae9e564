"""Grounding of a language model's answer (app/extraction/grounding.py): every value
must be said as whole words of the transcript; each rule with its attack and its
positive counterpart, then the per-field merge policy."""

from __future__ import annotations

import pytest

from app.extraction import grounding
from app.extraction.grounding import (
    DEFAULT_POLICY,
    MODEL_FIELDS,
    address_grounded,
    email_grounded,
    merge,
    name_grounded,
    phone_grounded,
    postal_grounded,
    text_grounded,
    words,
)


def test_words_are_accent_blind_and_split_on_apostrophes_hyphens_and_digits():
    assert words("Marc-André O'Neil, 12B rue Côté") == ["marc", "andre", "o", "neil", "12", "b", "rue", "cote"]
    assert words("ÉRIC") == ["eric"]


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, transcript", [
    ("OUR", "Oui mon jour, c'était l'un côté"),  # a substring of "jour", not a word
    ("Ou", "Oui mon jour, c'était l'un côté, ou bien"),  # two letters: never a name
    ("Th", "Hi, this is Theresa"),
    ("Jour", "Oui mon jour, c'était l'un côté"),  # a garbled greeting, a whole word but not a name
    ("Mon Jour", "Oui mon jour, c'était l'un côté"),
    ("Bonjour", "Bonjour, c'est pour un prix"),
    ("Desch", "c'est Hélène, D-E-S-C-H-Ê-N-E-S"),  # part of a spelling, not the whole of it
    ("Tremblay", "Bonjour c'est Marc Roy"),
    ("Royal", "Bonjour c'est Marc Roy"),
])
def test_name_not_grounded(value, transcript):
    assert name_grounded(value, transcript) is None


@pytest.mark.parametrize("value, transcript", [
    ("Hélène", "Oui bonjour, c'est Hélène Côté"),
    ("Côté", "Oui bonjour, c'est Helene Cote"),  # accent-blind
    ("Marc-André", "this is Marc André Lefebvre"),
    ("O'Brien", "it's Linda O'Brien"),
    ("Blanc", "mon nom c'est Annie, B-L-A-N-C"),  # spelled as one whole run
    ("Deschênes", "c'est Hélène, D-E-S-C-H-Ê-N-E-S"),
    ("Roy", "Bonjour c'est Marc Roy"),
])
def test_name_grounded(value, transcript):
    assert name_grounded(value, transcript) == value


def test_text_grounded_is_whole_words():
    assert text_grounded("OUR", "Oui mon jour") is None
    assert text_grounded("mon jour", "Oui mon jour") == "mon jour"
    assert text_grounded("jour oui", "Oui mon jour") is None  # in order, contiguous


# --- street address -----------------------------------------------------------------------------


@pytest.mark.parametrize("value, transcript", [
    ("221-555-0168", "Rappelez-moi au 221-555-0168 merci"),  # a bare number sequence
    ("2218 rue Principale", "c'est 2218, non, au 221-555-0168 rue Principale"),
    ("0168 rue Principale", "au 221-555-0168 rue Principale"),  # the tail of a phone number
    ("0101 rue Saint-Hubert", "au 514 555 0101 rue Saint-Hubert"),
    ("221 555 0168 rue Principale", "au 221 555 0168 rue Principale"),
    ("45 Main", "I'm at 45 Main, call me"),  # no street word
    ("4521 rue Saint-Hubert", "au 4521 rue Saint-Denis"),
    ("4521 rue Saint-Hubert", "au 4521, c'est sur la rue Saint-Hubert"),  # not right after the number
    ("12 rue Inventée", "Bonjour c'est Marc Roy, rappelez-moi au 514 555 0101"),
])
def test_address_not_grounded(value, transcript):
    assert address_grounded(value, transcript) is None


@pytest.mark.parametrize("value, transcript", [
    ("4521 rue Saint-Hubert", "c'est au 4521 rue Saint-Hubert, H2J 2X7"),
    ("4521 rue Saint-Hubert", "c'est au 4521, rue Saint-Hubert"),
    ("420 rue Principale", "c'est au quatre cent vingt rue Principale"),  # number words
    ("99 Elm Street, unit 4", "I live at 99 Elm Street, unit 4, in Westmount"),
    ("612 Bellerose East", "I'm at 612 Bellerose East in Laval"),
    ("4521 rue Saint-Hubert", "Rappelez-moi au 514-555-0101, 4521 rue Saint-Hubert"),
])
def test_address_grounded(value, transcript):
    assert address_grounded(value, transcript) == value


# --- email --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, transcript", [
    # every piece said, but scattered: not an address that was said
    ("luc.pelletier@videotron.ca", "Luc ici, je suis client de Videotron depuis longtemps, Pelletier, c'est ça, point ca"),
    ("mail@gmail.com", "email me at gmail dot com"),  # "mail" is inside "email"
    ("luc.pelletier@videotron.ca", "luc pelletier videotron point ca"),  # no "@" said
    ("bob@sympatico.ca", "Bob arobas sympatico"),  # no domain end
    ("monjour@gmail.com", "Oui mon jour arobas gmail point com"),  # two words are not one piece
])
def test_email_not_grounded(value, transcript):
    assert email_grounded(value, transcript, None) is None


@pytest.mark.parametrize("value, transcript", [
    ("luc.pelletier@videotron.ca", "mon courriel c'est luc point pelletier arobas videotron point ca"),
    ("luc.pelletier@videotron.ca", "Écrivez-moi à Luc.Pelletier@Videotron.ca merci"),
    ("sam_wu@outlook.com", "my email is sam underscore wu at outlook dot com"),
    ("dkw@protonmail.me", "it's d k w at protonmail dot me"),  # spelled letters
    ("jblackwood77@yahoo.ca", "c'est jblackwood soixante-dix-sept arobas yahoo point ca"),
    ("luc-pelletier@gmail.com", "luc tiret pelletier arobase gmail point com"),
])
def test_email_grounded(value, transcript):
    assert email_grounded(value, transcript, None) == value


def test_email_equal_to_the_rules_value_is_grounded():
    assert email_grounded("a.b@c.com", "rien", "a.b@c.com") == "a.b@c.com"


# --- postal code, phone -------------------------------------------------------------------------


@pytest.mark.parametrize("value, transcript", [
    ("H2J 2X7", "c'est au 4521 rue Saint-Hubert, H2J 2X7."),
    ("H2J 2X7", "code postal h deux j deux x sept"),
    ("K2P 1L4", "it's Kilo Two Papa, One Lima Four"),
])
def test_postal_grounded(value, transcript):
    assert postal_grounded(value, transcript, None) == value


@pytest.mark.parametrize("value, transcript", [
    ("H2J 2X7", "H2J, c'est dans mon secteur, 2X7"),  # the halves are not one run
    ("H2J 2X7", "Bonjour, j'ai 2 chats"),
    ("H2X 1Y4", "Bonjour c'est Marc Roy, rappelez-moi au 514 555 0101"),
])
def test_postal_not_grounded(value, transcript):
    assert postal_grounded(value, transcript, None) is None


def test_postal_equal_to_the_rules_value_is_grounded():
    assert postal_grounded("h2j2x7", "rien", "H2J 2X7") == "H2J 2X7"


def test_phone_grounded_by_the_transcript_or_the_caller_id():
    transcript = "rappelez-moi au 514 555 0101"
    assert phone_grounded("514-555-0101", transcript, None) == "+15145550101"
    assert phone_grounded("438 555 0199", transcript, "+15145550177") is None
    assert phone_grounded("+1 514-555-0177", transcript, "+15145550177") == "+15145550177"
    assert phone_grounded("555 0101", transcript, None) is None


# --- merge policy ---------------------------------------------------------------------------------

TRANSCRIPT = ("Bonjour c'est Marc Roy, au 4521 rue Saint-Hubert, H2J 2X7, courriel marc point roy arobas "
              "gmail point com, rappelez-moi au 514 555 0101 ou au 438 555 0199.")
BASE = {"first_name": None, "last_name": "Roy", "phone": "+15145550101", "email": None, "postal_code": None,
        "street_address": None, "need": "Rappel", "urgent": False, "language": "fr"}
ANSWER = {"first_name": "Marc", "last_name": "Roy", "callback_phone": "438 555 0199",
          "email": "marc.roy@gmail.com", "postal_code": "H2J 2X7", "street_address": "4521 rue Saint-Hubert",
          "need": "Réparer une fuite", "urgent": True}


def test_model_fields_and_default_policy():
    assert MODEL_FIELDS == ("first_name", "last_name", "phone", "email", "postal_code", "street_address",
                            "need", "urgent")
    assert DEFAULT_POLICY["need"] == DEFAULT_POLICY["urgent"] == "rules"
    assert all(DEFAULT_POLICY[f] == "fill" for f in MODEL_FIELDS if f not in ("need", "urgent"))


def test_default_policy_fills_only_what_the_rules_missed():
    merged = merge(BASE, ANSWER, TRANSCRIPT, None)
    assert merged["first_name"] == "Marc" and merged["email"] == "marc.roy@gmail.com"
    assert merged["postal_code"] == "H2J 2X7" and merged["street_address"] == "4521 rue Saint-Hubert"
    assert merged["phone"] == "+15145550101"  # the rules had one: kept
    assert merged["need"] == "Rappel" and merged["urgent"] is False  # need and urgent: rules
    assert merged["language"] == "fr"


def test_model_policy_replaces_with_a_grounded_value_only():
    policy = {f: "model" for f in MODEL_FIELDS}
    merged = merge(BASE, ANSWER, TRANSCRIPT, None, policy=policy)
    assert merged["phone"] == "+14385550199" and merged["need"] == "Réparer une fuite" and merged["urgent"] is True
    invented = dict(ANSWER, last_name="Tremblay", callback_phone="819 555 0000", urgent=False)
    merged = merge(dict(BASE, urgent=True), invented, TRANSCRIPT, None, policy=policy)
    assert merged["last_name"] == "Roy" and merged["phone"] == "+15145550101"  # not grounded: the rules stay
    assert merged["urgent"] is False  # "model" on urgent: the model's boolean replaces the rules'


def test_rules_policy_ignores_the_model():
    merged = merge(BASE, ANSWER, TRANSCRIPT, None, policy={f: "rules" for f in MODEL_FIELDS})
    assert merged == BASE


def test_urgent_fill_is_rules_never_an_or():
    merged = merge(BASE, ANSWER, TRANSCRIPT, None, policy={"urgent": "fill"})
    assert merged["urgent"] is False


def test_need_fill_only_when_the_rules_have_none():
    assert merge(BASE, ANSWER, TRANSCRIPT, None, policy={"need": "fill"})["need"] == "Rappel"
    assert merge(dict(BASE, need=None), ANSWER, TRANSCRIPT, None, policy={"need": "fill"})["need"] == \
        "Réparer une fuite"


def test_a_full_name_given_as_first_name_is_split():
    merged = merge(dict(BASE, last_name=None), {"first_name": "Marc Roy", "last_name": None}, TRANSCRIPT, None)
    assert (merged["first_name"], merged["last_name"]) == ("Marc", "Roy")
    transcript = "Hi, this is Marc-André Lefebvre calling."
    merged = merge(dict(BASE, last_name=None), {"first_name": "Marc-André Lefebvre"}, transcript, None)
    assert (merged["first_name"], merged["last_name"]) == ("Marc-André", "Lefebvre")


def test_attacks_do_not_reach_the_lead():
    transcript = "Oui mon jour, c'était l'un côté, rappelez-moi au 221-555-0168."
    answer = {"first_name": "OUR", "last_name": "Ou", "street_address": "221-555-0168",
              "email": "jour@cote.com", "postal_code": "H2J 2X7"}
    merged = merge(dict(BASE, last_name=None), answer, transcript, None, policy={f: "model" for f in MODEL_FIELDS})
    assert merged["first_name"] is None and merged["last_name"] is None
    assert merged["street_address"] is None and merged["email"] is None and merged["postal_code"] is None


def test_an_answer_of_the_wrong_shape_is_no_answer():
    """A model (or a chat format that ignores the schema) answering a number, a list or an
    object where text was asked: dropped field by field, never an exception."""
    base = {"first_name": None, "last_name": None, "phone": "+15145550101", "email": None, "postal_code": None,
            "street_address": None, "need": "x", "urgent": False, "language": "fr"}
    policy = dict.fromkeys(grounding.MODEL_FIELDS, "model")
    weird = {"callback_phone": 5145550101, "email": ["a@b.ca"], "street_address": {"n": 1}, "postal_code": 12,
             "need": 3, "urgent": "yes", "first_name": ["Luc"], "last_name": {"x": 1}}
    merged = grounding.merge(base, weird, "Bonjour c'est Luc, 514 555 0101", None, policy=policy)
    assert merged == base
