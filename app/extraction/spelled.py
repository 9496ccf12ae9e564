"""Letters said one at a time: callers spell postal codes and names.

`symbols` turns any mix of written and spoken pieces ("H2J 2X7", "h deux j deux x sept",
"Hotel 2 Juliet", "H comme Hôtel", letter names such as "bé" or "aitch") into one stream
of letters and digits, so a format (a postal code) can be matched against it whatever
the mix. `spelled_span` reads a word spelled right after a name ("Roy, R-O-Y"). Spelled
email addresses are read by emails.py, which must also keep dots, dashes and "@".
"""

from __future__ import annotations

import re

from app.extraction.numbers import UNITS

_NATO = {
    "alpha": "A", "alfa": "A", "bravo": "B", "charlie": "C", "delta": "D", "echo": "E", "écho": "E",
    "foxtrot": "F", "golf": "G", "hotel": "H", "hôtel": "H", "india": "I", "juliet": "J",
    "juliette": "J", "kilo": "K", "lima": "L", "mike": "M", "november": "N", "oscar": "O",
    "papa": "P", "quebec": "Q", "québec": "Q", "romeo": "R", "roméo": "R", "sierra": "S",
    "tango": "T", "uniform": "U", "victor": "V", "whiskey": "W", "whisky": "W", "xray": "X",
    "yankee": "Y", "zulu": "Z",
}
# How letters are named when said aloud (FR, EN) when Whisper writes the name, not the letter.
_LETTER_NAMES = {
    "bé": "B", "cé": "C", "dé": "D", "gé": "G", "ache": "H", "hache": "H", "ji": "J", "ka": "K",
    "elle": "L", "emme": "M", "enne": "N", "pé": "P", "erre": "R", "esse": "S", "té": "T",
    "vé": "V", "ix": "X", "zed": "Z", "bee": "B", "cee": "C", "dee": "D", "gee": "G", "jay": "J",
    "kay": "K", "pee": "P", "tee": "T", "vee": "V", "zee": "Z", "aitch": "H",
}
_AS_IN = {"comme", "pour", "like", "for"}  # "H comme Hôtel", "B for Bravo", "as in" below
_SYMBOL_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*", re.UNICODE)


def symbols(text: str) -> list[tuple[str | None, int, int]]:
    """(symbol, start, end) per token: one letter, one digit, or None (a breaker).

    Written ("H2J 2X7"), spelled ("h deux j deux x sept"), spelling alphabets
    ("Hotel 2 Juliet", "H comme Hôtel") and letter names all become the same stream.
    A breaker is also inserted where two tokens are separated by more than spaces,
    commas, hyphens or a period.
    """
    text = re.sub(r"(?i)\bx-ray\b", "xray", text)
    text = re.sub(r"(?i)\bas in\b", "comme", text)
    raw = [(m.group(0), m.start(), m.end()) for m in _SYMBOL_TOKEN.finditer(text)]
    out: list[tuple[str | None, int, int]] = []
    prev_end = None
    i = 0
    while i < len(raw):
        tok, start, end = raw[i]
        if prev_end is not None and not re.fullmatch(r"[\s,.\-]{0,4}", text[prev_end:start]):
            out.append((None, prev_end, start))
        low = tok.casefold()
        syms: list[str] | None = None
        if len(tok) == 1 and tok.isascii() and tok.isalnum():
            syms = [tok.upper()]
        elif re.fullmatch(r"[A-Za-z0-9]{2,6}", tok) and re.search(r"\d", tok) and re.search(r"[A-Za-z]", tok) \
                and not re.search(r"\d\d|[A-Za-z]{2}", tok):
            syms = list(tok.upper())  # "H2J", "2X7", "j4k2t8"
        elif low in UNITS and low not in ("oh", "o"):
            syms = [str(UNITS[low])]
        elif low == "double" and i + 1 < len(raw) and raw[i + 1][0].casefold() in ("v", "vé", "u", "you"):
            syms = ["W"]
            end = raw[i + 1][2]
            i += 1
        elif low in _NATO:
            syms = [_NATO[low]]
        elif low in _LETTER_NAMES:
            syms = [_LETTER_NAMES[low]]
        if syms is None:
            out.append((None, start, end))
        else:
            for s in syms:
                out.append((s, start, end))
        prev_end = end
        i += 1
        # "H comme Hôtel", "B as in Bravo": the example word only confirms the letter.
        if syms and len(syms) == 1 and syms[0].isalpha() and i < len(raw):
            nxt = raw[i][0].casefold()
            if nxt in _AS_IN and i + 1 < len(raw):
                prev_end = raw[i + 1][2]
                i += 2
            elif _NATO.get(nxt) == syms[0] and len(tok) == 1:
                prev_end = raw[i][2]  # "H Hotel 2 …"
                i += 1
    return out


# One spelled letter, accented ones included ("D-E-S-C-H-Ê-N-E-S"): the accent is kept.
_LETTER = "[A-Za-zÀ-ÖØ-öø-ÿ]"
_SPELLED = re.compile(
    r"(?i:(?:that's|that is|spelled|spelt|ça s'écrit|ca s'ecrit|qui s'écrit|s'écrit|c'est|je répète)\s+)?"
    rf"(?P<seq>(?:{_LETTER}(?:\s+(?:comme|as in|like|for)\s+[^\W\d_]+)?(?:\s*[-.]\s*|\s*,\s*|\s+)){{1,30}}"
    rf"{_LETTER}(?:\s+(?:comme|as in|like|for)\s+[^\W\d_]+)?)(?![\w'])"
)


def spelled_after(text: str, pos: int) -> str | None:
    """A word spelled letter by letter right after `pos` ("Roy, R-O-Y"), capitalised."""
    found = spelled_span(text, pos)
    return found[0] if found else None


def spelled_span(text: str, pos: int) -> tuple[str, int] | None:
    """(spelled word, end position) for a word spelled right after `pos`."""
    m = re.match(r"[\s,.]{0,3}" + _SPELLED.pattern, text[pos:pos + 120])
    if not m:
        return None
    seq = m.group("seq")
    seq = re.sub(r"(?i)\s+(?:comme|as in|like|for)\s+[^\W\d_]+", "", seq)
    letters = re.findall(_LETTER, seq)
    hyphenated = "-" in seq or "." in seq
    if len(letters) < (2 if hyphenated else 3):
        return None
    word = "".join(letters)
    return word[0].upper() + word[1:].lower(), pos + m.end()
