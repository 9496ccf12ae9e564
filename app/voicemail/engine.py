"""The models, loaded once per process and kept: faster-whisper for speech, Qwen
through llama-cpp-python for extraction. They are used by the models' own queue and its
one worker thread (jobs/__init__.py); the lock only guards against a second caller (a
test, `run.py extract`) loading them twice.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

from app.config import Config
from app.extraction import grounding, rules
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


# A small Quebec business hears French first: English is chosen only when Whisper is sure
# of it. Measured on espeak-ng speech of the 60 dev voicemails with Whisper base: every
# English message scored P(en) >= 0.82, while 6 of 39 French ones were heard as more English
# than French at P(en) 0.06-0.34 ("Oui allô" sounds like "We are all") and were then
# transcribed as English gibberish.
ENGLISH_AT_LEAST = 0.5


def choose_language(probabilities: dict[str, float]) -> str:
    english, french = probabilities.get("en", 0.0), probabilities.get("fr", 0.0)
    return "en" if english > french and english >= ENGLISH_AT_LEAST else "fr"


def whisper_options(config: Config) -> dict:
    """faster-whisper's decoding options (measured: README, "Voicemail").

    No prompt: the business name as `initial_prompt` made Whisper stop after the first
    segment on some messages. Temperature fallback re-decodes a hard window at higher
    temperatures; unbounded (faster-whisper's default, six temperatures) it looped on
    robotic French for 26-61 s per file, so when enabled it is bounded to two retries.
    """
    options: dict = {"vad_filter": True, "beam_size": config.models.whisper_beam_size,
                     "condition_on_previous_text": False}
    if config.models.whisper_temperature_fallback:
        options |= {"temperature": (0.0, 0.2, 0.4), "compression_ratio_threshold": 2.4}
    else:
        options["temperature"] = 0.0
    return options


# The answer is ~150 tokens of JSON; a model that repeats itself is cut early and its answer
# dropped, rather than generating for a minute.
LLM_MAX_TOKENS = 320
LLM_REPEAT_PENALTY = 1.1


def llm_policy(config: Config) -> dict[str, str]:
    """What the language model may change, per field, from `[models] llm_fields`: "model"
    replaces the rules' value with the model's grounded one, "fill" uses it only where the
    rules found nothing, "rules" (every field not listed) ignores the model.

    The default lists nothing, by measurement (tests/bench/voicemail_accuracy.py, README
    "Voicemail"): with the small model this machine can run, every field taken from it was
    as good as the rules' or worse (names filled with other words of the transcript, the
    need replaced by "safety", urgency lost), and a field the model does not improve is
    not taken from it. An operator measures their own model with the same bench and lists
    the fields it improves."""
    policy = dict.fromkeys(grounding.MODEL_FIELDS, "rules")
    for item in filter(None, (part.strip() for part in config.models.llm_fields.split(","))):
        name, _, how = item.partition(":")
        policy[name.strip()] = how.strip()
    return policy


def drop_hallucinations(segments: list[str]) -> str:
    return " ".join(s.strip() for s in segments if s.strip() and not HALLUCINATIONS.search(s)).strip()


class ModelEngine:
    def __init__(self, config: Config, *, whisper_dir: Path | None = None, llm_path: Path | None = None):
        self.config = config
        name = models.whisper_model_name(config)
        self.whisper_dir = whisper_dir or config.models_dir / f"whisper-{name}"
        self.llm_path = llm_path or config.models_dir / config.models.llm_file
        self._whisper = None
        self._llm = None
        self._lock = threading.Lock()
        # Validated before use, loaded once per file state; a broken model is not reloaded until its file changes.
        self._speech_slot = models.ModelSlot("whisper", config, self.whisper_dir, compute=self._compute_type)
        self._llm_slot = models.ModelSlot("llm", config, self.llm_path)

    # ---- speech --------------------------------------------------------------------------------
    def speech_ready(self) -> bool:
        """The speech model validated and loaded (not merely a file on disk)."""
        return self._speech_slot.ready()

    def _compute_type(self) -> str:
        return models.compute_type(self.config)

    def _whisper_model(self):
        # Loaded with local_files_only=True after validation (models.ModelSlot); never reaches the Hub.
        self._whisper = self._speech_slot.model()
        if self._whisper is None:
            raise models.ModelUnusable(f"speech model: {self._speech_slot.check().problem}")
        return self._whisper

    def transcribe(self, path: Path, business: dict) -> tuple[str, str]:
        """(text, "fr" | "en"). The language is chosen among French and English only."""
        with self._lock:
            model = self._whisper_model()
            # Our decoder, not faster-whisper's: it lets FFmpeg guess the format, and a guess can open sockets.
            samples = audio.decode(path, model.feature_extractor.sampling_rate)
            _, _, probabilities = model.detect_language(audio=samples)
            language = choose_language(dict(probabilities))
            segments, _info = model.transcribe(samples, language=language, **whisper_options(self.config))
            text = drop_hallucinations([s.text for s in segments])
        return text, language

    # ---- extraction ----------------------------------------------------------------------------
    def llm_ready(self) -> bool:
        """The GGUF validated (loads, has a chat template or a configured chat_format) and loaded."""
        return self._llm_slot.ready()

    def _llm_model(self):
        # Llama(..., chat_format=[models] llm_chat_format when set) after validation (models.ModelSlot).
        self._llm = self._llm_slot.model()
        if self._llm is None:
            raise models.ModelUnusable(f"language model: {self._llm_slot.check().problem}")
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
                temperature=0, max_tokens=LLM_MAX_TOKENS, repeat_penalty=LLM_REPEAT_PENALTY,
            )
        choice = result["choices"][0]
        if choice.get("finish_reason") == "length":
            # Cut off: a small model repeating itself until max_tokens. Its JSON is not whole.
            log.warning("the language model's answer was cut at %d tokens; keeping the rules' extraction",
                        LLM_MAX_TOKENS)
            return None
        text = choice["message"]["content"] or ""
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
        policy = llm_policy(self.config)
        if not transcript.strip() or set(policy.values()) == {"rules"} or not self.llm_ready():
            return base  # nothing would be taken from the model: it is not asked
        try:
            answer = self._ask_llm(transcript, business, base.get("language") or language)
            merged = grounding.merge(base, answer or {}, transcript, caller_id, policy=policy)
        except Exception:  # a model failure (or an answer of the wrong shape) must not lose the voicemail
            log.exception("language model extraction failed; keeping the rules' extraction")
            return base
        return not_the_business(merged, base, name)


def not_the_business(merged: dict, base: dict, business_name: str | None) -> dict:
    """`merged` with the rules' caller name back when the model's is the business's own:
    said in the transcript ("Bonjour, c'est Gagnon et Fils?") it passes grounding, but it
    is not the caller's. A caller who shares a word with it ("Marc Gagnon" calling
    "Plomberie Gagnon") keeps their name."""
    said = grounding.words(f"{merged.get('first_name') or ''} {merged.get('last_name') or ''}")
    if said and set(said) <= set(grounding.words(business_name)):
        return merged | {"first_name": base.get("first_name"), "last_name": base.get("last_name")}
    return merged
