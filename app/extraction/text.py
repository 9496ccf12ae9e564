"""Text helpers shared by every finder: transcript clean-up, accent-blind comparison,
the caller's self-corrections ("non attendez, c'est…") and recognition loops (Whisper
repeating the same words: nothing found inside one can be trusted)."""

from __future__ import annotations

import re
import unicodedata

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


def prep(text: str) -> str:
    """NFC, straight apostrophes, no Whisper credits, single spaces."""
    text = unicodedata.normalize("NFC", text or "")
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u00a0", " ")
    text = _HALLUCINATIONS.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def fold(word: str) -> str:
    """Lowercase without accents: comparisons must not depend on how Whisper accents."""
    decomposed = unicodedata.normalize("NFD", word.casefold())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


# Words a caller uses to take back what was just said ("…0128, non attendez, c'est 0127").
CORRECTION = re.compile(
    r"(?i)\b(?:non|no|nope|pardon|sorry|d[ée]sol[ée]e?|excusez|excuse|oups|oops|i mean|je veux dire"
    r"|plut[ôo]t|attendez|attends|wait|actually|en fait|correction|scratch that|my bad|my mistake"
    r"|je me suis tromp[ée]e?|je recommence)\b"
)


def pick_with_correction(text: str, found: list[tuple[str, int, int]]) -> str | None:
    """First value found, unless a later different one follows a correction word.

    `found` holds (value, start, end) per value, in the order they appear in `text`.
    """
    if not found:
        return None
    chosen = found[0]
    for item in found[1:]:
        if item[0] != chosen[0] and CORRECTION.search(text[chosen[2]:item[1]]):
            chosen = item
    return chosen[0]


_LOOP_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def _loops(text: str) -> list[tuple[int, int, int]]:
    """(start, end of the first repetition, end) of each recognition loop in `text`."""
    toks = [(m.group(0).casefold(), m.start(), m.end()) for m in _LOOP_TOKEN.finditer(text)]
    words = [t for t, _, _ in toks]
    spans: list[tuple[int, int, int]] = []
    for n in range(1, 21):
        i = 0
        while i + 2 * n <= len(words):
            reps = 1
            while words[i + reps * n:i + (reps + 1) * n] == words[i:i + n]:
                reps += 1
            needed = 5 if n == 1 and len(words[i]) == 1 and words[i].isdigit() else 3
            if reps >= needed:
                spans.append((toks[i][1], toks[i + n - 1][2], toks[i + reps * n - 1][2]))
                i += reps * n
            else:
                i += 1
    return spans


def loop_spans(text: str) -> list[tuple[int, int]]:
    """Spans of `text` where the same token n-gram (n ≤ 20) is repeated three times or
    more in a row: Whisper stuck in a loop ("712, 712, 712", "c'est bon, c'est bon, c'est
    bon"). A single digit needs five: "cinq, cinq, cinq" is a normal dictation."""
    return [(start, end) for start, _, end in _loops(text)]


def without_loops(text: str) -> str:
    """`text` with each recognition loop said once ("so-so-so-so-so…" → "so"): counting
    words (the language) or quoting sentences (the need) must not count the loop."""
    cuts: list[tuple[int, int]] = []
    for _, first_end, end in sorted(_loops(text)):
        if cuts and first_end < cuts[-1][1]:
            continue  # inside a loop already cut
        cuts.append((first_end, end))
    for start, end in reversed(cuts):
        text = text[:start] + text[end:]
    return text


def inside_loop(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """[start, end) overlaps one of the loop `spans`."""
    return any(s < end and start < e for s, e in spans)
