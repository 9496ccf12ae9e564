"""What the caller needs, roughly: the sentences that state the request or the problem,
not those that give contact details. A language model may rewrite it later; this is
the fallback shown on the lead.
"""

from __future__ import annotations

import re

from app.extraction.names import NAME, TITLE, UP
from app.extraction.urgency import URGENT

_REQUEST_CUES = re.compile(
    r"(?i)(?:j'aimerais|je voudrais|on voudrait|on aimerait|nous aimerions|j'aurais besoin|on aurait besoin"
    r"|besoin|je cherche|je veux|on veut|on cherche|j'appelle pour|je vous appelle|je voulais|pourriez-vous|pouvez-vous"
    r"|soumission|estimation|prix|rendez-vous|réparer|installer|faire faire|vérifier|checker"
    r"|i'd like|i would like|i need|we need|we'd like|i want|we want|looking for|i'm calling|i was wondering|wondering"
    r"|could you|can you|can someone|quote|estimate|price|appointment|book|install|repair|fix"
    r"|is there any way|how much|combien)"
)
_PROBLEM_CUES = re.compile(
    r"(?i)(?:j'ai (?:un|une|des|de l'|pu|plus|la|le|mon|ma)|on a (?:un|une|des)|y'a|il y a|marche pu|marche plus"
    r"|ne fonctionne|en panne|bris[ée]|fuite|coule|bruit|i have|there's|there are|we have|broken|not working"
    r"|stopped|leak|noise)"
)
_CONTACT = re.compile(
    r"(?i)(?:\d{3}[\s.\-]*\d{4}|rappelez|rappelle-moi|rappeler au|me rappeler|rejoindre|joindre|call me|reach me"
    r"|my number|mon num[ée]ro|courriel"
    r"|e-?mail|@|arobas|my cell|mon cell|bonne journée|have a (?:good|nice)|^\s*(?:merci|thanks|thank you|bye)\b)"
)
_LEAD_IN = re.compile(
    r"^(?:(?i:oui|yes|yeah|so|alors|ok|okay)[,!.]?\s+)?(?:(?i:bonjour|bonsoir|allô|allo|salut|hi|hello|hey)"
    r"(?: there)?[,!.]?\s*)?"
)
_INTRO = re.compile(
    rf"(?i:\b(?:mon nom (?:c'est|est)|je m'appelle|moi c'est|my name is|c'est|ici|this is|it's))\s+"
    rf"(?:{TITLE}\s+)?{NAME}(?: {NAME}){{0,2}}(?:\s+(?:de|du|from|with)\s+(?:[{UP}][\w'-]*\s*)+)?"
    rf"(?:,?\s+[A-Z](?:-[A-Z])+)?\s*(?:[,.]|(?i:calling|qui parle|à l'appareil))?\s*"
)
_FILLERS = re.compile(r"(?i)\b(?:euh|heu|hum|uh|um)\b[,.]?\s*")


def stated_need(text: str) -> str | None:
    """The one or two sentences that state the request, cleaned of fillers and the
    caller's introduction, at most 200 characters; None when nothing is left."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    scored = []
    for idx, raw in enumerate(sentences):
        s = _FILLERS.sub("", raw)
        s = _LEAD_IN.sub("", s, count=1)
        s = _INTRO.sub("", s, count=1).strip(" ,.")
        if not s or len(s) < 8:
            continue
        score = 0
        if _REQUEST_CUES.search(s):
            score += 2
        if _PROBLEM_CUES.search(s) or URGENT.search(s):
            score += 1
        if _CONTACT.search(s):
            score -= 3
        scored.append((idx, score, s))
    chosen = [s for _, score, s in sorted(scored, key=lambda t: (-t[1], t[0]))[:2] if score > 0]
    if chosen:
        order = {s: i for i, _, s in scored}
        chosen.sort(key=lambda s: order[s])
    elif scored:
        chosen = [scored[0][2]]
    else:
        return None
    need = " ".join(c[0].upper() + c[1:] + ("" if c[-1] in ".!?" else ".") for c in chosen)
    if len(need) > 200:
        need = need[:199].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    return need
