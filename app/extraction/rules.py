"""Deterministic first layer of voicemail extraction: rules, no ML.

A voicemail arrives as a Whisper transcript (Quebec French, English, or a mix of both)
plus the caller id from the phone network. This module pulls out what can be pulled out
reliably by rules: the callback number, the caller's name, an email, a postal code, a
street address, whether the request is urgent, the dominant language, and a rough
`need` (the sentences that state the request). A language model may refine the result
later; this layer must stay fast, predictable and safe to run on every message, so
each rule is biased toward returning None rather than a wrong value: a missing field
costs the business one question on the callback, a wrong phone number costs the lead.

Why the rules look the way they do:

* Whisper writes numbers inconsistently: "514-555-0101", "5145550101", "cinq un
  quatre", "quatre cent cinquante, 555-0119", "double five". Everything is first
  turned into digit chunks (`normalize_spoken_digits`), then consecutive chunks are
  assembled into numbers that `phonenumbers` (region CA) accepts, so a grouping we
  never saw still works and a cut-off number is simply invalid and dropped.
* Callers correct themselves ("…0128, non attendez, c'est 0127"). A short run of
  digits after a correction word replaces the tail of the number just said; a full
  number after a correction word replaces it entirely.
* Names come after self-introduction cues; Whisper capitalises proper nouns, so a
  capital letter is required, and a small stopword list removes the common words
  that follow "c'est" with a capital (days, places, "Moi", trade words…).
* Postal codes and emails are often spelled; they are parsed from a stream of
  symbols (letters, digits, spelling-alphabet words) so any mix of written and
  spoken pieces works, and each result is validated by its format.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass

import phonenumbers

from app import normalize

__all__ = ["Extracted", "extract", "phone_candidates", "normalize_spoken_digits"]


@dataclass
class Extracted:
    first_name: str | None
    last_name: str | None
    phone: str | None  # E.164
    email: str | None
    postal_code: str | None  # "A1A 1A1"
    street_address: str | None
    need: str | None
    urgent: bool
    language: str  # "fr" | "en"

    def as_dict(self) -> dict:
        """Same keys, same order and same formats as `expected` in the dev data."""
        return asdict(self)


# --------------------------------------------------------------------------------------
# Text preparation
# --------------------------------------------------------------------------------------

# Whisper "hallucinates" these credits on silence at the end of a recording (it learned
# them from subtitled video). They are never said by the caller.
_HALLUCINATIONS = re.compile(
    r"(?i)\s*(?:sous-titrage\s+(?:soci[ée]t[ée]\s+radio-canada|st'?\s*\d+|fr\s*\?)"
    r"|sous-titres?\s+(?:r[ée]alis[ée]s\s+)?(?:par\s+)?(?:la\s+communaut[ée]\s+d'?)?amara\.org"
    r"|merci\s+d'avoir\s+regard[ée]\s+cette\s+vid[ée]o\s*!?"
    r"|thanks?\s+(?:you\s+)?for\s+watching\s*!?"
    r"|subtitles\s+by\s+the\s+amara\.org\s+community"
    r"|abonnez-vous\s*!?|♪+)\s*"
)


def _prep(text: str) -> str:
    """NFC, straight apostrophes, no Whisper credits, single spaces."""
    text = unicodedata.normalize("NFC", text or "")
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u00a0", " ")
    text = _HALLUCINATIONS.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def _fold(word: str) -> str:
    """Lowercase without accents: comparisons must not depend on how Whisper accents."""
    decomposed = unicodedata.normalize("NFD", word.casefold())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


# --------------------------------------------------------------------------------------
# Spoken numbers → digits
# --------------------------------------------------------------------------------------

_UNITS = {
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
_NUMBER_WORDS = set(_UNITS) | set(_TEENS) | set(_TENS) | _HUNDRED | _THOUSAND


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
            if i + 1 < len(words) and words[i + 1] in _UNITS:
                flush()
                out.append(str(_UNITS[words[i + 1]]) * _REPEAT[w])
                i += 2
                continue
            i += 1
            continue
        if w in _CONNECTORS:
            i += 1
            continue
        if w in _UNITS:
            kind, val = "unit", _UNITS[w]
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
                    cur += val; extended = True
                elif last == "teen" and last_word == "dix" and val >= 7 and cur % 10 == 0:
                    cur += val; extended = True  # dix-sept, soixante-dix-huit
                elif last in ("hundred", "thousand") and cur % 100 == 0:
                    cur += val; extended = True
            elif kind == "teen":
                if last == "ten" and last_val in (60, 80):
                    cur += val; extended = True  # soixante-dix, quatre-vingt-onze
                elif last in ("hundred", "thousand") and cur % 100 == 0:
                    cur += val; extended = True
            elif kind == "ten":
                if w.startswith("vingt") and last == "unit" and last_val == 4 and cur % 100 == 4:
                    cur += 76; val = 80; extended = True  # quatre-vingt(s)
                elif last in ("hundred", "thousand") and cur % 100 == 0:
                    cur += val; extended = True
            elif kind == "hundred":
                if 0 < cur < 100 and last in ("unit", "teen", "ten"):
                    cur *= 100; extended = True
            elif kind == "thousand":
                if total == 0 and cur > 0 and last != "thousand":
                    total, cur = cur * 1000, 0; extended = True
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
    """Replace number words by digits, FR and EN; the rest of the text is kept.

    Consecutive number words separated by spaces or hyphens become one digit string
    ("cinq cinq cinq" → "555", "quatre cent cinquante" → "450", "double five" → "55");
    punctuation between them is kept ("…cinq, zéro un…" → "…5, 01…"), the phone rules
    join such chunks later. A lone ambiguous word ("un", "one", "oh", "neuf") is left alone.
    """
    text = _prep(text)
    tokens = []  # (start, end, [parts]) for number-word tokens, None for other words
    for m in _WORD_TOKEN.finditer(text):
        parts = m.group(0).casefold().split("-")
        if all(_is_number_part(p) or (p in _CONNECTORS and len(parts) > 1) for p in parts):
            tokens.append((m.start(), m.end(), parts))
        elif m.group(0).casefold() in _CONNECTORS:
            tokens.append((m.start(), m.end(), ["&"]))
        else:
            tokens.append((m.start(), m.end(), None))

    # Group number tokens that are separated only by whitespace into runs.
    runs: list[list[tuple[int, int, list[str]]]] = []
    current: list[tuple[int, int, list[str]]] = []
    prev_end = None
    for idx, tok in enumerate(tokens):
        start, end, parts = tok
        joined = prev_end is not None and text[prev_end:start].strip() == ""
        if parts == ["&"]:
            # "vingt et un", "one hundred and five": a connector stays inside a run only
            # between the pieces of one number, never between two numbers ("deux et trois").
            nxt = tokens[idx + 1] if idx + 1 < len(tokens) else None
            prev_parts = current[-1][2] if current and joined else None
            nxt_ok = nxt is not None and nxt[2] not in (None, ["&"]) and text[end:nxt[0]].strip() == ""
            if prev_parts and nxt_ok and (
                (prev_parts[-1] in _TENS and nxt[2][0] in ("un", "onze"))
                or (prev_parts[-1] in _HUNDRED | _THOUSAND)
            ):
                current.append(tok)
                prev_end = end
                continue
            parts = None
        if parts is None:
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
        words = [p for _, _, parts in run for p in parts if p != "&"]
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


# --------------------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------------------

_DIGITS = re.compile(r"(?<!\w)\d+(?!\w)")
# What may separate the chunks of one number as Whisper writes it: "(514) 555-0101",
# "514.555.0101", "cinq cinq cinq, zéro…" (after normalisation "555, 0…").
_CHUNK_SEP = re.compile(r"^[\s,.\-/()+]{0,5}$")
_EXTENSION_BEFORE = re.compile(
    r"(?i)\b(?:poste|extension|ext|local|option)\.?\s*(?:#|num[ée]ro|number|no\.?)?\s*$"
)
_CORRECTION = re.compile(
    r"(?i)\b(?:non|no|nope|pardon|sorry|d[ée]sol[ée]e?|excusez|excuse|oups|oops|i mean|je veux dire"
    r"|plut[ôo]t|attendez|attends|wait|actually|en fait|correction|scratch that|my bad|my mistake"
    r"|je me suis tromp[ée]e?|je recommence)\b"
)
_STREET_AFTER = re.compile(
    r"(?i)^\s*,?\s*(?:rue|avenue|av|boulevard|boul|blvd|chemin|rang|route|mont[ée]e|street|st|road|rd"
    r"|drive|dr|crescent|court|lane|way|place|ans|years|pieds|feet|\$|dollars)\b"
)
_CALLBACK_CUE = re.compile(
    r"(?i)(?:rappel|rejoindre|joindre|appelez-moi|appelle-moi|m'appeler|t[ée]l[ée]phone|texte|cell|mon num[ée]ro"
    r"|call me|call back|reach me|text me|my number|my cell|phone is|number is)"
)


def _valid_e164(digits: str) -> str | None:
    # Ten digits, or eleven with the leading 1: anything else is a cut-off or an extension.
    return normalize.phone(digits) if 10 <= len(digits) <= 11 else None


def _phone_events(transcript: str) -> list[tuple[str, int]]:
    """(E.164, position in the normalised text) of every number said, corrections applied."""
    text = normalize_spoken_digits(transcript)
    tokens = [(m.start(), m.end(), m.group(0)) for m in _DIGITS.finditer(text)]

    runs: list[list[tuple[int, int, str]]] = []
    for tok in tokens:
        if runs and _CHUNK_SEP.match(text[runs[-1][-1][1]:tok[0]]):
            runs[-1].append(tok)
        else:
            runs.append([tok])

    # Events in text order: ("num", e164, start, end) or ("part", digits, start, end).
    events: list[tuple[str, str, int, int]] = []
    for run in runs:
        if _EXTENSION_BEFORE.search(text[max(0, run[0][0] - 25):run[0][0]]):
            continue  # "poste 22", "extension 4": not part of any number
        i = 0
        leftover: list[tuple[int, int, str]] = []
        while i < len(run):
            found = None
            acc = ""
            for j in range(i, len(run)):
                acc += run[j][2]
                if len(acc) > 11:
                    break
                e164 = _valid_e164(acc) if len(acc) == 10 or (len(acc) == 11 and acc[0] == "1") else None
                if e164:
                    found = (j, e164)  # keep going: "1 514 555 0101" is longer and also valid
            if found:
                if leftover:
                    events.append(("part", "".join(t[2] for t in leftover), leftover[0][0], leftover[-1][1]))
                    leftover = []
                j, e164 = found
                events.append(("num", e164, run[i][0], run[j][1]))
                i = j + 1
            else:
                leftover.append(run[i])
                i += 1
        if leftover:
            events.append(("part", "".join(t[2] for t in leftover), leftover[0][0], leftover[-1][1]))

    result: list[list] = []  # [e164, start, end]
    prev_end = 0
    for kind, value, start, end in events:
        gap = text[prev_end:start]
        corrected = bool(result) and start - result[-1][2] <= 60 and _CORRECTION.search(text[result[-1][2]:start])
        if kind == "num":
            if corrected and _CORRECTION.search(gap):
                result[-1] = [value, start, end]  # "…0101, sorry, 514-555-0102": the second wins
            else:
                result.append([value, start, end])
        elif corrected and 1 <= len(value) <= 7 and not _STREET_AFTER.match(text[end:end + 12]):
            # "438-555-0128, non attendez, c'est 0127": replace the tail of the last number.
            national = phonenumbers.parse(result[-1][0], None).national_number
            base = str(national)
            fixed = _valid_e164(base[: len(base) - len(value)] + value)
            if fixed:
                result[-1] = [fixed, result[-1][1], end]
        prev_end = end

    seen: set[str] = set()
    out = []
    for e164, start, _ in result:
        if e164 not in seen:  # "je répète, 367-555-0102": said twice, one number
            seen.add(e164)
            out.append((e164, start))
    return out


def phone_candidates(transcript: str) -> list[str]:
    """Every valid number said in the transcript (digits or words), in order, E.164,
    corrections applied, repeats and extensions left out, cut-off numbers dropped."""
    return [e164 for e164, _ in _phone_events(transcript)]


def _normalize_caller_id(caller_id: str | None) -> str | None:
    if not caller_id:
        return None
    try:
        number = phonenumbers.parse(caller_id, "CA")
    except phonenumbers.NumberParseException:
        return None  # "anonymous", "unknown", …
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _choose_phone(transcript: str, caller_id: str | None) -> str | None:
    """The number said wins over the caller id (people call from work and want a call
    back on their cell); among several, the first one introduced as a callback number."""
    events = _phone_events(transcript)
    if not events:
        return _normalize_caller_id(caller_id)
    text = normalize_spoken_digits(transcript)
    for e164, start in events:
        if _CALLBACK_CUE.search(text[max(0, start - 45):start]):
            return e164
    return events[0][0]


# --------------------------------------------------------------------------------------
# Symbol streams (postal codes, spelled words)
# --------------------------------------------------------------------------------------

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


def _symbols(text: str) -> list[tuple[str | None, int, int]]:
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
        elif low in _UNITS and low not in ("oh", "o"):
            syms = [str(_UNITS[low])]
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


_POSTAL = re.compile(r"^[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\d[ABCEGHJ-NPRSTV-Z]\d$")


def _postal_code(text: str) -> str | None:
    """First Canadian postal code written or spelled; after a correction, the last."""
    syms = _symbols(text)
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
    return _pick_with_correction(text, found)


def _pick_with_correction(text: str, found: list[tuple[str, int, int]]) -> str | None:
    """First value found, unless a later different one follows a correction word."""
    if not found:
        return None
    chosen = found[0]
    for item in found[1:]:
        if item[0] != chosen[0] and _CORRECTION.search(text[chosen[2]:item[1]]):
            chosen = item
    return chosen[0]


# --------------------------------------------------------------------------------------
# Emails
# --------------------------------------------------------------------------------------

_WRITTEN_EMAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_TLDS = {"com", "ca", "net", "org", "info", "biz", "io", "co", "me", "us", "uk", "fr", "edu", "gov",
         "be", "ch", "app", "dev", "ai", "tv", "quebec"}
_EMAIL_MARKERS = [
    (re.compile(r"(?i)(?:\b|(?<=\s))(?:(?:à|a) ?robase?|arobas|a commercial|at sign)\b|@"), " @ "),
    (re.compile(r"(?i)\b(?:underscore|under score|tiret bas|trait de soulignement|barre de soulignement"
                r"|soulign[ée])\b"), " _ "),
    (re.compile(r"(?i)\b(?:tiret|trait d'union|dash|hyphen)\b"), " - "),
    (re.compile(r"(?i)\b(?:point|dot)\b"), " . "),
]


# Words that introduce an address ("my email is …", "c'est …"): never part of it.
_EMAIL_LEAD_WORDS = {"is", "est", "c'est", "email", "mail", "courriel", "me", "moi", "at", "to", "a", "à", "sur", "us"}
_JOINERS = {".", "_", "-"}


def _email_tokens(text: str) -> list[str]:
    """Tokens of the text with said markers turned into symbols: labels, ".", "_", "-",
    "@", and "STOP" for punctuation (a sentence period is a STOP, "gmail.com" is not)."""
    text = normalize_spoken_digits(text)  # "jblackwood seventy-seven" → "jblackwood 77"
    for pattern, repl in _EMAIL_MARKERS:
        text = pattern.sub(repl, text)
    tokens = []
    for m in re.finditer(r"\.(?=\s|$)|[.@_]|\s-\s|[,;:!?()\"«»]|[^\s.@_,;:!?()\"«»]+", text):
        tok = m.group(0).strip()
        if m.group(0) == "." and (m.end() == len(text) or text[m.end()].isspace()) \
                and not (m.start() > 0 and text[m.start() - 1].isspace()):
            tok = "STOP"  # "…dot com. Or call me": a period written by Whisper, not said
        elif tok in (",", ";", ":", "!", "?", "(", ")", '"', "«", "»"):
            tok = "STOP"
        elif re.fullmatch(r"[A-Za-z0-9](?:-[A-Za-z0-9])+", tok):
            tok = tok.replace("-", "")  # "j-b-l-a-c-k" spelled with hyphens → one label
        tokens.append(tok)
    return tokens


def _label(tok: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", _fold(tok)))


def _single(tok: str) -> bool:
    return len(tok) == 1 and tok.isascii() and tok.isalnum()


def _piece_back(tokens: list[str], j: int) -> tuple[str, int] | None:
    """The piece of an address ending at token j, and the index where it starts: a word,
    or a run of single spelled characters ("j b l" → "jbl"); digits said right after a
    word belong to it ("lee ninety" → "lee90", "renos four u" → "renos4u")."""
    if j < 0 or not _label(tokens[j]):
        return None
    start = j
    if _single(tokens[j]):
        while start - 1 >= 0 and _single(tokens[start - 1]):
            start -= 1
    piece = "".join(tokens[start:j + 1])
    if piece[0].isdigit() and start - 1 >= 0:
        before = tokens[start - 1]
        if _label(before) and not _single(before) and not before.isdigit() and _fold(before) not in _EMAIL_LEAD_WORDS:
            start -= 1
            piece = before + piece
    return piece, start


def _piece_forward(tokens: list[str], j: int) -> tuple[str, int] | None:
    """A piece of a domain starting at token j, and the index after it."""
    if j >= len(tokens) or not _label(tokens[j]):
        return None
    end = j + 1
    if _single(tokens[j]):
        while end < len(tokens) and _single(tokens[end]):
            end += 1  # "c a" spelled → "ca"
    piece = "".join(tokens[j:end])
    while end + 1 < len(tokens) and tokens[end] == "-" and _label(tokens[end + 1]):
        piece += "-" + tokens[end + 1]  # "toitures tiret boucher"
        end += 2
    return piece, end


def _email(text: str) -> str | None:
    """First email written or said; lowercase, accents removed (not allowed in addresses)."""
    m = _WRITTEN_EMAIL.search(text)
    if m:
        return _fold(m.group(0).rstrip("."))
    tokens = _email_tokens(text)
    for k, tok in enumerate(tokens):
        weak = tok.casefold() == "at"  # "at" is also a preposition: the domain must confirm
        if tok != "@" and not weak:
            continue
        # Local part, backwards: pieces joined by said dots, underscores or dashes.
        local: list[str] = []
        found = _piece_back(tokens, k - 1)
        while found:
            piece, start = found
            local.insert(0, piece)
            joiner = tokens[start - 1] if start >= 1 else None
            found = _piece_back(tokens, start - 2) if joiner in _JOINERS else None
            if found:
                local.insert(0, joiner)
        if not local or (len(local) == 1 and len(local[0]) == 1):
            # Nothing, or one lone character: the start of the address was said in words we
            # cannot spell; better no email than a wrong one.
            continue
        if len(local) == 1 and _fold(local[0]) in _EMAIL_LEAD_WORDS:
            continue
        # Domain, forwards: label (. label)+ ending with a known top-level domain.
        labels: list[str] = []
        best = 0
        j = k + 1
        while (found := _piece_forward(tokens, j)):
            piece, j = found
            labels.append(piece)
            if len(labels) > 1 and _fold(piece) in _TLDS:
                best = len(labels)
            if j < len(tokens) and tokens[j] == ".":
                j += 1
                continue
            break
        if not best:
            continue
        address = _fold("".join(local) + "@" + ".".join(labels[:best]))
        if re.fullmatch(r"[a-z0-9][a-z0-9._%+\-]*@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}", address):
            return address
    return None


# --------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------

_UP = "A-ZÀ-ÖØ-ÞŒ"
_LO = "a-zß-öø-ÿœ"
# "Hélène", "O'Brien", "MacLeod", "Côté-Giguère", "Marie-Ève", "D'Amours"
_NAME = rf"(?:[{_UP}][{_LO}]*'[{_UP}{_LO}][{_LO}]+|[{_UP}][{_LO}]+(?:[{_UP}][{_LO}]+)?)(?:-[{_UP}{_LO}][{_LO}]+)*"
_TITLE = r"(?:[Mm]onsieur|[Mm]adame|[Mm]ademoiselle|Mme|Mlle|M\.|Mr\.?|Mrs\.?|Ms\.?|Miss|Dr\.?|[Dd]octeur|[Dd]octor)"
_FILLER = r"(?:(?:euh|heu|hum|uh|um|ben|bien|well|so|là|oui|yeah)[,.]?\s+)*"

# Words that follow "c'est", "ici", "it's", "this is" with a capital but are not names:
# pronouns, greetings, days and months, places and trade words that Whisper capitalises.
_NAME_STOPWORDS = {_fold(w) for w in """
    bonne bon belle joyeux joyeuses happy merry good have best
    pour urgent urgence moi la le les lui elle nous vous toi un une des de du au aux ça ca ce cette
    mon ma mes ton ta tes son sa ses notre votre leur pas plus juste vraiment correct possible
    bon beau important pressant ici là oui non bonjour bonsoir allô allo salut merci madame
    monsieur hi hello hey thanks thank yes no okay ok sorry the a an my your our his her its it
    about just not really only i me we you they he she that this what who urgent emergency
    lundi mardi mercredi jeudi vendredi samedi dimanche monday tuesday wednesday thursday friday
    saturday sunday janvier février mars avril mai juin juillet août septembre octobre novembre
    décembre january february march april may june july august september october november december
    québec quebec montréal montreal laval longueuil gatineau sherbrooke lévis levis trois-rivières
    saguenay terrebonne toronto ottawa canada ontario brossard
    google facebook internet hydro vidéotron videotron english anglais français french
    """.split()}
# Trade and company words: a "name" containing one is a business ("ici Toitures Laurentides",
# "this is Tremblay Roofing"), whoever is calling for it.
_TRADE_WORDS = {_fold(w) for w in """
    plomberie plombier construction constructions rénovation rénovations toiture toitures gestion
    services service entreprise entreprises groupe garage clinique salon électricité électrique
    électricien déménagement extermination inc ltée ltd compagnie immeubles immobilier solutions
    marketing chauffage climatisation paysagement excavation pavage transport nettoyage
    plumbing roofing roofers heating cooling electric electrical construction renovations renovation
    landscaping cleaning moving movers company corp corporation group dental clinic realty
    properties management contracting contractors painting insurance assurances bank banque
    """.split()}
_COMPOUND_FIRST = {_fold(w) for w in "marie jean anne pierre louis marc paul luc".split()}

_NAME_SEQ = rf"(?P<title>{_TITLE}\s+)?(?P<first>{_NAME})(?P<rest>(?: {_NAME}){{0,2}})"
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
    rf"(?P<last>{_NAME}(?:[ -]{_NAME})?)"
)
_POST_CUES = re.compile(
    rf"(?<![\w'-])(?P<first>{_NAME})(?P<rest>(?: {_NAME}){{0,2}}) (?i:à l'appareil|qui parle|here|speaking)\b"
)
_GREETING_NAME = re.compile(
    rf"(?i:\b(?:bonjour|bonsoir|allô|allo|salut|hi|hello|hey|good (?:morning|afternoon|evening))(?: there)?)"
    rf"[,!.]\s+(?P<first>{_NAME}) (?P<rest>{_NAME})\s*[.,]"
)
# A full name said alone as a sentence, usually as a sign-off: "… au 450 555 1017. Sylvie Charbonneau."
_BARE_NAME = re.compile(
    rf"(?:^|(?<=[.!?] ))(?P<first>{_NAME}) (?P<rest>{_NAME})(?:(?=[.!]?(?: |$))(?![ ,] ?[{_LO}])|(?=, ?\d))"
)
_SPELLED = re.compile(
    r"(?i:(?:that's|that is|spelled|spelt|ça s'écrit|ca s'ecrit|qui s'écrit|s'écrit|c'est|je répète)\s+)?"
    r"(?P<seq>(?:[A-Za-z](?:\s+(?:comme|as in|like|for)\s+[^\W\d_]+)?(?:\s*[-.]\s*|\s*,\s*|\s+)){1,30}"
    r"[A-Za-z](?:\s+(?:comme|as in|like|for)\s+[^\W\d_]+)?)(?![\w'])"
)


def _ok_name(word: str) -> bool:
    f = _fold(word)
    return len(f) >= 2 and f not in _NAME_STOPWORDS and not word.isupper()


def _spelled_after(text: str, pos: int) -> str | None:
    """A word spelled letter by letter right after `pos` ("Roy, R-O-Y"), capitalised."""
    found = _spelled_span(text, pos)
    return found[0] if found else None


def _spelled_span(text: str, pos: int) -> tuple[str, int] | None:
    """(spelled word, end position) for a word spelled right after `pos`."""
    m = re.match(r"[\s,.]{0,3}" + _SPELLED.pattern, text[pos:pos + 120])
    if not m:
        return None
    seq = m.group("seq")
    seq = re.sub(r"(?i)\s+(?:comme|as in|like|for)\s+[^\W\d_]+", "", seq)
    letters = re.findall(r"[A-Za-z]", seq)
    hyphenated = "-" in seq or "." in seq
    if len(letters) < (2 if hyphenated else 3):
        return None
    word = "".join(letters)
    return word[0].upper() + word[1:].lower(), pos + m.end()


def _name(text: str, business: str | None) -> tuple[str | None, str | None]:
    business_words = {_fold(w) for w in re.findall(r"[^\W\d_]+", business or "") if len(w) > 2}
    candidates = []
    for pattern in (_STRONG_CUES, _WEAK_CUES, _POST_CUES, _GREETING_NAME, _BARE_NAME):
        for m in pattern.finditer(text):
            before = text[max(0, m.start() - 30):m.start()]
            if pattern is _WEAK_CUES and m.start() > 0 and not _CLAUSE_START.search(before):
                continue
            first = m.group("first")
            rest = m.group("rest").split()
            if not _ok_name(first) or any(_fold(w) in _TRADE_WORDS for w in [first] + rest):
                continue
            if first.endswith("ing") or text[m.end():m.end() + 2] == "'s":
                continue  # "I'm Looking…" (a capital by mistake), "Dr. Patel's office" (a business)
            if _fold(first) in business_words:
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
    if titled:  # "c'est madame Tremblay": a title alone goes with the family name
        return (first, " ".join(rest)) if rest else (None, first)
    if len(rest) == 2 and _fold(first) in _COMPOUND_FIRST:
        first, rest = f"{first}-{rest[0]}", rest[1:]  # "Marie Ève Thibodeau"
    last = " ".join(rest) or None
    if last is None:
        # "C'est Vincent, Vincent Giroux": the name said again, in full.
        again = re.match(rf",?\s+{re.escape(first)} (?P<last>{_NAME})", text[end:])
        if again and _ok_name(again.group("last")):
            last = again.group("last")
            end += again.end()
    spelled_span = _spelled_span(text, end)
    spelled = spelled_span[0] if spelled_span else None
    if spelled and last is None and _fold(spelled) == _fold(first):
        # "this is Bob, B-O-B, Campbell": the first name spelled, then the family name.
        after = re.match(rf"[,.]?\s+(?P<last>{_NAME})(?![\w'])", text[spelled_span[1]:])
        if after and _ok_name(after.group("last")) and _fold(after.group("last")) not in _TRADE_WORDS:
            last = after.group("last")
            spelled = _spelled_after(text, spelled_span[1] + after.end())
    if spelled:
        if last and _fold(spelled) != _fold(last) and _fold(spelled) != _fold(first):
            last = spelled  # the spelling is what the caller wants written ("Roi, R-O-Y")
        elif not last and _fold(spelled) != _fold(first):
            last = spelled
    if last is None and family and _ok_name(family.group("last")):
        last = family.group("last")  # "… moi c'est Karim, pis mon nom de famille c'est Haddad"
        spelled = _spelled_after(text, family.end())
        if spelled and _fold(spelled) != _fold(last):
            last = spelled
    return first, last


# --------------------------------------------------------------------------------------
# Street address
# --------------------------------------------------------------------------------------

_FR_TYPES = (r"rue|avenue|av\.|boulevard|boul\.?|blvd|chemin|ch\.|rang|route|mont[ée]e|place|c[ôo]te"
             r"|croissant|impasse|all[ée]e|promenade|terrasse|carr[ée]|ruelle|voie|circuit|square")
_EN_TYPES = (r"street|st\.?|avenue|ave\.?|road|rd\.?|drive|dr\.?|boulevard|blvd\.?|crescent|court|ct\.?"
             r"|lane|ln\.?|way|place|pl\.?|circle|terrace|parkway|trail|row|square|highway|hwy")
_DIRECTION = r"(?:[Ee]st|[Oo]uest|[Nn]ord|[Ss]ud|East|West|North|South|E\.|O\.|W\.|N\.|S\.)"
_STREET_NUM = r"(?<![\w\-])(?P<num>\d{1,6}(?:-\d{1,5})?[A-Za-z]?)(?![\w\-])"
_PARTICLE = r"(?:de la |de l'|des |du |de |d'|la |le |les |l')"
_STREET_NAME_WORD = rf"(?:{_NAME}|\d{{1,3}}(?:e|re|er|th|st|nd|rd))"
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
    rf"{_STREET_NUM}\s+(?P<name>{_NAME}(?:\s+{_NAME}){{0,2}}?)\s+"
    rf"(?P<dir>East|West|North|South|Est|Ouest|Nord|Sud)(?![\w])"
)
_UNIT = re.compile(
    r"^\s*,?\s*(?P<unit>(?i:apartment|apt\.?|appartement|app\.?|unit|suite|logement|unité|bureau|local)"
    r"\s*#?\s*(?:num[ée]ro\s*)?\d+[A-Za-z]?)(?!\w)"
)


def _street_address(text: str) -> str | None:
    found = []
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
    return _pick_with_correction(text, found)


# --------------------------------------------------------------------------------------
# Urgency
# --------------------------------------------------------------------------------------

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
_URGENT = re.compile(r"(?i)(?:" + "|".join(_URGENT_PATTERNS) + r")")
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


def _urgent(text: str) -> bool:
    if _SAFETY.search(text) and not _negated_everywhere(text, _SAFETY):
        return True
    if _NOT_URGENT.search(text):
        return False
    return not _negated_everywhere(text, _URGENT)


def _negated_everywhere(text: str, pattern: re.Pattern) -> bool:
    """True when the pattern is absent, or every match is negated ("pas de dégât d'eau")."""
    for m in pattern.finditer(text):
        if _SELF_NEGATING.match(m.group(0)):
            return False  # "pas de chauffage" carries its own negation
        if not _NEGATED.search(text[max(0, m.start() - 25):m.start()]):
            return False
    return True


# --------------------------------------------------------------------------------------
# Language
# --------------------------------------------------------------------------------------

_FR_WORDS = set("""
    le la les de des du un une et est je tu il elle on nous vous ils mon ma mes ton ta ses pour que qui
    pas au aux avec dans sur ça ca ai suis merci bonjour oui allô allo pis mais ou si en par plus
    rappeler rappelez numéro c'est j'ai j'aimerais je voudrais chez nous notre votre bonne journée
    salut euh fait faut faudrait vous être avoir comme très aussi là y'a quelqu'un s'il plaît
    """.split())
_EN_WORDS = set("""
    the a an and is it's i i'm my me you your to of in on for at this that with can could would please
    thanks thank hi hello call back number are was be have has i'd i'll we we're our there just like
    from but or if so get some someone need want looking yeah hey bye it not any
    """.split())


def _language(text: str) -> str:
    fr = en = 0
    for tok in re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", text.casefold()):
        if tok in _FR_WORDS or re.match(r"^(?:j|c|l|d|qu|m|n|s|t)'", tok):
            fr += 1
        elif tok in _EN_WORDS or re.match(r"^\w+'(?:s|t|m|d|ll|re|ve)$", tok):
            en += 1
    return "en" if en > fr else "fr"


# --------------------------------------------------------------------------------------
# Need
# --------------------------------------------------------------------------------------

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
    rf"(?:{_TITLE}\s+)?{_NAME}(?: {_NAME}){{0,2}}(?:\s+(?:de|du|from|with)\s+(?:[{_UP}][\w'-]*\s*)+)?"
    rf"(?:,?\s+[A-Z](?:-[A-Z])+)?\s*(?:[,.]|(?i:calling|qui parle|à l'appareil))?\s*"
)
_FILLERS = re.compile(r"(?i)\b(?:euh|heu|hum|uh|um)\b[,.]?\s*")


def _need(text: str) -> str | None:
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
        if _PROBLEM_CUES.search(s) or _URGENT.search(s):
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


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def extract(transcript: str, caller_id: str | None, *, business: str | None = None) -> Extracted:
    """All fields of one voicemail. `business` (the business's name) is optional; when
    given, its words are never taken as the caller's name ("ici Plomberie Gagnon")."""
    text = _prep(transcript)
    first, last = _name(text, business)
    return Extracted(
        first_name=first,
        last_name=last,
        phone=_choose_phone(text, caller_id),
        email=_email(text),
        postal_code=_postal_code(text),
        street_address=_street_address(text) or _street_address(normalize_spoken_digits(text)),
        need=_need(text),
        urgent=_urgent(text),
        language=_language(text),
    )
