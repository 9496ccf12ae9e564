"""Voicemail pipeline throughput with the tiny generated models (prints figures; asserts nothing).

    .venv/bin/python tests/bench/voicemail.py [--count 30]

Each voicemail goes the whole way on this machine (receive: decode + fsync'd file +
row; transcribe; extract: rules + LLM + grounding; lead + SMS in one transaction).
Model time is measured around the model calls; the rest is the pipeline's own
overhead, which is what stays when real models replace the tiny ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app import config as config_mod  # noqa: E402
from app import migrations, voicemail  # noqa: E402
from app.db import Database  # noqa: E402
from app.voicemail.engine import ModelEngine  # noqa: E402
from tests.support.app import write_config  # noqa: E402
from tests.support.audio import speak  # noqa: E402
from tests.support.tiny_models import FAST, install_models, tiny_models_dir  # noqa: E402


class TimedEngine(ModelEngine):
    model_seconds = 0.0

    def transcribe(self, path, business):
        t = time.perf_counter()
        try:
            return super().transcribe(path, business)
        finally:
            self.model_seconds += time.perf_counter() - t

    def _ask_llm(self, transcript, business, language):
        t = time.perf_counter()
        try:
            return super()._ask_llm(transcript, business, language)
        finally:
            self.model_seconds += time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        cfg = config_mod.load(write_config(d), env=FAST)
        cfg.ensure_dirs()
        migrations.apply(cfg.db_path)
        install_models(cfg, tiny_models_dir())
        db = Database(cfg.db_path)
        with db.write() as conn:
            conn.execute("INSERT INTO businesses (id, slug, name, timezone, created_at, notify_phones) VALUES "
                         "(1, 'b', 'Plomberie B', 'America/Toronto', '2026-11-22T00:00:00+00:00', '[\"+15145550100\"]')")
        clips = [speak("Bonjour, c'est Hélène Côté, rappelez-moi au 514 555 0101, j'ai un dégât d'eau.", "fr",
                       d / "fr.wav").read_bytes(),
                 speak("Hi, this is Marc Lefebvre, please call me back at 438 555 0102 about a new panel.", "en",
                       d / "en.wav").read_bytes()]
        engine = TimedEngine(cfg)
        engine.transcribe(d / "fr.wav", {"name": "warm-up"})  # load once, as a worker does
        engine.model_seconds = 0.0
        per = []
        t0 = time.perf_counter()
        for i in range(args.count):
            t = time.perf_counter()
            vm_id, _ = voicemail.receive(db, cfg, business_id=1, data=clips[i % 2], caller_id="+15145550101",
                                         source="upload", actor="bench")
            assert voicemail.process(db, cfg, engine, vm_id, "https://x").state == "lead_created"
            per.append(time.perf_counter() - t)
        total = time.perf_counter() - t0
    audio_s = 6.5
    print(f"{args.count} voicemails (~{audio_s:.0f} s of speech each, FR/EN alternating), tiny models, CPU")
    print(f"total {total:.2f} s -> {args.count / total * 60:.0f} voicemails/min; per voicemail p50 "
          f"{statistics.median(per) * 1000:.0f} ms")
    print(f"model time {engine.model_seconds:.2f} s ({engine.model_seconds / total:.0%}); pipeline overhead "
          f"{(total - engine.model_seconds) / args.count * 1000:.0f} ms per voicemail")


if __name__ == "__main__":
    main()
