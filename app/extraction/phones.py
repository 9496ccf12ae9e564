"""Phone numbers said in a voicemail, and the one to call back.

Number words are first turned into digit chunks (numbers.py), then consecutive chunks
are assembled into numbers that `phonenumbers` (region CA) accepts, so a grouping we
never saw still works and a cut-off number is simply invalid and dropped. Callers
correct themselves ("…0128, non attendez, c'est 0127"): a short run of digits after a
correction word replaces the tail of the number just said; a full number after a
correction word replaces it entirely. Extensions ("poste 22") are never part of a number.
"""

from __future__ import annotations

import re

import phonenumbers

from app import normalize
from app.extraction.numbers import normalize_spoken_digits
from app.extraction.text import CORRECTION, inside_loop, loop_spans

_DIGITS = re.compile(r"(?<!\w)\d+(?!\w)")
# What may separate the chunks of one number as Whisper writes it: "(514) 555-0101",
# "514.555.0101", "cinq cinq cinq, zéro…" (after normalisation "555, 0…").
_CHUNK_SEP = re.compile(r"^[\s,.\-/()+]{0,5}$")
_EXTENSION_BEFORE = re.compile(
    r"(?i)\b(?:poste|extension|ext|local|option)\.?\s*(?:#|num[ée]ro|number|no\.?)?\s*$"
)
_STREET_AFTER = re.compile(
    r"(?i)^\s*,?\s*(?:rue|avenue|av|boulevard|boul|blvd|chemin|rang|route|mont[ée]e|street|st|road|rd"
    r"|drive|dr|crescent|court|lane|way|place|ans|years|pieds|feet|\$|dollars)\b"
)
_CALLBACK_CUE = re.compile(
    r"(?i)(?:rappel|rejoindre|joindre|appelez-moi|appelle-moi|m'appeler|t[ée]l[ée]phone|texte|cell|mon num[ée]ro"
    r"|call me|call back|reach me|text me|my number|my cell|phone is|number is)"
)


def is_valid_phone_digits(digits: str) -> bool:
    """Ten digits (or eleven with the leading 1) that make a valid number."""
    return _valid_e164(digits) is not None


def _valid_e164(digits: str) -> str | None:
    # Ten digits, or eleven with the leading 1: anything else is a cut-off or an extension.
    return normalize.phone(digits) if 10 <= len(digits) <= 11 else None


def _said_numbers(transcript: str) -> tuple[str, list[tuple[str, int, int]], list[tuple[int, int]]]:
    """The normalised text; (E.164, start, end) in it of every number said, corrections
    applied, repeats kept; and the spans of runs of digit groups that repeat themselves
    ("516,515,515,510,510,514": a recognition loop, not a dictation)."""
    text = normalize_spoken_digits(transcript)
    tokens = [(m.start(), m.end(), m.group(0)) for m in _DIGITS.finditer(text)]

    runs: list[list[tuple[int, int, str]]] = []
    for tok in tokens:
        if runs and _CHUNK_SEP.match(text[runs[-1][-1][1]:tok[0]]):
            runs[-1].append(tok)
        else:
            runs.append([tok])
    repetitive = [(run[0][0], run[-1][1]) for run in runs if _repeats_groups(run)]

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
        corrected = bool(result) and start - result[-1][2] <= 60 and CORRECTION.search(text[result[-1][2]:start])
        if kind == "num":
            if corrected and CORRECTION.search(gap):
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

    return text, [(e164, start, end) for e164, start, end in result], repetitive


def _repeats_groups(run: list[tuple[int, int, str]]) -> bool:
    """A group of two digits or more said again right after itself ("515, 515"): people
    dictating a number do not do that, a recogniser stuck in a loop does."""
    return any(a[2] == b[2] and len(a[2]) >= 2 for a, b in zip(run, run[1:], strict=False))


def phone_candidates(transcript: str) -> list[str]:
    """Every valid number said in the transcript (digits or words), in order, E.164,
    corrections applied, repeats and extensions left out, cut-off numbers dropped."""
    seen: list[str] = []
    for e164, _, _ in _said_numbers(transcript)[1]:
        if e164 not in seen:  # "je répète, 367-555-0102": said twice, one number
            seen.append(e164)
    return seen


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


def callback_phone(transcript: str, caller_id: str | None) -> str | None:
    """The number to call back.

    A number said in a recognition loop ("400 500 500 500 500 500 000 1 2 9") is never
    taken: the loop assembles valid-looking numbers out of nothing. With a caller id, a
    number said wins over it only when well supported: introduced as a callback number
    ("rappelez-moi au", "call me at", "mon numéro") or said twice — people call from
    work and want a call back on their cell, and they say so. Without a caller id, the
    first number introduced as a callback number, else the first number said.
    """
    cid = _normalize_caller_id(caller_id)
    text, said, repetitive = _said_numbers(transcript)
    loops = loop_spans(text) + repetitive
    clean = [(e164, start, end) for e164, start, end in said if not inside_loop(loops, start, end)]
    times = {e164: sum(1 for other, _, _ in clean if other == e164) for e164, _, _ in clean}
    cued = [e164 for e164, start, _ in clean if _CALLBACK_CUE.search(text[max(0, start - 45):start])]
    if cued:
        return cued[0]
    twice = [e164 for e164, _, _ in clean if times[e164] >= 2]
    if twice:
        return twice[0]
    if cid:
        return cid
    return clean[0][0] if clean else None
