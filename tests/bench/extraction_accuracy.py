"""Accuracy of the rules extractor per field on a JSONL file of voicemails (prints
figures; asserts nothing).

    .venv/bin/python tests/bench/extraction_accuracy.py [path.jsonl] [--recognized] [--verbose]

Each line is an object with `transcript`, `caller_id`, `expected` (and optionally
`business`, `id`), like ../shared/dev-data/voicemails.jsonl, the default. A file of
recognition outputs (tests/support/data/recognized/*.jsonl) has both `spoken` (the
written transcript) and `transcript` (what the recogniser heard): by default the
written one is scored; with `--recognized` the rules run on the recognised one.

Exact match per field; names are compared without case or accents (Whisper accents
inconsistently, a human reading the lead does not care); None == None counts as a
match. `need` is free text and is not scored here. Figures are given for all lines
and per language (`expected.language`), plus a "reachable" accuracy for names: only
the lines where the expected name occurs as whole words of the scored transcript (a
name the recogniser lost cannot be found by any rule).
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.extraction.grounding import words  # noqa: E402
from app.extraction.rules import extract  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "dev-data" / "voicemails.jsonl"
FIELDS = ["phone", "first_name", "last_name", "email", "postal_code", "urgent", "language", "street_address"]
LOOSE = {"first_name", "last_name"}


def fold(value):
    if not isinstance(value, str):
        return value
    decomposed = unicodedata.normalize("NFD", value.casefold())
    return " ".join("".join(c for c in decomposed if unicodedata.category(c) != "Mn").split())


def same(field: str, got, want) -> bool:
    if field in LOOSE:
        return fold(got) == fold(want)
    if isinstance(got, str) and isinstance(want, str):
        return " ".join(got.split()) == " ".join(want.split())
    return got == want


def reachable(name: str | None, transcript: str) -> bool:
    """The expected name occurs as whole words of the transcript (a line without a name
    to find is not counted)."""
    if not name:
        return False
    want, have = words(name), words(transcript)
    return bool(want) and any(have[i:i + len(want)] == want for i in range(len(have) - len(want) + 1))


def _pct(hit: int, n: int) -> str:
    return f"{100 * hit / n:5.1f} % ({hit:>2}/{n:<2})" if n else "    -           "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT))
    parser.add_argument("--recognized", action="store_true",
                        help="score the rules on `transcript` (recognised) of lines that also have `spoken`")
    parser.add_argument("--verbose", "-v", action="store_true", help="list every mismatch")
    args = parser.parse_args()

    rows = [json.loads(line) for line in Path(args.path).read_text(encoding="utf-8").splitlines() if line.strip()]
    groups = ["all"] + sorted({row["expected"].get("language") or "?" for row in rows})
    hits = {g: {f: 0 for f in FIELDS} for g in groups}
    counts = {g: 0 for g in groups}
    reach = {g: {f: [0, 0] for f in LOOSE} for g in groups}  # [hits, reachable lines]
    misses: list[tuple[str, str, object, object]] = []
    for i, row in enumerate(rows):
        text = row["transcript"] if args.recognized or "spoken" not in row else row["spoken"]
        got = extract(text, row.get("caller_id"),
                      business=(row.get("business") or "").split(" (")[0] or None).as_dict()
        lang = row["expected"].get("language") or "?"
        for g in ("all", lang):
            counts[g] += 1
        for field in FIELDS:
            want = row["expected"].get(field)
            ok = same(field, got[field], want)
            for g in ("all", lang):
                hits[g][field] += ok
                if field in LOOSE and reachable(want, text):
                    reach[g][field][0] += ok
                    reach[g][field][1] += 1
            if not ok:
                misses.append((row.get("id", f"line {i + 1}"), field, got[field], want))

    scored = "recognised `transcript`" if args.recognized else "written transcript"
    print(f"{len(rows)} voicemails from {args.path} (rules on the {scored})")
    print(f"  {'field':<15} " + " ".join(f"{g + f' (n={counts[g]})':<18}" for g in groups))
    for field in FIELDS:
        print(f"  {field:<15} " + " ".join(f"{_pct(hits[g][field], counts[g]):<18}" for g in groups))
    for field in sorted(LOOSE):
        label = f"{field} reach."
        print(f"  {label:<15} " + " ".join(f"{_pct(*reach[g][field]):<18}" for g in groups))
    total = sum(hits["all"].values())
    print(f"  {'all fields':<15} {_pct(total, counts['all'] * len(FIELDS))}")
    if args.verbose:
        print(f"\n{len(misses)} mismatches:")
        for ident, field, got_value, want in misses:
            print(f"  {ident:<10} {field:<15} got {got_value!r:<40} expected {want!r}")


if __name__ == "__main__":
    main()
