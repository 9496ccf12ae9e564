"""The caller's first and last name.

Names come after self-introduction cues ("c'est", "je m'appelle", "this is", "… à
l'appareil"); Whisper capitalises proper nouns, so a capital letter is required, and a
small stopword list removes the common words that follow "c'est" with a capital (days,
places, "Moi", trade words…). A spelled name ("Roy, R-O-Y") is what the caller wants
written, and wins.
"""

from __future__ import annotations

import re

from app.extraction.spelled import spelled_after, spelled_span
from app.extraction.text import fold, inside_loop, loop_spans

# Patterns for a capitalised name and a title, shared with street names (addresses.py)
# and the self-introduction left out of the need (need.py).
UP = "A-ZÀ-ÖØ-ÞŒ"
LO = "a-zß-öø-ÿœ"
# "Hélène", "O'Brien", "MacLeod", "Côté-Giguère", "Marie-Ève", "D'Amours"
# A capital inside a word only after the usual surname prefixes: "AudioHead" is a recognition
# error, not a name.
NAME = (rf"(?:[{UP}][{LO}]*'[{UP}{LO}][{LO}]+|(?:Mc|Mac|Fitz|De|Di|Da|Du|La|Le|Van|Von)[{UP}][{LO}]+|[{UP}][{LO}]+)"
        rf"(?:-[{UP}{LO}][{LO}]+)*")
TITLE = r"(?:[Mm]onsieur|[Mm]adame|[Mm]ademoiselle|Mme|Mlle|M\.|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?|[Dd]octeur|[Dd]octor)"
_FILLER = r"(?:(?:euh|heu|hum|uh|um|ben|bien|well|so|là|oui|yeah)[,.]?\s+)*"

# Words that follow "c'est", "ici", "it's", "this is" with a capital but are not names:
# pronouns, greetings, days and months, places and trade words that Whisper capitalises.
_NAME_STOPWORDS = {fold(w) for w in (
    "bonne", "bon", "belle", "joyeux", "joyeuses", "happy", "merry", "good", "have", "best", "pour", "urgent",
    "urgence", "moi", "la", "le", "les", "lui", "elle", "nous", "vous", "toi", "un", "une", "des", "de", "du", "au",
    "aux", "ça", "ca", "ce", "cette", "mon", "ma", "mes", "ton", "ta", "tes", "son", "sa", "ses", "notre", "votre",
    "leur", "pas", "plus", "juste", "vraiment", "correct", "possible", "beau", "important", "pressant", "ici", "là",
    "oui", "non", "bonjour", "bonsoir", "allô", "allo", "salut", "merci", "madame", "monsieur", "hi", "hello",
    "hey", "thanks", "thank", "yes", "no", "okay", "ok", "sorry", "the", "a", "an", "my", "your", "our", "his",
    "her", "its", "it", "about", "just", "not", "really", "only", "i", "me", "we", "you", "they", "he", "she",
    "that", "this", "what", "who", "emergency", "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi",
    "dimanche", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "janvier", "février",
    "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre", "january",
    "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
    "québec", "quebec", "montréal", "montreal", "laval", "longueuil", "gatineau", "sherbrooke", "lévis", "levis",
    "trois-rivières", "saguenay", "terrebonne", "toronto", "ottawa", "canada", "ontario", "brossard", "google",
    "facebook", "internet", "hydro", "vidéotron", "videotron", "english", "anglais", "français", "french",
    # Greetings and fillers, also as Whisper garbles them ("Oui mon jour" for "Oui bonjour").
    "jour", "journée", "soir", "matin", "bonjours", "alo", "allo", "halo", "hallo", "hola", "coucou", "bye",
    "ciao", "salutations", "greetings", "morning", "evening", "afternoon", "there", "ouais", "ouin", "yep", "yup",
    "nope", "yeah", "voilà", "voila", "d'accord", "parfait", "super", "excellent", "euh", "heu", "hum", "ah", "oh",
    "eh", "bah", "ben", "bien", "well", "alors", "donc", "pis", "puis", "et", "mais", "ou", "so", "and", "or",
    "but", "merci", "mercis", "remerciements", "please", "svp", "oups", "oops", "pardon", "désolé", "désolée",
    "excusez", "excuse", "attendez", "wait", "appelle", "j'appelle", "calling", "c'était", "c'est", "était",
)}
# Trade and company words: a "name" containing one is a business ("ici Toitures Laurentides",
# "this is Tremblay Roofing"), whoever is calling for it.
_TRADE_WORDS = {fold(w) for w in (
    "plomberie", "plombier", "construction", "constructions", "rénovation", "rénovations", "toiture", "toitures",
    "gestion", "services", "service", "entreprise", "entreprises", "groupe", "garage", "clinique", "salon",
    "électricité", "électrique", "électricien", "déménagement", "extermination", "inc", "ltée", "ltd", "compagnie",
    "immeubles", "immobilier", "solutions", "marketing", "chauffage", "climatisation", "paysagement", "excavation",
    "pavage", "transport", "nettoyage", "plumbing", "roofing", "roofers", "heating", "cooling", "electric",
    "electrical", "renovations", "renovation", "landscaping", "cleaning", "moving", "movers", "company", "corp",
    "corporation", "group", "dental", "clinic", "realty", "properties", "management", "contracting", "contractors",
    "painting", "insurance", "assurances", "bank", "banque",
)}
_COMPOUND_FIRST = {fold(w) for w in ("marie", "jean", "anne", "pierre", "louis", "marc", "paul", "luc")}

