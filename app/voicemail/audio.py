"""Audio checks and durable storage for incoming voicemail.

Anything PyAV can decode (WAV, MP3, OGG/Opus, M4A, ...) is accepted; the file is
decoded whole once, so a truncated or fake file is refused here, not at 3 a.m. in
the worker. Files get generated names (never the client's) and reach their final
name only once fully on disk.
"""

from __future__ import annotations

import io
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import av

from app.i18n import N_

FORMATS = {"wav": "wav", "mp3": "mp3", "ogg": "ogg", "mov,mp4,m4a,3gp,3g2,mj2": "m4a", "flac": "flac"}


class AudioRejected(ValueError):
    """The message is a msgid for the person who sent the file."""


@dataclass
class Probe:
    seconds: float
    extension: str


def probe(data: bytes, max_seconds: float, max_bytes: int) -> Probe:
    if not data:
        raise AudioRejected(N_("The file is empty."))
    if len(data) > max_bytes:
        raise AudioRejected(N_("The file is too large."))
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise AudioRejected(N_("This file is not an audio recording."))
            seconds = 0.0
            for frame in container.decode(streams[0]):
                if not isinstance(frame, av.AudioFrame):
                    continue  # an audio stream decodes to audio frames; this tells the type checker
                seconds += frame.samples / float(frame.sample_rate or 1)
                if seconds > max_seconds:
                    raise AudioRejected(N_("The message is too long."))
            extension = FORMATS.get(container.format.name, container.format.name.split(",")[0])
    except AudioRejected:
        raise
    except (av.FFmpegError, ValueError, IndexError):
        raise AudioRejected(N_("This file is not an audio recording.")) from None
    if seconds <= 0.05:
        raise AudioRejected(N_("The recording is silent or empty."))
    return Probe(seconds=seconds, extension=extension)


def store(audio_dir: Path, data: bytes, extension: str) -> str:
    """Write the file durably under a generated name; returns that name."""
    name = f"vm-{secrets.token_hex(12)}.{extension}"
    tmp = audio_dir / f".{name}.part"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, audio_dir / name)
    fd = os.open(audio_dir, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)
    return name
