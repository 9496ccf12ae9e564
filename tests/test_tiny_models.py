"""The real faster-whisper and llama-cpp-python code paths (loading, tokenizing, decoding,
language detection, JSON-schema grammar) run on the tiny random models of
tests/support/tiny_models.py. Outputs are gibberish; their shape is what is checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support.tiny_models import tiny_models_dir


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "bonjour.wav"
    if shutil.which("espeak-ng"):
        subprocess.run(["espeak-ng", "-v", "fr", "-w", str(path), "Bonjour, ma fournaise est brisée."], check=True)
    else:  # 2 s of 440 Hz
        samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype("<i2")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(16000)
            out.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def whisper():
    from faster_whisper import WhisperModel

    return WhisperModel(str(tiny_models_dir() / "whisper"), device="cpu", compute_type="int8")


def test_whisper_transcribes_and_detects_the_language(whisper, wav):
    from faster_whisper.transcribe import Segment

    assert whisper.model.is_multilingual
    segments, info = whisper.transcribe(str(wav), beam_size=1, temperature=0, vad_filter=False)
    segments = list(segments)  # decoding happens while iterating
    assert all(isinstance(s, Segment) and isinstance(s.text, str) for s in segments)
    assert info.language in whisper.supported_languages
    assert 0 <= info.language_probability <= 1
    with wave.open(str(wav)) as w:
        assert info.duration == pytest.approx(w.getnframes() / w.getframerate(), abs=0.01)


def test_whisper_language_detection_restricted_to_french_and_english(whisper, wav):
    from faster_whisper.audio import decode_audio

    language, probability, all_probabilities = whisper.detect_language(decode_audio(str(wav)))
    assert language in whisper.supported_languages and 0 <= probability <= 1
    restricted = {code: p for code, p in all_probabilities if code in ("fr", "en")}
    assert restricted.keys() == {"fr", "en"}
    assert max(restricted, key=restricted.get) in ("fr", "en")


def test_llama_chat_completion_follows_a_json_schema():
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(tiny_models_dir() / "tiny.gguf"), n_ctx=512, verbose=False)
    assert llm.chat_format == "chatml"  # guessed from tokenizer.chat_template
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 20}, "urgent": {"type": "boolean"}},
        "required": ["name", "urgent"],
    }
    response = llm.create_chat_completion(
        messages=[
            {"role": "system", "content": "Extract the caller's name as JSON."},
            {"role": "user", "content": "Bonjour, ici Marie Tremblay, ma fournaise est brisée."},
        ],
        max_tokens=64,
        temperature=0,
        response_format={"type": "json_object", "schema": schema},
    )
    choice = response["choices"][0]
    assert choice["finish_reason"] == "stop"
    data = json.loads(choice["message"]["content"], strict=False)  # the grammar lets control characters through
    assert isinstance(data["name"], str) and len(data["name"]) <= 20
    assert isinstance(data["urgent"], bool)