_NAME_SEQ = rf"(?P<title>{TITLE}\s+)?(?P<first>{NAME})(?P<rest>(?: {NAME}){{0,2}})"
_STRONG_CUES = re.compile(
    rf"(?i:\b(?:mon nom (?:c'est|est|ce serait)|je m'appelle|je me nomme|moi c'est|my name is|my name's"
    rf"|name's|name is)\s+){_FILLER}{_NAME_SEQ}"
)
_WEAK_CUES = re.compile(
    rf"(?i:(?<![\w'])(?:c'est|ici|this is|it's|it is|i'm|i am)\s+){_FILLER}{_NAME_SEQ}"
)
# A weak cue introduces the caller only at the start of a clause ("Bonjour, c'est Julie",
# "Allô c'est Julie", ". C'est Julie"), not inside one ("l'adresse c'est Longueuil").
_CLAUSE_START = re.compile(
    r"(?:[,.!?;:]\s*|(?i:\b(?:bonjour|bonsoir|allô|allo|salut|hi|hello|hey|oui|yes|yeah|so|alors|ben|euh"
    r"|uh|well|and|et|pis|ok|okay)\s+))$"
)
_LAST_NAME_CUE = re.compile(
    rf"(?i:\b(?:mon nom de famille (?:c'est|est)|(?:my )?(?:last|family) name is|my last name's)\s+){_FILLER}"
    rf"(?P<last>{NAME}(?:[ -]{NAME})?)"
)
_POST_CUES = re.compile(
    rf"(?<![\w'-])(?P<first>{NAME})(?P<rest>(?: {NAME}){{0,2}}) (?i:à l'appareil|qui parle|here|speaking)\b"
)
_GREETING_NAME = re.compile(
    rf"(?i:\b(?:bonjour|bonsoir|allô|allo|salut|hi|hello|hey|good (?:morning|afternoon|evening))(?: there)?)"
    rf"[,!.]\s+(?P<first>{NAME}) (?P<rest>{NAME})\s*[.,]"
)
# A full name said alone as a sentence, usually as a sign-off: "… au 450 555 1017. Sylvie Charbonneau."
_BARE_NAME = re.compile(
    rf"(?:^|(?<=[.!?] ))(?P<first>{NAME}) (?P<rest>{NAME})(?:(?=[.!]?(?: |$))(?![ ,] ?[{LO}])|(?=, ?\d))"
)


def _ok_name(word: str) -> bool:
    f = fold(word)
    if re.match(r"[^\W\d_]'[^\W\d_]", word) and not word[2].isupper() and fold(word[0]) != "o":
        return False  # "J'appelle", "L'adresse": an elided article or pronoun, not "D'Amours"
    return len(f) >= 2 and f not in _NAME_STOPWORDS and not word.isupper()


def not_a_name(value: str | None) -> bool:
    """True when `value` is made only of words that are never a name (greetings, fillers,
    pronouns…: "Bonjour", "Oui", "Mon Jour"), or is one or two letters."""
    parts = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", value or "")
    return len("".join(parts)) < 3 or all(fold(p) in _NAME_STOPWORDS for p in parts)


