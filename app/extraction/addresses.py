"""Where the caller lives: the street address and the postal code.

A street address is a civic number followed by a street type and name (French order,
"4521 rue Saint-Hubert") or a name and a type (English order, "88 Maple Drive"), with
an apartment or unit when one follows. A postal code is often spelled; it is matched
on the stream of letters and digits from spelled.py and validated by its format.
"""

from __future__ import annotations

import re

from app.extraction.names import NAME
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


def street_address(text: str) -> str | None:
    """First street address ("4521 rue Saint-Hubert", "88 Maple Drive, apt 3"), number
    first, as written; after a correction, the last."""
    found: list[tuple[str, int, int]] = []
    for pattern in (_FR_ADDRESS, _EN_ADDRESS, _DIR_ONLY_ADDRESS):
        for m in pattern.finditer(text):
            if any(s <= m.start() < e or m.start() <= s < m.end() for _, s, e in found):
                continue
            value = re.sub(r"^(\S+),\s*", r"\1 ", m.group(0).strip())  # "1234, rue X" → "1234 rue X"
            unit = _UNIT.match(text[m.end():])
            end = m.end()
            if unit:
                value = f"{value}, {unit.group('unit')}"
                end += unit.end()
            found.append((value, m.start(), end))
    found.sort(key=lambda f: f[1])
    return pick_with_correction(text, found)
