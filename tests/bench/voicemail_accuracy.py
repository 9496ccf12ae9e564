"""Voicemail accuracy on real speech with real models (prints figures; asserts nothing).

    .venv/bin/python tests/bench/voicemail_accuracy.py [--limit N] [--no-llm] [--save out.jsonl]
        [--whisper DIR] [--llm FILE.gguf] [--llm-fields "need:model,first_name:fill"]

Each voicemail of ../shared/dev-data/voicemails.jsonl is spoken by espeak-ng (its
expected language's voice), then goes the whole way on this machine through the app's
own pipeline: `voicemail.receive` (upload: decode, fsync'd file, row, a lead at once),
`voicemail.process` with the real Whisper base (faster-whisper, CPU) and the real
SmolLM2-135M-Instruct GGUF (llama-cpp-python) from the package registry
(tests/support/real_models.py) — or the models given with --whisper/--llm — the
extraction merged as `[models] llm_fields` says (--llm-fields; default: the app's), the
lead filled. Printed, per language:

- per field: rules on the written transcript; rules on the recognised one; rules + the
  language model (the app's policy) as they reached the lead; and, to choose the policy,
  what each field would score if the model's grounded value were taken always
  ("model") or only where the rules found nothing ("fill");
- word error rate; language detection; real-time factor (speech seconds per second of
  transcription) overall and for the slowest file; upload→lead p50/p95;
- values in leads that the caller did not say as whole words (must be 0);
- the `llm_fields` this model earns: the fields where taking its value scores better than
  the rules in one language and worse in none.

`need` is free text: it is scored as the word-overlap F1 (content words) with the
expected summary.

Names are compared without case or accents, like extraction_accuracy.py. espeak-ng's
French is robotic and Whisper base hears it badly: French accuracy is bounded by
recognition, which the WER line shows.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app import config as config_mod  # noqa: E402
from app import migrations, voicemail  # noqa: E402
from app.db import Database  # noqa: E402
from app.extraction import grounding, rules  # noqa: E402
from app.voicemail import audio  # noqa: E402
from app.voicemail.engine import ModelEngine, llm_policy, not_the_business  # noqa: E402
from tests.bench.extraction_accuracy import FIELDS, same  # noqa: E402
from tests.support.app import write_config  # noqa: E402
from tests.support.audio import speak  # noqa: E402
from tests.support.people import make_business  # noqa: E402
from tests.support.real_models import SMOLLM2, WHISPER_BASE, real_models  # noqa: E402

DEV = ROOT.parent / "shared" / "dev-data" / "voicemails.jsonl"
LEAD_FIELDS = ("first_name", "last_name", "phone", "email", "postal_code", "street_address")


class RecordingEngine(ModelEngine):
    """The app's engine, recording the time of each model call and the model's raw answer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transcribe_s: float = 0.0
        self.answer: dict | None = None

    def transcribe(self, path, business):
        t = time.perf_counter()
        try:
            return super().transcribe(path, business)
        finally:
            self.transcribe_s = time.perf_counter() - t

    def _ask_llm(self, transcript, business, language):
        self.answer = super()._ask_llm(transcript, business, language)
        return self.answer


def words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKD", (text or "").casefold())
    return re.findall(r"[a-z0-9]+", "".join(c for c in text if not unicodedata.combining(c)))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words): word-level Levenshtein distance."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, row[0] = row[:], i
        for j in range(1, len(hyp) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ref[i - 1] != hyp[j - 1]))
    return row[len(hyp)], len(ref)


def unsaid(lead: dict, transcript: str, caller_id: str | None) -> list[str]:
    """The lead's values that are not whole words (or the caller id) of what was recognised."""
    checks = {
        "first_name": lambda v: grounding.name_grounded(v, transcript),
        "last_name": lambda v: grounding.name_grounded(v, transcript),
        "phone": lambda v: grounding.phone_grounded(v, transcript, caller_id),
        "email": lambda v: grounding.email_grounded(v, transcript, None),
        "postal_code": lambda v: grounding.postal_grounded(v, transcript, None),
        "street_address": lambda v: grounding.address_grounded(v, transcript),
    }
    return [f"{field}={lead[field]!r}" for field, check in checks.items() if lead.get(field) and not check(lead[field])]


def pct(hits: list[bool]) -> str:
    return f"{100 * sum(hits) / len(hits):5.1f}" if hits else "    -"


STOPWORDS = {"le", "la", "les", "un", "une", "des", "de", "du", "d", "l", "a", "au", "aux", "et", "ou", "en", "dans",
             "pour", "pas", "que", "qui", "je", "j", "me", "m", "mon", "ma", "mes", "vous", "nous", "il", "elle",
             "c", "est", "the", "an", "of", "to", "in", "on", "for", "and", "or", "my", "i", "is", "it", "at", "be"}