def split_full_name(value: str) -> tuple[str, str | None]:
    """A full name given as one first name → (first, last): "Marc-André Lefebvre" →
    ("Marc-André", "Lefebvre"), "Marie Ève Thibodeau" → ("Marie-Ève", "Thibodeau"),
    "Marc-André-Lefebvre" → ("Marc-André", "Lefebvre"). A plain first name is kept."""
    words = value.split()
    if not words:
        return value, None
    if len(words) == 1:
        parts = value.split("-")
        if len(parts) >= 3 and fold(parts[0]) in _COMPOUND_FIRST:
            return "-".join(parts[:2]), "-".join(parts[2:])
        return value, None
    if len(words) >= 3 and fold(words[0]) in _COMPOUND_FIRST:
        return f"{words[0]}-{words[1]}", " ".join(words[2:])
    return words[0], " ".join(words[1:])


def caller_name(text: str, business: str | None) -> tuple[str | None, str | None]:
    """(first name, last name) the caller gave, each None when not found; words of the
    `business`'s own name are never taken as the caller's."""
    business_words = {fold(w) for w in re.findall(r"[^\W\d_]+", business or "") if len(w) > 2}
    loops = loop_spans(text)
    candidates = []
    for pattern in (_STRONG_CUES, _WEAK_CUES, _POST_CUES, _GREETING_NAME, _BARE_NAME):
        for m in pattern.finditer(text):
            if inside_loop(loops, m.start(), m.end()):
                continue  # "je m'appelle Mémer, je m'appelle Mémer, …": a recognition loop
            if re.match(r"[^\W\d_]", text[m.end("first"):m.end("first") + 1]):
                continue  # "AudioHead": the name regex stopped inside a word
            before = text[max(0, m.start() - 30):m.start()]
            if pattern is _WEAK_CUES and m.start() > 0 and not _CLAUSE_START.search(before):
                continue
            first = m.group("first")
            rest = m.group("rest").split()
            if not _ok_name(first) or any(fold(w) in _TRADE_WORDS for w in [first] + rest):
                continue
            if first.endswith("ing") or text[m.end():m.end() + 2] == "'s":
                continue  # "I'm Looking…" (a capital by mistake), "Dr. Patel's office" (a business)
            if fold(first) in business_words:
                continue  # the business's own name, said back ("c'est Gagnon Plomberie?")
            kept = []
            for w in rest:
                if not _ok_name(w):
                    break
                kept.append(w)
            end = m.end("first") if not kept else m.start("rest") + len(" " + " ".join(kept))
            candidates.append((first, kept, bool(m.groupdict().get("title")), end))
        if candidates:
            break
    family = _LAST_NAME_CUE.search(text)
    if not candidates:
        return (None, family.group("last")) if family and _ok_name(family.group("last")) else (None, None)
    first, rest, titled, end = candidates[0]
    if not rest and "-" in first:
        first, split_last = split_full_name(first)  # "Marc-André-Lefebvre": one word, two names
        rest = [split_last] if split_last else []
    if titled:  # "c'est madame Tremblay": a title alone goes with the family name
        return (first, " ".join(rest)) if rest else (None, first)
    if len(rest) == 2 and fold(first) in _COMPOUND_FIRST:
        first, rest = f"{first}-{rest[0]}", rest[1:]  # "Marie Ève Thibodeau"
    last = " ".join(rest) or None
    if last is None:
        # "C'est Vincent, Vincent Giroux": the name said again, in full.
        again = re.match(rf",?\s+{re.escape(first)} (?P<last>{NAME})", text[end:])
        if again and _ok_name(again.group("last")):
            last = again.group("last")
            end += again.end()
    span = spelled_span(text, end)
    spelled = span[0] if span else None
    if span and spelled and last is None and fold(spelled) == fold(first):
        # "this is Bob, B-O-B, Campbell": the first name spelled, then the family name.
        after = re.match(rf"[,.]?\s+(?P<last>{NAME})(?![\w'])", text[span[1]:])
        if after and _ok_name(after.group("last")) and fold(after.group("last")) not in _TRADE_WORDS:
            last = after.group("last")
            spelled = spelled_after(text, span[1] + after.end())
    if spelled:
        if last and fold(spelled) != fold(last) and fold(spelled) != fold(first):
            last = spelled  # the spelling is what the caller wants written ("Roi, R-O-Y")
        elif not last and fold(spelled) != fold(first):
            last = spelled
    if last is None and family and _ok_name(family.group("last")):
        last = family.group("last")  # "… moi c'est Karim, pis mon nom de famille c'est Haddad"
        spelled = spelled_after(text, family.end())
        if spelled and fold(spelled) != fold(last):
            last = spelled
    return first, last
