"""The models, loaded once per process and kept: faster-whisper for speech, Qwen
through llama-cpp-python for extraction. One lock: the worker threads take turns
on the models (one worker owns the GPU at a time), never load them twice.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

from app.config import Config
from app.extraction import grounding, rules
from app.extraction.text import fold
from app.voicemail import audio, models

log = logging.getLogger("capteo.voicemail")

# What Whisper writes on silence or music: credits of the subtitled videos it learned from.
HALLUCINATIONS = re.compile(
    r"(sous-titr|amara\.org|radio-canada|merci d'avoir regardé|thanks? for watching|subscribe|abonnez-vous|"
    r"www\.|transcription by|transcrit par)", re.IGNORECASE)

SCHEMA = {
    "type": "object",
    "properties": {
        "first_name": {"type": ["string", "null"], "maxLength": 60},
        "last_name": {"type": ["string", "null"], "maxLength": 60},
        "callback_phone": {"type": ["string", "null"], "maxLength": 30},
        "email": {"type": ["string", "null"], "maxLength": 120},
        "street_address": {"type": ["string", "null"], "maxLength": 120},
        "postal_code": {"type": ["string", "null"], "maxLength": 10},
        "need": {"type": "string", "maxLength": 200},
        "urgent": {"type": "boolean"},
    },
    "required": ["first_name", "last_name", "callback_phone", "email", "street_address", "postal_code", "need",
                 "urgent"],
}
PROMPT = (
    "You read a voicemail left for a small Quebec business ({business}). Extract, as JSON: the caller's "
    "first_name and last_name, the callback_phone they ask to be called at, their email, street_address "
    "(number and street, no city), postal_code, a short summary of the need in the caller's language "
    "({language}), and urgent (true only for immediate damage, safety, health, no heat, lockout). Use null for "
    "anything not said. Copy names and numbers exactly as said; never guess."
)


def drop_hallucinations(segments: list[str]) -> str:
    return " ".join(s.strip() for s in segments if s.strip() and not HALLUCINATIONS.search(s)).strip()


class ModelEngine:
    def __init__(self, config: Config, *, whisper_dir: Path | None = None, llm_path: Path | None = None):
        self.config = config
        self.beam_size = config.models.whisper_beam_size
        self.whisper_options = {} if config.models.whisper_temperature_fallback else {"temperature": 0.0}
        name = models.whisper_model_name(config)
        self.whisper_dir = whisper_dir or config.models_dir / f"whisper-{name}"
        self.llm_path = llm_path or config.models_dir / config.models.llm_file
        self._whisper = None
        self._llm = None
        self._lock = threading.Lock()

    # ---- speech --------------------------------------------------------------------------------
    def speech_ready(self) -> bool:
        return (self.whisper_dir / "model.bin").is_file()

    def _compute_type(self) -> str:
        configured = self.config.models.whisper_compute_type
        if configured != "auto":
            return configured
        return "int8_float16" if models.has_gpu() else "int8"

    def _whisper_model(self):
        if self._whisper is None:
            from faster_whisper import WhisperModel

            self._whisper = WhisperModel(str(self.whisper_dir), device="auto", compute_type=self._compute_type())
        return self._whisper

    def transcribe(self, path: Path, business: dict) -> tuple[str, str]:
        """(text, "fr" | "en"). The language is chosen among French and English only."""
        with self._lock:
            model = self._whisper_model()
            # Our decoder, not faster-whisper's: it lets FFmpeg guess the format, and a guess can open sockets.
            samples = audio.decode(path, model.feature_extractor.sampling_rate)
            _, _, probabilities = model.detect_language(audio=samples)
            scores = dict(probabilities)
            language = "en" if scores.get("en", 0.0) > scores.get("fr", 0.0) else "fr"
            prompt = ", ".join(p for p in (business.get("name"), business.get("trade")) if p)
            segments, _info = model.transcribe(
                samples, language=language, vad_filter=True, beam_size=self.beam_size,
                initial_prompt=prompt or None, condition_on_previous_text=False, **self.whisper_options)
            text = drop_hallucinations([s.text for s in segments])
        return text, language

    # ---- extraction ----------------------------------------------------------------------------
    def llm_ready(self) -> bool:
        return self.llm_path.is_file()

    def _llm_model(self):
        if self._llm is None:
            from llama_cpp import Llama

            self._llm = Llama(model_path=str(self.llm_path), n_gpu_layers=-1, n_ctx=2048, verbose=False)
        return self._llm

    def _ask_llm(self, transcript: str, business: dict, language: str) -> dict | None:
        with self._lock:
            llm = self._llm_model()
            result = llm.create_chat_completion(
                messages=[
                    {"role": "system", "content": PROMPT.format(business=business.get("name", ""),
                                                                language="French" if language == "fr" else "English")},
                    {"role": "user", "content": transcript[:4000]},
                ],
                response_format={"type": "json_object", "schema": SCHEMA},
                temperature=0, max_tokens=400,
            )
        text = result["choices"][0]["message"]["content"] or ""
        try:
            # strict=False: the schema grammar lets raw control characters into strings.
            data = json.loads(text, strict=False)
        except ValueError:
            log.warning("the language model returned no valid JSON; keeping the rules' extraction")
            return None
        return data if isinstance(data, dict) else None

    def extract(self, transcript: str, caller_id: str | None, business: dict, language: str) -> dict:
        """The rules' extraction, improved by the language model where it is present
        and where what it says is grounded in the transcript (or the caller id)."""
        name = business.get("name") or None
        base = rules.extract(transcript, caller_id, business=name).as_dict()
        if not transcript.strip() or not self.llm_ready():
            return base
        try:
            answer = self._ask_llm(transcript, business, base.get("language") or language)
        except Exception:  # a model failure must not lose the voicemail: the rules suffice
            log.exception("language model extraction failed; keeping the rules' extraction")
            return base
        return not_the_business(grounding.merge(base, answer or {}, transcript, caller_id), base, name)


def not_the_business(merged: dict, base: dict, business_name: str | None) -> dict:
    """`merged` with the rules' caller name back when the model's is the business's own:
    said in the transcript ("Bonjour, c'est Gagnon et Fils?") it passes grounding, but it
    is not the caller's. A caller who shares a word with it ("Marc Gagnon" calling
    "Plomberie Gagnon") keeps their name."""
    def words(text: str | None) -> list[str]:
        return [fold(w) for w in re.findall(r"[^\W\d_]+", text or "")]

    said = words(f"{merged.get('first_name') or ''} {merged.get('last_name') or ''}")
    if said and set(said) <= set(words(business_name)):
        return merged | {"first_name": base.get("first_name"), "last_name": base.get("last_name")}
    return merged
