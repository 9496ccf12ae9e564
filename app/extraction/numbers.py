"""Spoken numbers → digits, French and English.

Whisper writes numbers inconsistently: "514-555-0101", "5145550101", "cinq un quatre",
"quatre cent cinquante, 555-0119", "double five". `normalize_spoken_digits` turns the
number words into digit chunks and leaves the rest of the text alone; the phone rules
(phones.py) assemble the chunks into numbers.
"""

from __future__ import annotations

import re

from app.extraction.text import prep

# Digit words; spelled.py reads them too, for codes said one character at a time.
UNITS = {
    "zero": 0, "zéro": 0, "oh": 0, "o": 0,
    "un": 1, "one": 1, "deux": 2, "two": 2, "trois": 3, "three": 3, "quatre": 4, "four": 4,
    "cinq": 5, "five": 5, "six": 6, "sept": 7, "seven": 7, "huit": 8, "eight": 8,
    "neuf": 9, "nine": 9,
}
_TEENS = {
    "dix": 10, "ten": 10, "onze": 11, "eleven": 11, "douze": 12, "twelve": 12, "treize": 13,
    "thirteen": 13, "quatorze": 14, "fourteen": 14, "quinze": 15, "fifteen": 15, "seize": 16,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "vingt": 20, "vingts": 20, "twenty": 20, "trente": 30, "thirty": 30, "quarante": 40,
    "forty": 40, "fourty": 40, "cinquante": 50, "fifty": 50, "soixante": 60, "sixty": 60,
    "septante": 70, "seventy": 70, "huitante": 80, "octante": 80, "eighty": 80,
    "nonante": 90, "ninety": 90,
}
_HUNDRED = {"cent", "cents", "hundred"}
_THOUSAND = {"mille", "thousand"}
_REPEAT = {"double": 2, "triple": 3}
_CONNECTORS = {"et", "and"}
# Words that are numbers only when they sit next to other number words: "un rendez-vous",
# "one more thing", "Oh, sorry", "un char neuf" must stay text.
_AMBIGUOUS = {"un", "one", "oh", "o", "neuf"}
_NUMBER_WORDS = set(UNITS) | set(_TEENS) | set(_TENS) | _HUNDRED | _THOUSAND


def _is_number_part(part: str) -> bool:
    return part in _NUMBER_WORDS or part in _REPEAT


def _words_to_digits(words: list[str]) -> str:
    """Digits for a run of number words, one group after the other.

    Groups are composed the way numbers are said ("cinq cent quatorze" → 514,
    "quatre-vingt-dix-neuf" → 99, "fifty-five" → 55) and a word that cannot extend the
    current group starts a new one, so digit-by-digit dictation ("cinq un quatre") and
    mixed styles ("five fifty-five", "zéro cent vingt-sept") concatenate naturally.
    """
    out: list[str] = []
    total = cur = 0
    last: str | None = None  # kind of the last word of the open group
    last_word = ""
    last_val = 0

    def flush() -> None:
        nonlocal total, cur, last
        if last is not None:
            out.append(str(total + cur))
        total = cur = 0
        last = None

    i = 0
    while i < len(words):
        w = words[i]
        if w in _REPEAT:
            if i + 1 < len(words) and words[i + 1] in UNITS:
                flush()
                out.append(str(UNITS[words[i + 1]]) * _REPEAT[w])
                i += 2
                continue
            i += 1
            continue
        if w in _CONNECTORS:
            i += 1
            continue
        if w in UNITS:
            kind, val = "unit", UNITS[w]
        elif w in _TEENS:
            kind, val = "teen", _TEENS[w]
        elif w in _TENS:
            kind, val = "ten", _TENS[w]
        elif w in _HUNDRED:
            kind, val = "hundred", 100
        else:
            kind, val = "thousand", 1000

        if kind == "unit" and val == 0:  # a zero is always its own digit
            flush()
            out.append("0")
            i += 1
            continue

        extended = False
        if last is not None:
            if kind == "unit":
                if last == "ten" and cur % 10 == 0:
                    cur += val
                    extended = True
                elif last == "teen" and last_word == "dix" and val >= 7 and cur % 10 == 0:
                    cur += val  # dix-sept, soixante-dix-huit
                    extended = True
                elif last in ("hundred", "thousand") and cur % 100 == 0:
                    cur += val
                    extended = True
            elif kind == "teen":
                if last == "ten" and last_val in (60, 80):
                    cur += val  # soixante-dix, quatre-vingt-onze
                    extended = True
                elif last in ("hundred", "thousand") and cur % 100 == 0:
                    cur += val
                    extended = True
            elif kind == "ten":
                if w.startswith("vingt") and last == "unit" and last_val == 4 and cur % 100 == 4:
                    cur += 76  # quatre-vingt(s)
                    val = 80
                    extended = True
                elif last in ("hundred", "thousand") and cur % 100 == 0:
                    cur += val
                    extended = True
            elif kind == "hundred":
                if 0 < cur < 100 and last in ("unit", "teen", "ten"):
                    cur *= 100
                    extended = True
            elif kind == "thousand" and total == 0 and cur > 0 and last != "thousand":
                total, cur = cur * 1000, 0
                extended = True
        if not extended:
            flush()
            if kind == "hundred":
                cur = 100
            elif kind == "thousand":
                total = 1000
            else:
                cur = val
        last, last_val, last_word = kind, val, w
        i += 1
    flush()
    return "".join(out)


