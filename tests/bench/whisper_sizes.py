"""How fast each Whisper size runs on this machine's CPU (prints figures; asserts nothing).

    .venv/bin/python tests/bench/whisper_sizes.py [--sizes base,small,medium] [--tokens 120]

Only Whisper base is available offline as real weights (tests/support/real_models.py);
the other sizes are timed with random weights of their exact shape (layers, heads,
width; int8 like the app on a CPU), which cost the same arithmetic: the encoder reads a
30 s window, then the decoder is made to write `--tokens` tokens (the end-of-text token
suppressed; a 20 s voicemail is about 60-120 tokens) with beam 5 and with beam 1. The
real Whisper base is timed the same way, so the random base against the real one shows
the method holds. Accuracy is not measured here: random weights hear nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.real_models import WHISPER_BASE, real_models  # noqa: E402
from tests.support.tiny_models import make_tiny_whisper  # noqa: E402

SHAPES = {  # encoder/decoder layers, heads, width (OpenAI's model cards)
    "base": (6, 8, 512), "small": (12, 12, 768), "medium": (24, 16, 1024),
}
CACHE = Path("/tmp/capteo-whisper-shapes")


def time_model(path: Path, tokens: int, beam: int, runs: int = 3) -> float:
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor

    model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8")
    features = FeatureExtractor(feature_size=80)(np.random.default_rng(0).normal(0, 0.1, 16000 * 30)
                                                .astype(np.float32))[:, :3000]
    batch = ctranslate2.StorageView.from_array(features[np.newaxis].astype(np.float32))
    prompt = [[50258, 50265, 50359, 50363]]  # start, <|fr|>, transcribe, no timestamps
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        model.generate(batch, prompt, beam_size=beam, max_length=tokens, suppress_tokens=[50257],
                       suppress_blank=False)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="base,small")
    parser.add_argument("--tokens", type=int, default=120)
    args = parser.parse_args()
    rows = [("base (real weights)", real_models() / WHISPER_BASE)]
    for size in args.sizes.split(","):
        layers, heads, d = SHAPES[size]
        path = CACHE / size
        if not path.exists():
            make_tiny_whisper(path, layers=layers, heads=heads, d=d)
        rows.append((f"{size} (random, same shape)", path))
    print(f"one 30 s window, {args.tokens} tokens written, int8 on CPU; best of 3")
    print(f"{'model':28}{'beam 5 (s)':>12}{'beam 1 (s)':>12}{'20 s message, beam 5':>24}")
    for name, path in rows:
        b5, b1 = time_model(path, args.tokens, 5), time_model(path, args.tokens, 1)
        print(f"{name:28}{b5:12.2f}{b1:12.2f}{20 / b5:21.1f}x rt")


if __name__ == "__main__":
    main()
