"""Audio checks and durable storage for incoming voicemail.

WAV, MP3, OGG (Opus, Vorbis) and M4A are accepted, recognised from their first bytes
by this module, never by FFmpeg: FFmpeg's own format guessing would also take a text
describing a network stream (an SDP file) and open the sockets it names. Each file
is decoded whole once, from memory, with the demuxer of its format only and no
network protocol, so a truncated or fake file is refused here, not at 3 a.m. in the
worker. Files get generated names (never the client's) and reach their final name
only once fully on disk.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.i18n import N_

# PyAV and NumPy are imported where a recording is read, not at start-up (0.1 s off every start).
if TYPE_CHECKING:
    import av
    import numpy as np

# Nothing accepted takes long to decode (a 20 MB WAV: well under a second); a file
# that does is refused rather than left to hold a request.
DECODE_BUDGET_S = 10.0
# Decoded audio may fall short of what the container declares by encoder padding
# (tens of milliseconds); a file cut off falls short by more.
_SHORTFALL_S = 0.25
# Streaming writers (a PBX recording to a pipe) leave the WAV data size at one of
# these, meaning "until the end of the file".
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)

NOT_AUDIO = N_("This file is not an audio recording.")


class AudioRejected(ValueError):
    """The message is a msgid for the person who sent the file."""


@dataclass
class Probe:
    seconds: float
    extension: str


@dataclass(frozen=True)
class Format:
    demuxer: str  # FFmpeg's name for the one demuxer allowed to read it
    extension: str  # of the stored file
    options: tuple[tuple[str, str], ...] = ()


WAV = Format("wav", "wav")
MP3 = Format("mp3", "mp3")
OGG = Format("ogg", "ogg")
# QuickTime "data references" point at other files; FFmpeg leaves them off by default: say so.
M4A = Format("mp4", "m4a", (("enable_drefs", "0"),))


def sniff(head: bytes) -> Format | None:
    """The accepted format these first bytes (16 are enough) announce, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"OggS":
        return OGG
    if head[4:8] == b"ftyp":
        return M4A
    if head[:3] == b"ID3":
        return MP3
    # An MPEG audio frame: 11 sync bits, a version that is not "reserved", a layer that
    # is not "reserved" (ADTS AAC, which has layer 0, is not accepted).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08 \
            and head[1] & 0x06:
        return MP3
    return None


def _refuse_nested_open(url: str, flags: int, options: dict) -> Any:
    # Called by FFmpeg when a demuxer wants to open another file or URL: none of the
    # accepted formats needs one.
    raise PermissionError("no other file or URL may be opened while decoding a voicemail")


def _open(data: io.BytesIO, fmt: Format) -> av.container.InputContainer:
    import av

    return av.open(
        data, mode="r", format=fmt.demuxer, metadata_errors="ignore", timeout=DECODE_BUDGET_S,
        io_open=_refuse_nested_open,
        # The input is memory: no protocol is needed, so only "file" is named (and no demuxer
        # but this one), in case anything inside tried to reach out.
        options={"protocol_whitelist": "file", "format_whitelist": fmt.demuxer, **dict(fmt.options)},
    )


def _wav_cut_off(data: bytes) -> bool:
    """True when the WAV's header declares more audio than the file holds."""
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"data":
            return size not in _WAV_UNKNOWN_SIZES and pos + 8 + size > len(data)
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return True  # the file ends before its audio begins


def _ogg_cut_off(data: bytes) -> bool:
    """True when the last Ogg page is incomplete (each page says its own length)."""
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            return True
        segments = data[pos + 26]
        if pos + 27 + segments > len(data):
            return True
        pos += 27 + segments + sum(data[pos + 27:pos + 27 + segments])
    return pos != len(data)


def probe(data: bytes, max_seconds: float, max_bytes: int) -> Probe:
    """Check an incoming recording; raises AudioRejected (a msgid) when it is not one
    Capteo can keep: empty, too large, not an accepted format, cut off, too long, silent."""
    if not data:
        raise AudioRejected(N_("The file is empty."))
    if len(data) > max_bytes:
        raise AudioRejected(N_("The file is too large."))
    fmt = sniff(data[:16])
    if fmt is None:
        raise AudioRejected(NOT_AUDIO)
    import av

    started = time.monotonic()
    try:
        with _open(io.BytesIO(data), fmt) as container:
            if not container.streams.audio:
                raise AudioRejected(NOT_AUDIO)
            stream = container.streams.audio[0]
            declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
            seconds = 0.0
            for frame in container.decode(stream):
                if not isinstance(frame, av.AudioFrame):
                    continue  # an audio stream decodes to audio frames; this tells the type checker
                seconds += frame.samples / float(frame.sample_rate or 1)
                if seconds > max_seconds:
                    raise AudioRejected(N_("The message is too long."))
                if time.monotonic() - started > DECODE_BUDGET_S:
                    raise AudioRejected(NOT_AUDIO)
    except AudioRejected:
        raise
    except (av.FFmpegError, PermissionError, ValueError, IndexError):
        raise AudioRejected(NOT_AUDIO) from None
    if seconds <= 0.05:
        raise AudioRejected(N_("The recording is silent or empty."))
    # Cut off: the header promised more than the file holds, or the decoder found less
    # audio than the container declares (an MP3's frame count, an M4A's sample table).
    if fmt is WAV and _wav_cut_off(data) or fmt is OGG and _ogg_cut_off(data):
        raise AudioRejected(NOT_AUDIO)
    if declared is not None and seconds < declared - max(_SHORTFALL_S, 0.02 * declared):
        raise AudioRejected(NOT_AUDIO)
    return Probe(seconds=seconds, extension=fmt.extension)


def decode(path: Path, sampling_rate: int) -> np.ndarray:
    """A stored recording as mono float32 samples at `sampling_rate` (what Whisper
    reads), decoded under the same rules as `probe`: a file that does not pass them
    (one kept before they existed) raises AudioRejected."""
    data = path.read_bytes()
    fmt = sniff(data[:16])
    if fmt is None:
        raise AudioRejected(NOT_AUDIO)
    import av
    import numpy as np

    resampler = av.AudioResampler(format="s16", layout="mono", rate=sampling_rate)
    chunks: list[np.ndarray] = []
    try:
        with _open(io.BytesIO(data), fmt) as container:
            for frame in container.decode(audio=0):
                if not isinstance(frame, av.AudioFrame):
                    continue
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    except (av.FFmpegError, PermissionError) as e:
        raise AudioRejected(NOT_AUDIO) from e
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    return samples.astype(np.float32) / 32768.0


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
