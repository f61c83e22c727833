"""Model-free audio editing: mix, fade, loudness normalisation, speed and pitch (effects and
noise reduction are in tools/audio_effects.py). Each tool keeps its input's sample rate and
channels and stores the result with ``store_audio``; ``data`` says what was done and what came
out."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.artifact import Artifact, Modality
from tools.audio_io import decode_audio
from tools.audio_ops import match_channels, resample, store_audio
from tools.base import AudioInput, Tool, ToolContext, ToolResult
from tools.errors import ToolError, require

CEILING_DB = -0.3
"""Peak ceiling (dBFS) of results that could otherwise clip: mixes, effects, pitch shifts."""


def facts(data: Any, rate: int) -> dict[str, Any]:
    """What a result is: duration in seconds, sample rate, channels."""
    return {"duration": round(len(data) / rate, 6), "sample_rate": rate, "channels": data.shape[1]}


def _peak_envelope(data: Any, true_peak: bool) -> Any:
    """Per frame, the largest magnitude over channels; with ``true_peak`` also between
    samples (4x oversampling, as ITU-R BS.1770 measures true peak)."""
    import numpy as np

    if not true_peak:
        return np.abs(data).max(axis=1)
    from scipy.signal import resample_poly

    over = np.abs(resample_poly(data, 4, 1, axis=0)).max(axis=1)
    return over.reshape(len(data), 4).max(axis=1)


def limit_peaks(
    data: Any, rate: int, ceiling_db: float, true_peak: bool = False
) -> tuple[Any, float]:
    """A look-ahead brick-wall limiter: the gain dips smoothly (over about 10 ms) around peaks
    above the ceiling instead of turning the whole clip down, so one loud click does not make
    everything quiet. Returns the samples and the largest gain reduction in dB (0: untouched).
    """
    import numpy as np
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_db / 20)
    level = _peak_envelope(data, true_peak)
    if len(level) == 0 or level.max() <= ceiling:
        return data, 0.0
    need = np.minimum(1.0, ceiling / np.maximum(level, 1e-12))
    size = 2 * max(1, round(0.005 * rate)) + 1
    # A window-minimum then a same-size moving average never exceeds the needed gain at any
    # frame (every averaged value is a minimum over a window that contains that frame).
    gain = uniform_filter1d(minimum_filter1d(need, size, mode="nearest"), size, mode="nearest")
    out = (data * gain[:, None]).astype(np.float32)
    final = _peak_envelope(out, true_peak).max()
    if final > ceiling:  # inter-sample overshoot from the gain ripple: a last, tiny trim
        out *= ceiling / final
    return out, round(float(-20 * math.log10(max(gain.min(), 1e-12))), 2)


def decode_at_least(
    art: Artifact, ctx: ToolContext, min_seconds: float, what: str
) -> tuple[Any, int]:
    data, rate = decode_audio(art, ctx.settings)
    if len(data) < min_seconds * rate:
        raise ToolError(
            f"{art.label()} lasts {len(data) / rate:.3f}s; {what} needs at least "
            f"{min_seconds:g}s of audio"
        )
    return data, rate


# --- mix_audio ---------------------------------------------------------------------------

Volume = Annotated[float, Field(ge=0, le=4)]
Offset = Annotated[float, Field(ge=0, le=86_400)]


class MixArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audios: list[AudioInput] = Field(min_length=2, max_length=16, description="the clips to layer")
    volumes: list[Volume] | None = Field(
        None, description="a gain per clip, 1.0 keeps it (default: all 1.0)"
    )
    offsets: list[Offset] | None = Field(
        None, description="seconds after the start at which each clip begins (default: all 0)"
    )

    @model_validator(mode="after")
    def _one_per_clip(self) -> MixArgs:
        for name, values in (("volumes", self.volumes), ("offsets", self.offsets)):
            if values is not None and len(values) != len(self.audios):
                raise ValueError(
                    f"{name} has {len(values)} values for {len(self.audios)} clips; give one "
                    "per clip, in the same order"
                )
        return self


class MixAudio(Tool):
    name = "mix_audio"
    description = (
        "Play several audio clips at the same time in one clip (voice over music, layered "
        "ambience), each with its own volume and start time."
    )
    inputs = MixArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: MixArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        volumes = args.volumes or [1.0] * len(args.audios)
        offsets = args.offsets or [0.0] * len(args.audios)
        decoded = []
        for i, art in enumerate(args.audios):
            ctx.check_cancelled()
            ctx.report(i / (len(args.audios) + 1), f"reading {art.label()}")
            decoded.append(decode_audio(art, ctx.settings))
        rate = max(r for _, r in decoded)
        channels = max(d.shape[1] for d, _ in decoded)
        clips = []
        for data, r in decoded:
            ctx.check_cancelled()
            clips.append(match_channels(resample(data, r, rate), channels))
        starts = [round(o * rate) for o in offsets]
        total = max(s + len(c) for s, c in zip(starts, clips, strict=True))
        if total / rate > ctx.settings.max_audio_seconds:
            raise ToolError(
                f"the mix would last {total / rate:.0f}s; the limit is "
                f"{ctx.settings.max_audio_seconds:.0f}s (tools.max_audio_seconds)"
            )
        mix = np.zeros((total, channels), dtype=np.float32)
        for start, clip, volume in zip(starts, clips, volumes, strict=True):
            mix[start : start + len(clip)] += volume * clip
        ctx.report(len(args.audios) / (len(args.audios) + 1), "limiting peaks")
        mix, reduced = limit_peaks(mix, rate, CEILING_DB)
        data = {
            **facts(mix, rate),
            "volumes": volumes,
            "offsets": offsets,
            "peak_limited": reduced > 0,
            "gain_reduction_db": reduced,
        }
        art = store_audio(
            ctx, mix, rate, args.audios[0], "mix", sources=[a.id for a in args.audios], **data
        )
        note = f", peaks limited by {reduced:.1f} dB to avoid clipping" if reduced else ""
        return ToolResult(
            artifacts=[art],
            data=data,
            summary=f"mixed {len(clips)} clips into {total / rate:.2f}s{note}",
        )


# --- fade_audio --------------------------------------------------------------------------


def _exponential(x: Any) -> Any:
    # Gain rising 60 dB evenly in decibels: gentle at first, fast at the end; as a fade-out,
    # a fast drop then a long quiet tail, which is how a natural fade sounds.
    return (1000.0**x - 1.0) / 999.0


def _logarithmic(x: Any) -> Any:
    # The mirror image: fast at first, gentle at the end.
    import numpy as np

    return np.log10(1.0 + 9.0 * x)


FADE_CURVES: dict[str, Callable[[Any], Any]] = {
    "linear": lambda x: x,
    "exponential": _exponential,
    "logarithmic": _logarithmic,
}
"""Gain (0..1) against fade progress (0..1); every curve is 0 at 0 and 1 at 1."""


class FadeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: AudioInput
    fade_in: float = Field(0.0, ge=0, le=600, description="seconds of fade-in at the start")
    fade_out: float = Field(0.0, ge=0, le=600, description="seconds of fade-out at the end")
    curve: Literal["linear", "exponential", "logarithmic"] = Field(
        "linear",
        description="how the volume changes: evenly (linear), slow then fast (exponential, "
        "sounds most natural), or fast then slow (logarithmic)",
    )

    @model_validator(mode="after")
    def _something(self) -> FadeArgs:
        if self.fade_in == 0 and self.fade_out == 0:
            raise ValueError("give fade_in and/or fade_out in seconds (both are 0)")
        return self


class FadeAudio(Tool):
    name = "fade_audio"
    description = "Fade a clip in at the start and/or out at the end."
    inputs = FadeArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: FadeArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        data, rate = decode_audio(args.audio, ctx.settings)
        total = len(data) / rate
        for name, seconds in (("fade_in", args.fade_in), ("fade_out", args.fade_out)):
            if seconds > total:
                raise ToolError(
                    f"{name} of {seconds:g}s is longer than {args.audio.label()}, which lasts "
                    f"{total:.2f}s; use at most {total:.2f}s"
                )
        curve = FADE_CURVES[args.curve]
        env = np.ones(len(data), dtype=np.float32)
        fi, fo = round(args.fade_in * rate), round(args.fade_out * rate)
        if fi:
            env[:fi] *= curve(np.arange(fi) / fi)  # the first sample is silent
        if fo:
            env[len(env) - fo :] *= curve(np.arange(fo - 1, -1, -1) / fo)  # so is the last
        out = data * env[:, None]
        info = {
            **facts(out, rate),
            "fade_in": args.fade_in,
            "fade_out": args.fade_out,
            "curve": args.curve,
            "overlap": bool(fi + fo > len(data)),
        }
        art = store_audio(ctx, out, rate, args.audio, "faded", source=args.audio.id, **info)
        parts = []
        if fi:
            parts.append(f"in over {args.fade_in:g}s")
        if fo:
            parts.append(f"out over {args.fade_out:g}s")
        return ToolResult(
            artifacts=[art],
            data=info,
            summary=f"faded {args.audio.label()} {' and '.join(parts)} ({args.curve})",
        )


# --- normalize_audio ---------------------------------------------------------------------


class NormalizeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: AudioInput
    target_lufs: float = Field(
        -16.0,
        ge=-70,
        le=0,
        description="loudness to reach in LUFS: -16 for podcasts and the web, -14 for "
        "streaming music, -23 for broadcast",
    )
    peak_db: float = Field(
        -1.0, ge=-20, le=0, description="highest true peak allowed afterwards, in dBFS"
    )


class NormalizeAudio(Tool):
    name = "normalize_audio"
    description = (
        "Make a clip's loudness a standard level (LUFS, ITU-R BS.1770), limiting peaks so "
        "it does not clip."
    )
    inputs = NormalizeArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: NormalizeArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        pyln = require("pyloudnorm", "audio")
        data, rate = decode_at_least(args.audio, ctx, 0.4, "measuring loudness (one 400 ms block)")
        if data.shape[1] > 5:
            raise ToolError(
                f"{args.audio.label()} has {data.shape[1]} channels; loudness is measured for "
                "up to 5 (convert it to stereo first)"
            )
        meter = pyln.Meter(rate)
        before = meter.integrated_loudness(data.astype(np.float64))
        if not math.isfinite(before) or before < -70:
            raise ToolError(
                f"{args.audio.label()} is silent (below -70 LUFS); there is nothing to normalise"
            )
        ctx.report(0.3, f"measured {before:.1f} LUFS")
        out = (data * 10 ** ((args.target_lufs - before) / 20)).astype(np.float32)
        out, limited = limit_peaks(out, rate, args.peak_db, true_peak=True)
        after = meter.integrated_loudness(out.astype(np.float64))
        # Limiting peaks lowers the loudness a little: make up for it and limit again.
        for _ in range(3):
            ctx.check_cancelled()
            if not limited or abs(after - args.target_lufs) <= 0.1:
                break
            out, more = limit_peaks(
                out * 10 ** ((args.target_lufs - after) / 20), rate, args.peak_db, true_peak=True
            )
            limited = max(limited, more)
            after = meter.integrated_loudness(out.astype(np.float64))
        info = {
            **facts(out, rate),
            "lufs_before": round(float(before), 2),
            "lufs_after": round(float(after), 2),
            "target_lufs": args.target_lufs,
            "gain_db": round(float(after - before), 2),
            "peak_limited_db": limited,
            "target_reached": bool(abs(after - args.target_lufs) <= 0.5),
        }
        art = store_audio(ctx, out, rate, args.audio, "normalized", source=args.audio.id, **info)
        note = "" if info["target_reached"] else " (the peak limit kept it from the target)"
        return ToolResult(
            artifacts=[art],
            data=info,
            summary=f"normalised {args.audio.label()} from {before:.1f} to {after:.1f} LUFS{note}",
        )


# --- change_speed_pitch ------------------------------------------------------------------


class SpeedPitchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: AudioInput
    speed: float = Field(1.0, ge=0.25, le=4, description="playback speed: 2 is twice as fast")
    semitones: float = Field(
        0.0, ge=-24, le=24, description="pitch shift in semitones (12 is an octave up)"
    )

    @model_validator(mode="after")
    def _something(self) -> SpeedPitchArgs:
        if self.speed == 1 and self.semitones == 0:
            raise ValueError(
                "nothing to change: give a speed other than 1 and/or semitones other than 0"
            )
        return self


class ChangeSpeedPitch(Tool):
    name = "change_speed_pitch"
    description = (
        "Change a clip's speed and/or pitch, each independently of the other (slow down "
        "speech without lowering it, make a voice deeper or higher: a voice changer)."
    )
    inputs = SpeedPitchArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: SpeedPitchArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        pedalboard = require("pedalboard", "fx")
        data, rate = decode_at_least(args.audio, ctx, 0.05, "changing speed or pitch")
        ctx.report(0.1, "stretching")
        # Rubber Band through pedalboard; formants move with the pitch so that any sound
        # (not only a voice) shifts cleanly, the classic voice-changer effect.
        out = pedalboard.time_stretch(
            np.ascontiguousarray(data.T),
            rate,
            stretch_factor=args.speed,
            pitch_shift_in_semitones=args.semitones,
            preserve_formants=False,
        ).T
        ctx.check_cancelled()
        want = round(len(data) / args.speed)
        out = out[:want]
        if len(out) < want:
            out = np.concatenate([out, np.zeros((want - len(out), out.shape[1]), out.dtype)])
        out, _ = limit_peaks(out, rate, CEILING_DB)
        info = {**facts(out, rate), "speed": args.speed, "semitones": args.semitones}
        art = store_audio(
            ctx,
            out,
            rate,
            args.audio,
            f"x{args.speed:g}{args.semitones:+g}st",
            source=args.audio.id,
            **info,
        )
        return ToolResult(
            artifacts=[art],
            data=info,
            summary=f"changed {args.audio.label()}: speed x{args.speed:g}, pitch "
            f"{args.semitones:+g} semitones, now {want / rate:.2f}s",
        )


mix_audio = MixAudio()
fade_audio = FadeAudio()
normalize_audio = NormalizeAudio()
change_speed_pitch = ChangeSpeedPitch()
