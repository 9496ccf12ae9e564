"""The caller's email address, written by Whisper ("ma.lefebvre@outlook.com") or said
("jblackwood seventy-seven at gmail dot com", "toitures tiret boucher arobas videotron
point ca"): the said markers become symbols, the address is rebuilt around the "@", and
it is kept only when its domain ends with a known top-level domain.
"""

from __future__ import annotations

import re

from app.extraction.numbers import normalize_spoken_digits
from app.extraction.text import fold

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
    return bool(re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", fold(tok)))


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
        if _label(before) and not _single(before) and not before.isdigit() and fold(before) not in _EMAIL_LEAD_WORDS:
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


def email(text: str) -> str | None:
    """First email written or said; lowercase, accents removed (not allowed in addresses)."""
    m = _WRITTEN_EMAIL.search(text)
    if m:
        return fold(m.group(0).rstrip("."))
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
            if found and joiner is not None:
                local.insert(0, joiner)
        if not local or (len(local) == 1 and len(local[0]) == 1):
            # Nothing, or one lone character: the start of the address was said in words we
            # cannot spell; better no email than a wrong one.
            continue
        if len(local) == 1 and fold(local[0]) in _EMAIL_LEAD_WORDS:
            continue
        # Domain, forwards: label (. label)+ ending with a known top-level domain.
        labels: list[str] = []
        best = 0
        j = k + 1
        while (found := _piece_forward(tokens, j)):
            piece, j = found
            labels.append(piece)
            if len(labels) > 1 and fold(piece) in _TLDS:
                best = len(labels)
            if j < len(tokens) and tokens[j] == ".":
                j += 1
                continue
            break
        if not best:
            continue
        address = fold("".join(local) + "@" + ".".join(labels[:best]))
        if re.fullmatch(r"[a-z0-9][a-z0-9._%+\-]*@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}", address):
            return address
    return None
