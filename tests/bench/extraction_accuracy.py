"""Accuracy of the rules extractor per field on a JSONL file of voicemails (prints
figures; asserts nothing).

    .venv/bin/python tests/bench/extraction_accuracy.py [path.jsonl] [--verbose]

Each line is an object with `transcript`, `caller_id`, `expected` (and optionally
`business`, `id`), like ../shared/dev-data/voicemails.jsonl, the default. Exact match
per field; names are compared without case or accents (Whisper accents inconsistently,
a human reading the lead does not care); None == None counts as a match. `need` is
free text and is not scored here.
"""

from __future__ import annotations

import argparse
import json
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT))
    parser.add_argument("--verbose", "-v", action="store_true", help="list every mismatch")
    args = parser.parse_args()

    rows = [json.loads(line) for line in Path(args.path).read_text(encoding="utf-8").splitlines() if line.strip()]
    hits = {f: 0 for f in FIELDS}
    misses: list[tuple[str, str, object, object]] = []
    for i, row in enumerate(rows):
        got = extract(row["transcript"], row.get("caller_id"),
                      business=(row.get("business") or "").split(" (")[0] or None).as_dict()
        for field in FIELDS:
            want = row["expected"].get(field)
            if same(field, got[field], want):
                hits[field] += 1
            else:
                misses.append((row.get("id", f"line {i + 1}"), field, got[field], want))

    n = len(rows)
    print(f"{n} voicemails from {args.path}")
    for field in FIELDS:
        print(f"  {field:<15} {100 * hits[field] / n:6.1f} %  ({hits[field]}/{n})")
    total = sum(hits.values())
    print(f"  {'all fields':<15} {100 * total / (n * len(FIELDS)):6.1f} %  ({total}/{n * len(FIELDS)})")
    if args.verbose:
        print(f"\n{len(misses)} mismatches:")
        for ident, field, got, want in misses:
            print(f"  {ident:<10} {field:<15} got {got!r:<40} expected {want!r}")


if __name__ == "__main__":
    main()
