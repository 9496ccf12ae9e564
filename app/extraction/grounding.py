"""Keep only what the language model says that the caller actually said.

A model can invent a plausible phone number or a name. Every value it returns is
checked against the transcript (or, for the phone, the caller id the network gave);
anything it cannot point to is dropped and the rules' value stays.

Every check matches whole words: value and transcript are cut into tokens (accents
removed, casefolded, runs of letters and runs of digits; an apostrophe or a hyphen
splits), and the value's tokens must occur as a contiguous run of the transcript's.
A substring test is not enough: "OUR" is inside "mon jour", "Ou" inside almost
anything, and "221-555-0168" inside a phone number is not a civic address.

- a name must be three letters or more, not only greetings or fillers ("Bonjour",
  "Mon Jour"), said as words, or spelled letter by letter as one whole run
  ("B-L-A-N-C"); a full name given as a first name is split;
- an email's pieces (split on @ . - _) must be said in order, the punctuation either
  written or said ("arobas", "at", "point", "dot", "tiret", "dash", "underscore");
- a postal code's six symbols must be one run of `spelled.symbols()`;
- a street address must hold a street word (rue, avenue, street, road…) and start
  with a civic number said as a number (digits or number words), not a piece of a
  phone number, immediately followed by the street's words.

`merge` then applies a per-field policy: "rules" ignores the model, "fill" uses the
model's grounded value only where the rules found nothing, "model" lets it replace
the rules' value.
"""

from __future__ import annotations

import re
import unicodedata

from app import normalize
from app.extraction.addresses import DIRECTION_WORDS, STREET_WORDS, join_thousands
from app.extraction.names import not_a_name, split_full_name
from app.extraction.numbers import normalize_spoken_digits
from app.extraction.phones import phone_candidates
from app.extraction.spelled import symbols

__all__ = [
    "MODEL_FIELDS", "DEFAULT_POLICY", "words", "phone_grounded", "text_grounded", "name_grounded",
    "postal_grounded", "email_grounded", "address_grounded", "merge",
]

# Fields a language model may fill, in the order of the lead.
MODEL_FIELDS = ("first_name", "last_name", "phone", "email", "postal_code", "street_address", "need", "urgent")
DEFAULT_POLICY = {field: "fill" for field in MODEL_FIELDS} | {"need": "rules", "urgent": "rules"}

_TOKEN = re.compile(r"[^\W\d_]+|\d+")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(token, start, end) per run of letters or of digits, accent-blind and casefolded;
    positions are in the NFC text."""
    text = unicodedata.normalize("NFC", text or "")
    out = []
    for m in _TOKEN.finditer(text):
        decomposed = unicodedata.normalize("NFKD", m.group(0))
        tok = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
        if tok:
            out.append((tok, m.start(), m.end()))
    return out


def words(text: str | None) -> list[str]:
    """Whole-word tokens of `text`: NFKD, accents removed, casefolded, runs of letters
    and runs of digits ("Marc-André O'Neil 12B" → marc, andre, o, neil, 12, b)."""
    return [t for t, _, _ in _tokens(text or "")]


def _find(needle: list[str], haystack: list[str]) -> list[int]:
    """Start indexes where `needle` occurs as a contiguous run of `haystack`."""
    n = len(needle)
    if not n:
        return []
    return [i for i in range(len(haystack) - n + 1) if haystack[i:i + n] == needle]


def phone_grounded(phone: str, transcript: str, caller_id: str | None) -> str | None:
    e164 = normalize.phone(phone or "")
    if not e164:
        return None
    return e164 if e164 == caller_id or e164 in phone_candidates(transcript) else None


def _spelled_runs(tokens: list[str]) -> list[str]:
    """Each maximal run of single-letter tokens, joined ("b l a n c" → "blanc")."""
    runs, current = [], ""
    for tok in tokens + [""]:
        if len(tok) == 1 and tok.isalpha():
            current += tok
        else:
            if len(current) >= 2:
                runs.append(current)
            current = ""
    return runs


def text_grounded(value: str | None, transcript: str) -> str | None:
    """`value` (stripped) when its words occur, whole and in order, in the transcript."""
    value = (value or "").strip()
    want = words(value)
    return value if want and _find(want, words(transcript)) else None


def name_grounded(value: str | None, transcript: str) -> str | None:
    """A name said as whole words, or spelled as one whole run of letters; one or two
    letters are never a name ("Ou", "Th")."""
    value = (value or "").strip()
    want = words(value)
    if not want or any(t.isdigit() for t in want) or not_a_name(value):
        return None  # "Ou", "Th", "Bonjour", "Mon Jour"
    have = words(transcript)
    if _find(want, have) or "".join(want) in _spelled_runs(have):
        return value
    return None


def postal_grounded(value: str | None, transcript: str, rules_value: str | None) -> str | None:
    """The code's six symbols said as one run (written, spelled, spelling alphabet…)."""
    code = normalize.postal_code(value or "")
    if not code:
        return None
    if code == rules_value:
        return code
    stream = [s for s, _, _ in symbols(transcript)]
    want = list(code.replace(" ", ""))
    return code if any(stream[i:i + 6] == want for i in range(len(stream) - 5)) else None


