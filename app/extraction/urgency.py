"""Whether the request is urgent: immediate damage, safety, health, no heat, a lockout,
or the caller says so, unless they also say it can wait. Negated phrases ("pas de dégât
d'eau") do not count; a safety risk (gas, fire, sparks) counts even when the caller
calls it "pas urgent".
"""

from __future__ import annotations

import re

_GAS = (r"odeur (?:\w+ ){0,2}de gaz|sen[st] (?:\w+ ){0,2}(?:le|du) gaz|fuite de gaz"
        r"|smell(?:s|ing)? (?:\w+ ){0,2}gas\b|gas (?:smell|leak|odou?r)")
# Immediate damage, safety, health, no heat, lockout. Each pattern is a phrase, not a
# single word: "eau" or "fuite" alone is usually a slow drip that can wait.
_URGENT_PATTERNS = [
    # water damage
    r"d[ée]g[âa]ts? d'eau", r"inond", r"refoul", r"fuite (?:majeure|importante|d'eau majeure)",
    r"grosse fuite", r"coule partout", r"coulent partout", r"l'eau (?:monte|rentre|entre)",
    r"eau qui (?:rentre|entre|monte|coule partout|gicle|sort partout)",
    r"(?:coule|coulent|couler) (?:dans|par) (?:le|les|la) (?:mur|murs|plafond|plafonds)",
    r"tuyau (?:a |qui a )?(?:p[ée]t[ée]|[ée]clat[ée]|crev[ée]|gel[ée]|fendu)", r"d[ée]gel",
    r"flood", r"burst", r"water (?:everywhere|spraying|pouring|coming (?:in|through))",
    r"(?:sewer|sewage) back", r"backed up", r"major leak", r"big leak", r"leak(?:s|ing)? (?:a lot|badly|everywhere)",
    r"(?:inch|inches|pouces?|centim[èe]tres?) (?:of water|d'eau)", r"(?:lots|a lot) of water", r"beaucoup d'eau",
    r"infiltration d'eau", r"d[ée]bord", r"overflow",
    r"(?:eau|water) (?:qui )?(?:coule|d[ée]goutte|rentre|entre|drip\w*|leak\w*|pour\w*|coming|come)"
    r" (?:\w+ ){0,2}(?:du|par|par le|de|from|through|into|in from) (?:the |la |le )?(?:plafond|toit|ceiling|roof)",
    r"leak(?:ing)? (?:through|into|from) the (?:ceiling|roof|wall)",
    # heat
    r"(?:pas|plus|pu|aucun) de chauffage", r"sans chauffage", r"(?:pas|plus|pu) de chaleur",
    r"fournaise (?:(?:qui )?(?:marche|fonctionne|part|d[ée]marre) (?:pu|plus|pas)"
    r"|(?:est )?(?:en panne|bris[ée]e|morte|arr[êe]t[ée]e))",
    r"(?:chauffage|plinthes?|chaufferettes?|syst[èe]me de chauffage)\b[^.]{0,25}?\b(?:marche|marchent|fonctionne"
    r"|fonctionnent|chauffe|chauffent) (?:pu|plus|pas)",
    r"(?:frozen|froze) pipes?", r"pipes? (?:are |is )?frozen", r"tuyaux? gel[ée]s?",
    r"no heat", r"furnace (?:is |has )?(?:out|broken|not working|stopped|died|won't|quit|went out)",
    r"heating (?:is )?(?:out|down)",
    r"(?:pas|plus|pu) d'[ée]lectricit[ée]", r"panne (?:de courant|d'[ée]lectricit[ée])", r"no power",
    r"power outage",
    # gas, fire, electricity
    _GAS,
    r"monoxyde", r"carbon monoxide",
    r"(?<!tecteur de )(?<!tecteurs de )(?<!tecteur à )(?<!tecteurs à )fum[ée]e",
    r"(?<!detector )smoke(?! detectors?| alarms?)", r"\bfeu\b(?! vert)",
    r"\bfire\b(?! ?places?| ?pits?| alarms?| extinguishers?| ?wood| doors?| ?proof| inspection)", r"[ée]tincelle",
    r"sparks?", r"odeur de br[ûu]l[ée]", r"sent le br[ûu]l[ée]", r"burning smell", r"smell(?:s)? (?:of )?burning",
    # lockout, breakdown
    r"barr[ée]e? dehors", r"barr[ée] (?:mes|les) cl[ée]s", r"cl[ée]s barr[ée]es", r"enferm[ée]e? dehors",
    r"locked out", r"locked (?:my|the) keys", r"keys locked", r"tomb[ée]e? en panne", r"broke(?:n)? down",
    r"stranded", r"remorqu", r"tow truck", r"need a tow", r"\btowing", r"flat tire", r"pneu (?:à|a) plat",
    r"crevaison",
    # health
    r"allergique", r"allergic", r"enfl[ée]e?", r"swollen", r"saigne", r"bleeding", r"can't breathe",
    # the caller says so
    r"\burgent", r"\burgence", r"emergency", r"au plus (?:vite|sacrant|criss)", r"le plus (?:vite|rapidement) possible",
    r"faire vite", r"tout de suite", r"imm[ée]diatement", r"right away", r"\basap\b",
    r"immediately", r"hurry", r"(?:quelqu'un|someone) (?:vite|quickly)",
]
# need.py also reads it: a sentence that describes urgent damage states the problem.
URGENT = re.compile(r"(?i)(?:" + "|".join(_URGENT_PATTERNS) + r")")
# Safety first: a caller who says "pas urgent" about a gas smell still gets flagged.
_SAFETY = re.compile(
    r"(?i)(?:" + _GAS + r"|monoxyde|carbon monoxide|[ée]tincelle|sparks?\b|odeur de br[ûu]l[ée]|burning smell"
    r"|\bfeu\b(?! vert)"
    r"|\bfire\b(?! ?places?| ?pits?| alarms?| extinguishers?| ?wood| doors?| ?proof| inspection))"
)
_NOT_URGENT = re.compile(
    r"(?i)(?:\b(?:pas|rien|aucune?)\s+(?:d'|de |une |[\w-]+ )?urgen|pas (?:[\w-]+ )?press[ée]"
    r"|pas la fin du monde|no rush|no hurry|not (?:[\w-]+ )?urgent|isn't (?:[\w-]+ )?urgent|nothing urgent"
    r"|not (?:an|a real) emergency|not in a (?:rush|hurry)|whenever (?:you|it's)|pas d'urgence"
    r"|prenez votre temps|take your time|quand vous aurez (?:le )?temps|(?:it|this) can wait|ça peut attendre)"
)
_NEGATED = re.compile(r"(?i)(?:\b(?:pas|aucun|aucune|no|not|never|jamais|sans|without)\b|n')\W+(?:\w+\W+)?$")
_SELF_NEGATING = re.compile(r"(?i)^(?:pas|plus|pu|aucun|sans|no)\b")


def is_urgent(text: str) -> bool:
    """Whether the message asks for help now: a safety risk always does, otherwise a
    stated urgency or damage in progress does unless the caller says it can wait."""
    if _SAFETY.search(text) and not _negated_everywhere(text, _SAFETY):
        return True
    if _NOT_URGENT.search(text):
        return False
    return not _negated_everywhere(text, URGENT)


def _negated_everywhere(text: str, pattern: re.Pattern) -> bool:
    """True when the pattern is absent, or every match is negated ("pas de dégât d'eau")."""
    for m in pattern.finditer(text):
        if _SELF_NEGATING.match(m.group(0)):
            return False  # "pas de chauffage" carries its own negation
        if not _NEGATED.search(text[max(0, m.start() - 25):m.start()]):
            return False
    return True
