"""Decoding and encoding audio: soundfile for common formats, the bundled ffmpeg for the rest."""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tools.artifact import Artifact
from tools.errors import ToolError, require
from tools.ffmpeg import ffmpeg_exe
from tools.settings import ToolSettings

# Container name -> (soundfile format, subtype); None means "encode through ffmpeg".
WRITE_FORMATS: dict[str, tuple[str, str | None] | None] = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "m4a": None,
}
MIN_RATE, MAX_RATE = 1_000, 384_000


def decode_audio(art: Artifact, settings: ToolSettings) -> tuple[Any, int]:
    """Decode an audio artifact to float32 samples shaped (frames, channels) and its rate."""
    sf = require("soundfile", "audio")
    if art.metadata.get("size") == 0 or Path(art.path).stat().st_size == 0:
        raise ToolError(f"{art.label()} is an empty (0-byte) file; attach the audio again")
    try:
        info = sf.info(art.path)
    except (sf.LibsndfileError, RuntimeError):
        return _decode_with_ffmpeg(art, settings)
    _check_header(art, info.samplerate, info.channels, info.frames, settings)
    try:
        data, rate = sf.read(art.path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ToolError(
            f"{art.label()} could not be decoded ({exc}); the file is truncated or corrupt"
        ) from None
    if len(data) == 0:
        raise ToolError(f"{art.label()} holds no audio samples (truncated or empty)")
    return data, rate


def _check_header(
    art: Artifact, rate: int, channels: int, frames: int, settings: ToolSettings
) -> None:
    if channels < 1:
        raise ToolError(f"{art.label()} declares {channels} channels; the file is corrupt")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ToolError(
            f"{art.label()} declares a sample rate of {rate} Hz, outside "
            f"{MIN_RATE}..{MAX_RATE}; the file is corrupt or not audio"
        )
    seconds = frames / rate
    if seconds > settings.max_audio_seconds:
        raise ToolError(
            f"{art.label()} claims {seconds / 3600:.1f} hours of audio; the limit is "
            f"{settings.max_audio_seconds / 3600:.1f} hours (tools.max_audio_seconds)"
        )


def _decode_with_ffmpeg(art: Artifact, settings: ToolSettings) -> tuple[Any, int]:
    sf = require("soundfile", "audio")
    with tempfile.TemporaryDirectory(prefix="anymodal-audio-") as tmp:
        out = Path(tmp) / "decoded.wav"
        cmd = [
            ffmpeg_exe(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            art.path,
            "-vn",
            "-t",
            str(settings.max_audio_seconds),
            "-acodec",
            "pcm_f32le",
            str(out),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not out.exists() or out.stat().st_size <= 44:
            why = (proc.stderr.strip().splitlines() or ["no audio stream"])[-1]
            raise ToolError(
                f"{art.label()} is not audio anymodal can decode ({why}); use "
                "WAV, FLAC, OGG, MP3 or M4A"
            )
        data, rate = sf.read(str(out), dtype="float32", always_2d=True)
    if len(data) == 0:
        raise ToolError(f"{art.label()} holds no audio samples")
    return data, rate


def encode_audio(samples: Any, rate: int, ext: str) -> tuple[bytes, dict[str, Any]]:
    """Encode float samples to a container chosen by extension; returns bytes and facts."""
    import numpy as np

    sf = require("soundfile", "audio")
    fmt = ext.lower().lstrip(".") or "wav"
    if fmt not in WRITE_FORMATS:
        raise ToolError(f"cannot write .{fmt} audio; use one of {', '.join(WRITE_FORMATS)}")
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.ndim != 2 or data.shape[1] < 1:
        raise ToolError(f"audio must be shaped (frames,) or (frames, channels); got {data.shape}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ToolError(f"sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE}")
    data = np.clip(data, -1.0, 1.0)
    spec = WRITE_FORMATS[fmt]
    if spec is None:
        payload = _encode_with_ffmpeg(data, rate, fmt)
    else:
        buf = io.BytesIO()
        sf.write(buf, data, rate, format=spec[0], subtype=spec[1])
        payload = buf.getvalue()
    facts = {
        "sample_rate": rate,
        "channels": int(data.shape[1]),
        "duration": round(len(data) / rate, 6),
        "frames": int(len(data)),
    }
    return payload, facts


def _encode_with_ffmpeg(data: Any, rate: int, fmt: str) -> bytes:
    sf = require("soundfile", "audio")
    with tempfile.TemporaryDirectory(prefix="anymodal-audio-") as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / f"out.{fmt}"
        sf.write(str(src), data, rate, subtype="PCM_16")
        cmd = [
            ffmpeg_exe(),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(src),
            "-c:a",
            "aac",
            "-b:a",
            "160k",
            str(dst),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise ToolError(f"ffmpeg could not encode .{fmt}: {proc.stderr.strip()[-300:]}")
        return dst.read_bytes()


def audio_facts(art: Artifact) -> dict[str, Any]:
    """Cheap facts from the header alone (no decoding); empty if the header is unreadable."""
    try:
        sf = require("soundfile", "audio")
        info = sf.info(art.path)
    except Exception:
        return {}
    return {
        "sample_rate": info.samplerate,
        "channels": info.channels,
        "duration": round(info.frames / info.samplerate, 6) if info.samplerate else 0.0,
    }