# Said punctuation of an email, as token runs.
_SAID_PUNCT = {
    "@": [["arobas"], ["arobase"], ["a", "robas"], ["a", "robase"], ["at"], ["a", "commercial"], ["at", "sign"]],
    ".": [["point"], ["dot"]],
    "-": [["tiret"], ["dash"], ["hyphen"], ["trait", "d", "union"]],
    "_": [["underscore"], ["under", "score"], ["tiret", "bas"]],
}


def _piece_ends(piece: str, have: list[str], i: int) -> list[int]:
    """Indexes just after `piece` (folded letters and digits) said from token i: the
    tokens must concatenate to it exactly, each being a whole letter or digit run of
    the piece ("lee", "90" for "lee90") or a single spelled character ("d k w")."""
    runs = {m.group(0) for m in _TOKEN.finditer(piece)}
    ends = []

    def walk(pos: int, j: int) -> None:
        if pos == len(piece):
            ends.append(j)
            return
        if j >= len(have):
            return
        tok = have[j]
        if not piece.startswith(tok, pos):
            return
        whole_run = tok in runs and (pos == 0 or piece[pos - 1].isdigit() != tok[0].isdigit()) \
            and (pos + len(tok) == len(piece) or piece[pos + len(tok)].isdigit() != tok[-1].isdigit())
        if len(tok) == 1 or whole_run:
            walk(pos + len(tok), j + 1)

    walk(0, i)
    return ends


def _email_said(email: str, text: str) -> bool:
    """Each piece of the address said in order, one after the other, the punctuation
    between two pieces either written there ("luc.pelletier@…") or said ("point")."""
    toks = _tokens(text)
    have = [t for t, _, _ in toks]
    parts = re.split(r"([@._\-])", email)
    pieces = ["".join(words(p)) for p in parts[0::2]]
    if any(not p for p in pieces):
        return False
    seps = parts[1::2]

    def match(k: int, j: int) -> bool:
        for end in _piece_ends(pieces[k], have, j):
            if k == len(pieces) - 1:
                return True
            if end < len(toks) and text[toks[end - 1][2]:toks[end][1]].strip() == seps[k] \
                    and match(k + 1, end):
                return True  # written: "luc.pelletier"
            for said in _SAID_PUNCT[seps[k]]:
                if have[end:end + len(said)] == said and match(k + 1, end + len(said)):
                    return True
        return False

    return any(match(0, j) for j in range(len(have)))


def email_grounded(value: str | None, transcript: str, rules_value: str | None) -> str | None:
    """The whole address said in order: written, or spelled out ("… arobas … point com");
    digits may be said in words ("jblackwood soixante-dix-sept")."""
    email = normalize.email(value or "")
    if not email:
        return None
    if email == rules_value:
        return email
    for text in (transcript, normalize_spoken_digits(transcript)):
        if _email_said(email.casefold(), unicodedata.normalize("NFC", text)):
            return email
    return None


