"""Test recordings: speech from espeak-ng (FR and EN), re-encoded with PyAV into the
formats phone systems send (WAV, MP3, OGG/Opus, M4A)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import numpy as np


def speak(text: str, lang: str, dest: Path) -> Path:
    """A WAV of espeak-ng saying `text` (voice fr or en)."""
    subprocess.run(["espeak-ng", "-v", "fr" if lang == "fr" else "en-us", "-s", "150", "-w", str(dest), text],
                   check=True, capture_output=True)
    return dest


def encode(wav: bytes, fmt: str) -> bytes:
    """Re-encode a WAV into mp3, ogg (Opus) or m4a (AAC)."""
    codec, container_format, rate = {"mp3": ("libmp3lame", "mp3", 22050), "ogg": ("libopus", "ogg", 48000),
                                      "m4a": ("aac", "ipod", 44100)}[fmt]
    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as src, av.open(out, "w", format=container_format) as dst:
        stream = dst.add_stream(codec, rate=rate)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.codec_context.format.name if stream.codec_context.format else "fltp",
                                      layout="mono", rate=rate)
        for frame in src.decode(audio=0):
            for f in resampler.resample(frame):
                for packet in stream.encode(f):
                    dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()


def tone_wav(seconds: float, rate: int = 8000) -> bytes:
    """A plain 440 Hz tone of any length, as WAV (for the too-long case)."""
    samples = (np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate) * 8000).astype(np.int16)
    out = io.BytesIO()
    with av.open(out, "w", format="wav") as dst:
        stream = dst.add_stream("pcm_s16le", rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return out.getvalue()
