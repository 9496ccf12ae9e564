"""`run.py` exactly, with a slow stand-in for the models: a test can start several
`worker --models` processes on one queue and kill one in the middle of a transcription.

Each transcription first writes `<TEST_ENGINE_MARKERS>/<audio file>.<pid>.started` (who
holds which voicemail), then takes TEST_ENGINE_SECONDS; the extraction is the rules'.
The clock runs `<TEST_ENGINE_MARKERS>/../clock-offset` seconds ahead when that file exists:
a test moves time forward for every process at once (a lease running out)."""

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import jobs.voicemail  # noqa: E402
import run  # noqa: E402
from app import clock  # noqa: E402

MARKERS = Path(os.environ["TEST_ENGINE_MARKERS"])
SECONDS = float(os.environ.get("TEST_ENGINE_SECONDS", "1.5"))


class SlowEngine:
    def speech_ready(self) -> bool:
        return True

    def transcribe(self, path: Path, business: dict) -> tuple[str, str]:
        (MARKERS / f"{path.name}.{os.getpid()}.started").write_text("")
        time.sleep(SECONDS)
        return "Bonjour, c'est Hélène Côté, rappelez-moi au 514 555 0101, j'ai une fuite.", "fr"

    def extract(self, transcript: str, caller_id: str | None, business: dict, language: str) -> dict:
        from app.extraction.rules import extract

        return extract(transcript, caller_id).as_dict()


_real_now = clock.now
OFFSET = MARKERS.parent / "clock-offset"


def _now():
    offset = float(OFFSET.read_text()) if OFFSET.exists() else 0.0
    return _real_now() + timedelta(seconds=offset)


clock.now = _now  # type: ignore[assignment]
_slow = SlowEngine()
jobs.voicemail.engine = lambda: _slow  # type: ignore[assignment]

if __name__ == "__main__":
    sys.exit(run.main(sys.argv[1:]))