_WORD_TOKEN = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)


def normalize_spoken_digits(text: str) -> str:
    """Replace number words by digits, FR and EN
    the rest of the text is kept.

    Consecutive number words separated by spaces or hyphens become one digit string
    ("cinq cinq cinq" → "555", "quatre cent cinquante" → "450", "double five" → "55");
    punctuation between them is kept ("…cinq, zéro un…" → "…5, 01…"), the phone rules
    join such chunks later. A lone ambiguous word ("un", "one", "oh", "neuf") is left alone.
    """
    text = prep(text)
    tokens: list[tuple[int, int, list[str] | None]] = []  # (start, end, [parts]); None for other words
    for m in _WORD_TOKEN.finditer(text):
        parts = m.group(0).casefold().split("-")
        if all(_is_number_part(p) or (p in _CONNECTORS and len(parts) > 1) for p in parts):
            tokens.append((m.start(), m.end(), parts))
        elif m.group(0).casefold() in _CONNECTORS:
            tokens.append((m.start(), m.end(), ["&"]))
        else:
            tokens.append((m.start(), m.end(), None))

    # Group number tokens that are separated only by whitespace into runs.
    runs: list[list[tuple[int, int, list[str] | None]]] = []
    current: list[tuple[int, int, list[str] | None]] = []
    prev_end = None
    for idx, tok in enumerate(tokens):
        start, end, tok_parts = tok
        joined = prev_end is not None and text[prev_end:start].strip() == ""
        if tok_parts == ["&"]:
            # "vingt et un", "one hundred and five": a connector stays inside a run only
            # between the pieces of one number, never between two numbers ("deux et trois").
            nxt = tokens[idx + 1] if idx + 1 < len(tokens) else None
            prev_parts = current[-1][2] if current and joined else None
            nxt_parts = nxt[2] if nxt is not None and nxt[2] != ["&"] and text[end:nxt[0]].strip() == "" else None
            if prev_parts and nxt_parts and (
                (prev_parts[-1] in _TENS and nxt_parts[0] in ("un", "onze"))
                or (prev_parts[-1] in _HUNDRED | _THOUSAND)
            ):
                current.append(tok)
                prev_end = end
                continue
            tok_parts = None
        if tok_parts is None:
            if current:
                runs.append(current)
            current = []
            prev_end = None
            continue
        if current and not joined:
            runs.append(current)
            current = []
        current.append(tok)
        prev_end = end
    if current:
        runs.append(current)

    pieces = []
    pos = 0
    for run in runs:
        words = [p for _, _, parts in run for p in parts or () if p != "&"]
        if len(words) == 1 and words[0] in _AMBIGUOUS | set(_REPEAT):
            continue
        if all(w in _REPEAT or w in _CONNECTORS for w in words):
            continue
        digits = _words_to_digits(words)
        if not digits:
            continue
        pieces.append(text[pos:run[0][0]])
        pieces.append(digits)
        pos = run[-1][1]
    pieces.append(text[pos:])
    return "".join(pieces)
