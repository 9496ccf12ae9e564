"""Where the caller lives: the street address and the postal code.

A street address is a civic number said as a number (digits, or number words turned into
digits by numbers.py) — never digits that continue a run of digit groups such as a phone
number ("514 555 0101 rue…") — followed by a street type and name (French order,
"4521 rue Saint-Hubert") or a name and a type (English order, "88 Maple Drive"), with
an apartment or unit when one follows. A postal code is often spelled; it is matched
on the stream of letters and digits from spelled.py and validated by its format.
"""

from __future__ import annotations

import re

from app.extraction.names import NAME
from app.extraction.phones import is_valid_phone_digits
from app.extraction.spelled import symbols
from app.extraction.text import pick_with_correction

_POSTAL = re.compile(r"^[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\d[ABCEGHJ-NPRSTV-Z]\d$")


def postal_code(text: str) -> str | None:
    """First Canadian postal code written or spelled; after a correction, the last."""
    syms = symbols(text)
    found: list[tuple[str, int, int]] = []
    i = 0
    while i + 6 <= len(syms):
        window = syms[i:i + 6]
        code = "".join(s or "#" for s, _, _ in window)
        if _POSTAL.match(code):
            found.append((f"{code[:3]} {code[3:]}", window[0][1], window[-1][2]))
            i += 6
        else:
            i += 1
    return pick_with_correction(text, found)


_FR_TYPES = (r"rue|avenue|av\.|boulevard|boul\.?|blvd|chemin|ch\.|rang|route|mont[ée]e|place|c[ôo]te"
             r"|croissant|impasse|all[ée]e|promenade|terrasse|carr[ée]|ruelle|voie|circuit|square")
_EN_TYPES = (r"street|st\.?|avenue|ave\.?|road|rd\.?|drive|dr\.?|boulevard|blvd\.?|crescent|court|ct\.?"
             r"|lane|ln\.?|way|place|pl\.?|circle|terrace|parkway|trail|row|square|highway|hwy")
# The same street types and directions as whole folded words, for grounding.py: a value
# without one of them is a number, not an address.
STREET_WORDS = frozenset((
    "rue", "avenue", "av", "boulevard", "boul", "blvd", "chemin", "ch", "rang", "route", "montee", "place", "cote",
    "croissant", "impasse", "allee", "promenade", "terrasse", "carre", "ruelle", "voie", "circuit", "square",
    "street", "st", "ave", "road", "rd", "drive", "dr", "crescent", "court", "ct", "lane", "ln", "way", "pl",
    "circle", "terrace", "parkway", "trail", "row", "highway", "hwy",
))
DIRECTION_WORDS = frozenset({"est", "ouest", "nord", "sud", "east", "west", "north", "south"})
_DIRECTION = r"(?:[Ee]st|[Oo]uest|[Nn]ord|[Ss]ud|East|West|North|South|E\.|O\.|W\.|N\.|S\.)"
_STREET_NUM = r"(?<![\w\-])(?P<num>\d{1,6}(?:-\d{1,5})?[A-Za-z]?)(?![\w\-])"
_PARTICLE = r"(?:de la |de l'|des |du |de |d'|la |le |les |l')"
_STREET_NAME_WORD = rf"(?:{NAME}|\d{{1,3}}(?:e|re|er|th|st|nd|rd))"
_FR_ADDRESS = re.compile(
    rf"{_STREET_NUM},?\s+(?P<of>(?:de la|sur la|sur le|de l')\s+)?(?P<type>(?i:{_FR_TYPES}))\s+"
    rf"(?P<name>{_PARTICLE}?{_STREET_NAME_WORD}"
    rf"(?:[ -]{_PARTICLE}?{_STREET_NAME_WORD}){{0,3}})(?P<dir>\s+{_DIRECTION})?(?![\w'])"
)
_EN_ADDRESS = re.compile(
    rf"{_STREET_NUM}\s+(?P<name>{_STREET_NAME_WORD}(?:\s+{_STREET_NAME_WORD}){{0,3}}?)\s+"
    rf"(?P<type>(?i:{_EN_TYPES}))(?![\w])(?P<dir>\s+{_DIRECTION}(?![\w]))?"
)
_DIR_ONLY_ADDRESS = re.compile(
    rf"{_STREET_NUM}\s+(?P<name>{NAME}(?:\s+{NAME}){{0,2}}?)\s+"
    rf"(?P<dir>East|West|North|South|Est|Ouest|Nord|Sud)(?![\w])"
)
_UNIT = re.compile(
    r"^\s*,?\s*(?P<unit>(?i:apartment|apt\.?|appartement|app\.?|unit|suite|logement|unité|bureau|local)"
    r"\s*#?\s*(?:num[ée]ro\s*)?\d+[A-Za-z]?)(?!\w)"
)
# Digit groups right before a civic number: "514 555 0101 rue…", "221 555, 0168 rue…".
_GROUPS_BEFORE = re.compile(r"(?:(?<![\w\-])\d+[\s,.\-/()]{1,4})+$")


def _inside_digit_run(text: str, start: int) -> bool:
    """The number at `start` continues a run of digit groups (a phone number being said,
    a recognition loop "516,515,515…"), so it is not a civic number. After a comma, a
    complete phone number before it is a separate thing ("…0101, 4521 rue…")."""
    m = _GROUPS_BEFORE.search(text[max(0, start - 60):start])
    if not m:
        return False
    groups = re.findall(r"\d+", m.group(0))
    joiner = re.search(r"[\s,.\-/()]+$", m.group(0))
    return not (joiner and "," in joiner.group(0) and is_valid_phone_digits("".join(groups)))


# Whisper writes a civic number in thousands as an amount: "4,870 Cumberland Avenue".
_THOUSANDS = re.compile(r"(?<![\d,.])(\d{1,3}),(\d{3})(?![\d,])(?=\s+[^\W\d_])")


def join_thousands(text: str) -> str:
    """ "4,870 Cumberland Avenue" → "4870 Cumberland Avenue" (a civic number, not an amount)."""
    return _THOUSANDS.sub(r"\1\2", text)


def street_address(text: str) -> str | None:
    """First street address ("4521 rue Saint-Hubert", "88 Maple Drive, apt 3"), number
    first, as written; after a correction, the last."""
    text = join_thousands(text)
    found: list[tuple[str, int, int]] = []
    for pattern in (_FR_ADDRESS, _EN_ADDRESS, _DIR_ONLY_ADDRESS):
        for m in pattern.finditer(text):
            if any(s <= m.start() < e or m.start() <= s < m.end() for _, s, e in found):
                continue
            if _inside_digit_run(text, m.start()):
                continue  # "221-555-0168 rue…": the tail of a phone number, not a civic number
            value = re.sub(r"^(\S+),\s*", r"\1 ", m.group(0).strip())  # "1234, rue X" → "1234 rue X"
            unit = _UNIT.match(text[m.end():])
            end = m.end()
            if unit:
                value = f"{value}, {unit.group('unit')}"
                end += unit.end()
            found.append((value, m.start(), end))
    found.sort(key=lambda f: f[1])
    return pick_with_correction(text, found)
