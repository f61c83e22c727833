"""Model-free audio tools: trim, concatenate, convert."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.artifact import Artifact, Modality
from tools.audio_io import decode_audio
from tools.base import (
    AudioInput,
    EndTime,
    StartTime,
    Tool,
    ToolContext,
    ToolResult,
    artifact_input,
    end_after_start,
    span_end,
)
from tools.errors import ToolError, require

AudioFormat = Literal["wav", "flac", "ogg", "mp3", "m4a"]


def resample(data: Any, rate: int, target: int) -> Any:
    """Resample (frames, channels) float audio with soxr's high-quality filter."""
    if rate == target:
        return data
    soxr = require("soxr", "audio")
    return soxr.resample(data, rate, target, quality="HQ")


def match_channels(data: Any, channels: int) -> Any:
    """Down-mix to mono by averaging, or up-mix mono by copying."""
    import numpy as np

    have = data.shape[1]
    if have == channels:
        return data
    if channels == 1:
        return data.mean(axis=1, keepdims=True)
    if have == 1:
        return np.repeat(data, channels, axis=1)
    raise ToolError(f"cannot map {have} channels to {channels}; convert to mono or stereo")


def store_audio(
    ctx: ToolContext,
    data: Any,
    rate: int,
    origin: Artifact | None,
    suffix: str,
    fmt: str | None = None,
    **metadata: Any,
) -> Artifact:
    """Store samples as ``<origin stem>-<suffix>.<fmt>``; the format defaults to the origin's
    (wav, flac or ogg), else wav. ``metadata`` lands in the artifact's metadata."""
    stem = Path(origin.name).stem if origin and origin.name else "audio"
    if fmt is None:
        ext = Path(origin.path).suffix.lstrip(".") if origin else "wav"
        fmt = ext if ext in ("wav", "flac", "ogg") else "wav"
    return ctx.store.add_audio(
        data, rate, name=f"{stem}-{suffix}.{fmt}", metadata={"source_step": ctx.step_id, **metadata}
    )


class TrimArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: AudioInput
    start: StartTime = 0.0
    end: EndTime = None

    _order = model_validator(mode="after")(end_after_start)


class TrimAudio(Tool):
    name = "trim_audio"
    description = "Keep the part of an audio clip between start and end (in seconds)."
    inputs = TrimArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: TrimArgs, ctx: ToolContext) -> ToolResult:
        data, rate = decode_audio(args.audio, ctx.settings)
        total = len(data) / rate
        end = span_end(args, total, args.audio.label())
        clip = data[round(args.start * rate) : round(end * rate)]
        art = store_audio(
            ctx, clip, rate, args.audio, f"{args.start:g}-{end:g}s", source=args.audio.id
        )
        return ToolResult(
            artifacts=[art],
            data={"start": args.start, "end": end},
            summary=f"trimmed {args.audio.label()} to {args.start:g}s..{end:g}s",
        )


class ConcatArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audios: list[AudioInput] = Field(
        min_length=2, max_length=256, description="the clips, in order"
    )
    gap: float = Field(0.0, ge=0, le=60, description="seconds of silence between clips")


class ConcatAudio(Tool):
    name = "concat_audio"
    description = (
        "Join audio clips one after another into one clip (rates and channels are matched)."
    )
    inputs = ConcatArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: ConcatArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        decoded = [decode_audio(a, ctx.settings) for a in args.audios]
        rate = max(r for _, r in decoded)
        channels = max(d.shape[1] for d, _ in decoded)
        parts = []
        silence = np.zeros((round(args.gap * rate), channels), dtype=np.float32)
        for i, (data, r) in enumerate(decoded):
            ctx.check_cancelled()
            if i and len(silence):
                parts.append(silence)
            parts.append(match_channels(resample(data, r, rate), channels))
        joined = np.concatenate(parts)
        art = store_audio(
            ctx,
            joined,
            rate,
            args.audios[0],
            "joined",
            fmt="wav",
            sources=[a.id for a in args.audios],
        )
        return ToolResult(
            artifacts=[art],
            data={"duration": len(joined) / rate, "sample_rate": rate},
            summary=f"joined {len(args.audios)} clips into {len(joined) / rate:.2f}s",
        )


class ConvertAudioArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: artifact_input(Modality.AUDIO, Modality.VIDEO)  # type: ignore[valid-type]
    format: AudioFormat = Field("wav", description="the file format to write")
    sample_rate: int | None = Field(
        None, ge=1000, le=384_000, description="new sample rate in Hz (default: keep)"
    )
    channels: int | None = Field(None, ge=1, le=2, description="1 for mono, 2 for stereo")


class ConvertAudio(Tool):
    name = "convert_audio"
    description = (
        "Convert audio (or a video's soundtrack) to wav, flac, ogg, mp3 or m4a, optionally "
        "changing the sample rate or channels."
    )
    inputs = ConvertAudioArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: ConvertAudioArgs, ctx: ToolContext) -> ToolResult:
        data, rate = decode_audio(args.audio, ctx.settings)
        target = args.sample_rate or rate
        data = resample(data, rate, target)
        if args.channels:
            data = match_channels(data, args.channels)
        art = store_audio(
            ctx, data, target, args.audio, "converted", fmt=args.format, source=args.audio.id
        )
        return ToolResult(
            artifacts=[art], summary=f"converted {args.audio.label()} to {args.format}, {target} Hz"
        )


trim_audio = TrimAudio()
concat_audio = ConcatAudio()
convert_audio = ConvertAudio()