def need_overlap(got: str | None, want: str | None) -> float:
    """Word-overlap F1 between a need summary and the expected one (content words only)."""
    g = {w for w in words(got or "") if w not in STOPWORDS}
    w = {x for x in words(want or "") if x not in STOPWORDS}
    if not g or not w:
        return 1.0 if not g and not w else 0.0
    common = len(g & w)
    return 0.0 if not common else 2 * common / (len(g) + len(w))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N voicemails")
    parser.add_argument("--no-llm", action="store_true", help="rules only (no language model)")
    parser.add_argument("--save", help="write one JSON line per voicemail (transcripts, answers, leads)")
    parser.add_argument("--report", help="print the figures of a file written by --save (runs nothing)")
    parser.add_argument("--whisper", help="a faster-whisper model directory (default: Whisper base)")
    parser.add_argument("--llm", help="a GGUF (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--llm-fields", help="[models] llm_fields for the leads (default: the app's)")
    args = parser.parse_args()
    if args.report:
        saved = [rescore(json.loads(line)) for line in Path(args.report).read_text().splitlines() if line.strip()]
        report(saved, llm=any(r["answer"] is not None for r in saved))
        return
    rows = [json.loads(line) for line in DEV.read_text().splitlines() if line.strip()]
    if args.limit:
        rows = rows[:args.limit]
    models_dir = real_models()
    results = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        env = {"CAPTEO_MODELS_LLM_FIELDS": args.llm_fields} if args.llm_fields is not None else {}
        cfg = config_mod.load(write_config(tmp), env=env)
        cfg.ensure_dirs()
        migrations.apply(cfg.db_path)
        db = Database(cfg.db_path)
        llm = tmp / "no-llm.gguf" if args.no_llm else Path(args.llm) if args.llm else models_dir / SMOLLM2
        engine = RecordingEngine(cfg, whisper_dir=Path(args.whisper) if args.whisper else models_dir / WHISPER_BASE,
                                 llm_path=llm)
        policy = llm_policy(cfg)
        business_ids: dict[str, int] = {}
        warm = speak("Bonjour.", "fr", tmp / "warm.wav")
        engine.transcribe(warm, {"name": "warm-up"})  # models load once, as in the worker
        if not args.no_llm:
            engine._ask_llm("Bonjour, c'est Julie.", {"name": "warm-up"}, "fr")
        for n, row in enumerate(rows, 1):
            name = row["business"].split(" (")[0]
            if name not in business_ids:
                business_ids[name], _ = make_business(db, f"b{len(business_ids)}", name, custom=False)
            wav = speak(row["transcript"], row["expected"]["language"], tmp / f"{row['id']}.wav")
            seconds = len(audio.decode(wav, 16000)) / 16000
            engine.answer = None
            t0 = time.perf_counter()
            vm_id, _ = voicemail.receive(db, cfg, business_id=business_ids[name], data=wav.read_bytes(),
                                         caller_id=row["caller_id"], source="upload", actor="bench")
            state = voicemail.process(db, cfg, engine, vm_id, "https://bench").state
            latency = time.perf_counter() - t0
            vm = db.query_one("SELECT * FROM voicemails WHERE id = ?", (vm_id,))
            lead = db.query_one("SELECT * FROM leads WHERE id = ?", (vm["lead_id"],))
            recognised = vm["transcript"] or ""
            base = rules.extract(recognised, row["caller_id"], business=name).as_dict()
            if engine.answer is None and not args.no_llm and recognised.strip():
                # The app did not ask the model (no field is taken from it): ask it here, to measure it.
                engine._ask_llm(recognised, {"name": name}, base["language"])
            with_model = variants(base, engine.answer, recognised, row["caller_id"], name)
            lead_values = {f: lead[f] for f in LEAD_FIELDS} | {"urgent": bool(lead["urgent"]),
                                                                "language": lead["language"], "need": lead["need"]}
            results.append({
                "id": row["id"], "language": row["expected"]["language"], "state": state, "seconds": seconds,
                "transcribe_s": engine.transcribe_s, "latency_s": latency, "detected": vm["language"],
                "spoken": row["transcript"], "recognised": recognised, "caller_id": row["caller_id"],
                "expected": row["expected"], "written": rules.extract(row["transcript"], row["caller_id"],
                                                                      business=name).as_dict(),
                "rules": base, "answer": engine.answer, "business": name, **with_model,
                "lead": lead_values, "unsaid": unsaid(lead_values, recognised, row["caller_id"]),
                "policy": policy,
            })
            print(f"[{n}/{len(rows)}] {row['id']} {seconds:5.1f} s speech, transcribed in "
                  f"{engine.transcribe_s:4.1f} s, upload→lead {latency:5.1f} s", file=sys.stderr, flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory of this process (models loaded): {peak_mb:.0f} MB", file=sys.stderr)
    if args.save:
        with open(args.save, "w") as f:
            for r in results:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    report(results, llm=not args.no_llm)


def variants(base: dict, answer: dict | None, recognised: str, caller_id: str | None, business: str) -> dict:
    """What each field would be with the model's grounded value always ("model") or only
    where the rules found nothing ("fill")."""
    out = {}
    for how in ("fill", "model"):
        policy = dict.fromkeys(grounding.MODEL_FIELDS, how)
        merged = grounding.merge(base, answer or {}, recognised, caller_id, policy=policy)
        out[how] = not_the_business(merged, base, business)
    return out


def rescore(r: dict) -> dict:
    """A saved voicemail read again by today's extraction code (same recognition, same
    model answer): `--report` then measures a change of the rules without the models."""
    business = r["business"]
    r["rules"] = rules.extract(r["recognised"], r["caller_id"], business=business).as_dict()
    r["written"] = rules.extract(r["spoken"], r["caller_id"], business=business).as_dict()
    return r | variants(r["rules"], r["answer"], r["recognised"], r["caller_id"], business)


def _score(sel: list[dict], column: str, field: str) -> float:
    if field == "need":
        return statistics.mean(need_overlap(r[column].get("need"), r["expected"]["need"]) for r in sel)
    return statistics.mean(same(field, r[column].get(field), r["expected"][field]) for r in sel)


def earned(results: list[dict]) -> str:
    """The llm_fields the model earns: better than the rules in a language, worse in none."""
    chosen = []
    for field in grounding.MODEL_FIELDS:
        for how in ("model", "fill"):
            deltas = [_score(sel, how, field) - _score(sel, "rules", field)
                      for sel in ([r for r in results if r["language"] == lang] for lang in ("en", "fr")) if sel]
            if deltas and min(deltas) >= 0 and max(deltas) > 0:
                chosen.append(f"{field}:{how}")
                break
    return ",".join(chosen)


def report(results: list[dict], *, llm: bool) -> None:
    policy = results[0].get("policy") if results else None
    taken = {f: how for f, how in (policy or {}).items() if how != "rules"}
    print(f"{len(results)} voicemails, Whisper base int8 on CPU"
          + (", SmolLM2-135M-Instruct Q4_1" if llm else ", no language model")
          + f"; fields taken from the model in the leads: {json.dumps(taken) if policy else '?'}")
    for lang in ("en", "fr"):
        sel = [r for r in results if r["language"] == lang]
        if not sel:
            continue
        print(f"\n== {lang} ({len(sel)} voicemails)")
        columns = ["written", "rules", "lead"] + (["fill", "model"] if llm else [])
        titles = {"written": "rules/written", "rules": "rules/heard", "lead": "lead (app)",
                  "fill": "llm fill", "model": "llm model"}
        print(f"{'field':15}" + "".join(f"{titles[c]:>15}" for c in columns))
        for field in FIELDS:
            scores = [pct([same(field, r[c].get(field), r["expected"][field]) for r in sel]) for c in columns]
            print(f"{field:15}" + "".join(f"{s:>15}" for s in scores))
        needs = [f"{100 * statistics.mean(need_overlap(r[c].get('need'), r['expected']['need']) for r in sel):5.1f}"
                 for c in columns]
        print(f"{'need (F1)':15}" + "".join(f"{s:>15}" for s in needs))
        edits = sum(word_errors(r["spoken"], r["recognised"])[0] for r in sel)
        total = sum(word_errors(r["spoken"], r["recognised"])[1] for r in sel)
        detected = sum(r["detected"] == lang for r in sel)
        speech = sum(r["seconds"] for r in sel)
        busy = sum(r["transcribe_s"] for r in sel)
        slowest = max(sel, key=lambda r: r["transcribe_s"] / r["seconds"])
        print(f"WER {edits / max(total, 1):.2f}; language heard right {detected}/{len(sel)}; real-time factor "
              f"{speech / busy:.1f}x (slowest: {slowest['id']}, {slowest['seconds'] / slowest['transcribe_s']:.1f}x)")
    slowest = max(results, key=lambda r: r["transcribe_s"] / r["seconds"])
    print(f"\nall: real-time factor {sum(r['seconds'] for r in results) / sum(r['transcribe_s'] for r in results):.1f}x;"
          f" the slowest took {slowest['transcribe_s'] / slowest['seconds']:.2f}x its length ({slowest['id']})")
    latencies = sorted(r["latency_s"] for r in results)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print(f"upload→lead: p50 {statistics.median(latencies):.1f} s, p95 {p95:.1f} s "
          f"(speech {statistics.median(r['seconds'] for r in results):.1f} s p50)")
    if llm:
        answered = sum(r["answer"] is not None for r in results)
        print(f"language model answers usable (whole JSON): {answered}/{len(results)}")
        print(f'fields this model earns: llm_fields = "{earned(results)}"')
    unsaid_values = [(r["id"], v) for r in results for v in r["unsaid"]]
    print(f"values in leads the caller did not say as whole words: {len(unsaid_values)}"
          + "".join(f"\n  {i}: {v}" for i, v in unsaid_values))
    not_done = [r["id"] for r in results if r["state"] != "lead_created"]
    if not_done:
        print(f"NOT lead_created: {not_done}")


if __name__ == "__main__":
    main()