_CIVIC = re.compile(r"\d+(?:-\d+)?[A-Za-z]?(?![\w])")
_RUN_JOIN = re.compile(r"^[\s\-./()]*$")  # what joins the digit groups of one phone number


def address_grounded(value: str | None, transcript: str) -> str | None:
    """A civic number said as a number, not a piece of a run of digit groups (a phone
    number), immediately followed by the street's words, a street word among them."""
    value = (value or "").strip()
    norm_value = normalize_spoken_digits(value)
    civic = _CIVIC.match(norm_value)
    want = words(norm_value)
    if not civic or len(want) <= len(words(civic.group(0))) or want[len(words(civic.group(0)))].isdigit():
        return None  # no civic number, or one followed by more digit groups ("221 555 0168 rue…")
    # A street word, or a direction after the name ("612 Bellerose East"): a bare number
    # sequence is never an address.
    if not any(t in STREET_WORDS for t in want[1:]) and not (len(want) >= 3 and want[-1] in DIRECTION_WORDS
                                                              and not want[-2].isdigit()):
        return None
    text = join_thousands(normalize_spoken_digits(transcript))  # "4,870 Cumberland Avenue"
    toks = _tokens(text)
    have = [t for t, _, _ in toks]
    for i in _find(want, have):
        if i > 0 and have[i - 1].isdigit() and _RUN_JOIN.match(text[toks[i - 1][2]:toks[i][1]]):
            continue  # "…555 0168 rue X", "221-555-0168": the tail of a number, not a civic number
        return value
    return None


def _model_value(field: str, answer: dict, transcript: str, caller_id: str | None, base: dict):
    expected = bool if field == "urgent" else str
    asked = {"phone": "callback_phone", "last_name": "first_name"}.get(field, field)
    if not all(isinstance(answer.get(key), (expected, type(None))) for key in {asked, field}):
        return None  # a number, a list or an object where text was asked: not an answer
    if field in ("first_name", "last_name"):
        # A full name given as the first name ("Marc-André Lefebvre") is split, never kept whole.
        first, rest = split_full_name(str(answer.get("first_name") or "").strip())
        if field == "first_name":
            return name_grounded(first, transcript)
        return name_grounded(answer.get("last_name") or rest, transcript)
    if field == "phone":
        return phone_grounded(answer.get("callback_phone") or answer.get("phone") or "", transcript, caller_id)
    if field == "email":
        return email_grounded(answer.get("email"), transcript, base.get("email"))
    if field == "postal_code":
        return postal_grounded(answer.get("postal_code"), transcript, base.get("postal_code"))
    if field == "street_address":
        return address_grounded(answer.get("street_address"), transcript)
    if field == "need":
        return normalize.clean(str(answer.get("need") or ""))[:200] or None
    return answer.get("urgent") if isinstance(answer.get("urgent"), bool) else None


def merge(base: dict, answer: dict, transcript: str, caller_id: str | None,
          *, policy: dict[str, str] | None = None) -> dict:
    """The rules' fields (`base`), with the model's grounded values applied per field
    as `policy` says: "rules" (the model's value is ignored), "fill" (used only where
    the rules found nothing) or "model" (replaces the rules'). `need` is a summary, not
    groundable: it is taken as is. For `urgent`, "model" lets the model's boolean
    replace the rules'; "fill" is treated as "rules" (a model never adds urgency on
    its own). Fields missing from `policy` follow DEFAULT_POLICY."""
    merged = dict(base)
    rules_of = DEFAULT_POLICY | (policy or {})
    for field in MODEL_FIELDS:
        how = rules_of.get(field, "rules")
        if how not in ("fill", "model") or (field == "urgent" and how != "model"):
            continue
        value = _model_value(field, answer, transcript, caller_id, base)
        if value is None or value == "":
            continue
        if how == "model" or base.get(field) in (None, ""):
            merged[field] = value
    return merged
