"""The language the caller mostly speaks ("fr" or "en"): Quebec callers mix both, so
common function words of each are counted and the majority wins.
"""

from __future__ import annotations

import re

_FR_WORDS = {
    "le", "la", "les", "de", "des", "du", "un", "une", "et", "est", "je", "tu", "il", "elle", "on", "nous", "vous",
    "ils", "mon", "ma", "mes", "ton", "ta", "ses", "pour", "que", "qui", "pas", "au", "aux", "avec", "dans", "sur",
    "ça", "ca", "ai", "suis", "merci", "bonjour", "oui", "allô", "allo", "pis", "mais", "ou", "si", "en", "par",
    "plus", "rappeler", "rappelez", "numéro", "c'est", "j'ai", "j'aimerais", "voudrais", "chez", "notre", "votre",
    "bonne", "journée", "salut", "euh", "fait", "faut", "faudrait", "être", "avoir", "comme", "très", "aussi", "là",
    "y'a", "quelqu'un", "s'il", "plaît",
}
_EN_WORDS = {
    "the", "a", "an", "and", "is", "it's", "i", "i'm", "my", "me", "you", "your", "to", "of", "in", "on", "for",
    "at", "this", "that", "with", "can", "could", "would", "please", "thanks", "thank", "hi", "hello", "call",
    "back", "number", "are", "was", "be", "have", "has", "i'd", "i'll", "we", "we're", "our", "there", "just",
    "like", "from", "but", "or", "if", "so", "get", "some", "someone", "need", "want", "looking", "yeah", "hey",
    "bye", "it", "not", "any",
}


def dominant_language(text: str) -> str:
    """The language with more of its common words in the text: "en", or "fr" on a tie."""
    fr = en = 0
    for tok in re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.casefold()):
        if tok in _FR_WORDS or re.match(r"^(?:j|c|l|d|qu|m|n|s|t)'", tok):
            fr += 1
        elif tok in _EN_WORDS or re.match(r"^\w+'(?:s|t|m|d|ll|re|ve)$", tok):
            en += 1
    return "en" if en > fr else "fr"
