"""Model-free audio editing: mix, fade, loudness normalisation, speed and pitch, effects,
noise reduction. Each tool keeps its input's sample rate and channels and stores the result
with ``store_audio``; ``data`` says what was done and what came out."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
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


def _decode(art: Artifact, ctx: ToolContext, min_seconds: float, what: str) -> tuple[Any, int]:
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
        data, rate = _decode(args.audio, ctx, 0.4, "measuring loudness (one 400 ms block)")
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
        data, rate = _decode(args.audio, ctx, 0.05, "changing speed or pitch")
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


# --- audio_effects -----------------------------------------------------------------------


class _Butter:
    """A 4th-order Butterworth filter (24 dB/octave) that keeps its state between chunks.
    pedalboard's LowpassFilter and HighpassFilter are first order (6 dB/octave), too gentle
    to remove a band, so the filters come from scipy."""

    def __init__(self, kind: str, hz: float | tuple[float, float]):
        self.kind, self.hz = kind, hz
        self.state: Any = None

    def __call__(self, x: Any, rate: int, reset: bool = True) -> Any:
        import numpy as np
        from scipy.signal import butter, sosfilt

        hz = self.hz if isinstance(self.hz, float) else list(self.hz)
        sos = butter(4, hz, btype=self.kind, fs=rate, output="sos")
        if self.state is None or reset:
            self.state = np.zeros((sos.shape[0], x.shape[0], 2))
        y, self.state = sosfilt(sos, x, axis=-1, zi=self.state)
        return y.astype(np.float32)


def _nyq(hz: float, rate: int) -> float:
    return min(hz, 0.45 * rate)


def _log_sweep(a: float, start: float, end: float) -> float:
    """From ``start`` (amount 0) to ``end`` (amount 1) evenly in octaves, as ears hear."""
    return start * (end / start) ** a


@dataclass(frozen=True)
class Effect:
    """What ``amount`` (0..1) controls, the processing stages it builds, the tail it leaves."""

    mapping: str
    build: Callable[[Any, float, int], list[Any]]
    tail: Callable[[float], float] = lambda a: 0.0


EFFECTS: dict[str, Effect] = {
    "reverb": Effect(
        "room size 0.2..0.95, wet level 0.1..0.5, dry 1.0..0.6; tail 0.5..4.5 s",
        lambda pb, a, r: [
            pb.Reverb(room_size=0.2 + 0.75 * a, wet_level=0.1 + 0.4 * a, dry_level=1 - 0.4 * a)
        ],
        lambda a: 0.5 + 4 * a,
    ),
    "echo": Effect(
        "delay 0.15..0.5 s, feedback 0.2..0.6, mix 0.2..0.5; tail until the echoes fall 60 dB",
        lambda pb, a, r: [
            pb.Delay(delay_seconds=0.15 + 0.35 * a, feedback=0.2 + 0.4 * a, mix=0.2 + 0.3 * a)
        ],
        lambda a: min(10.0, (0.15 + 0.35 * a) * math.log(1e-3) / math.log(0.2 + 0.4 * a)),
    ),
    "lowpass": Effect(
        "cutoff 8 kHz..200 Hz (24 dB/octave): more amount, more muffled",
        lambda pb, a, r: [_Butter("lowpass", _nyq(_log_sweep(a, 8000, 200), r))],
    ),
    "highpass": Effect(
        "cutoff 50 Hz..2 kHz (24 dB/octave): more amount, thinner",
        lambda pb, a, r: [_Butter("highpass", _nyq(_log_sweep(a, 50, 2000), r))],
    ),
    "distortion": Effect(
        "drive 5..40 dB",
        lambda pb, a, r: [pb.Distortion(drive_db=5 + 35 * a), pb.Gain(gain_db=-6 * a)],
    ),
    "chorus": Effect(
        "rate 0.5..3 Hz, depth 0.1..0.6, mix 0.3..0.7",
        lambda pb, a, r: [pb.Chorus(rate_hz=0.5 + 2.5 * a, depth=0.1 + 0.5 * a, mix=0.3 + 0.4 * a)],
    ),
    "telephone": Effect(
        "band-pass 300..3400 Hz, then drive 4..20 dB and 12..6 bits of grit, band-passed again",
        lambda pb, a, r: [
            _Butter("bandpass", (300.0, _nyq(3400, r))),
            pb.Distortion(drive_db=4 + 16 * a),
            pb.Bitcrush(bit_depth=12 - 6 * a),
            _Butter("bandpass", (300.0, _nyq(3400, r))),
        ],
    ),
    "compressor": Effect(
        "threshold -10..-40 dB, ratio 2..10, with make-up gain of half the reduction at 0 dB",
        lambda pb, a, r: [
            pb.Compressor(threshold_db=-10 - 30 * a, ratio=2 + 8 * a, attack_ms=5, release_ms=100),
            pb.Gain(gain_db=(10 + 30 * a) * (1 - 1 / (2 + 8 * a)) / 2),
        ],
    ),
    "bass_boost": Effect(
        "low shelf at 200 Hz, +3..+15 dB",
        lambda pb, a, r: [pb.LowShelfFilter(cutoff_frequency_hz=200, gain_db=3 + 12 * a)],
    ),
    "treble_boost": Effect(
        "high shelf at 3 kHz, +3..+15 dB",
        lambda pb, a, r: [
            pb.HighShelfFilter(cutoff_frequency_hz=_nyq(3000, r), gain_db=3 + 12 * a)
        ],
    ),
}
"""Each effect, and how ``amount`` 0..1 maps onto its parameters."""

EffectName = Literal[
    "reverb",
    "echo",
    "lowpass",
    "highpass",
    "distortion",
    "chorus",
    "telephone",
    "compressor",
    "bass_boost",
    "treble_boost",
]
CHUNK_SECONDS = 10.0
"""Effects run in chunks of this length (state carried over), to report progress and stop."""


class EffectsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: AudioInput
    effect: EffectName = Field(description="the effect to apply")
    amount: float = Field(0.5, ge=0, le=1, description="how strong, 0 to 1")


class AudioEffects(Tool):
    name = "audio_effects"
    description = (
        "Apply an effect to a clip: reverb, echo, low- or high-pass filter, distortion, "
        "chorus, telephone, compression, bass or treble boost."
    )
    inputs = EffectsArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: EffectsArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        pb = require("pedalboard", "fx")
        data, rate = _decode(args.audio, ctx, 0.01, "an effect")
        effect = EFFECTS[args.effect]
        stages = effect.build(pb, args.amount, rate)
        tail = round(effect.tail(args.amount) * rate)
        x = np.concatenate([data, np.zeros((tail, data.shape[1]), np.float32)]).T
        x = np.ascontiguousarray(x, dtype=np.float32)
        frames = x.shape[1]
        edges = np.linspace(0, frames, max(1, round(frames / rate / CHUNK_SECONDS)) + 1)
        edges = edges.astype(int)
        done = []
        for i in range(len(edges) - 1):
            ctx.check_cancelled()
            ctx.report(i / (len(edges) - 1), f"{args.effect}: {edges[i] / rate:.0f}s")
            y = x[:, edges[i] : edges[i + 1]]
            for stage in stages:
                y = stage(y, rate, reset=i == 0)
            done.append(y)
        out = np.concatenate(done, axis=1).T
        if tail:  # keep the tail only as long as it is audible (above -60 dB of the peak)
            loud = np.flatnonzero(np.abs(out).max(axis=1) > 1e-3 * max(np.abs(out).max(), 1e-9))
            end = max(len(data), (loud[-1] + 1) if len(loud) else 0)
            out = out[: min(len(out), end + round(0.05 * rate))]
        out, reduced = limit_peaks(np.ascontiguousarray(out), rate, CEILING_DB)
        info = {
            **facts(out, rate),
            "effect": args.effect,
            "amount": args.amount,
            "mapping": effect.mapping,
            "tail_seconds": round((len(out) - len(data)) / rate, 3),
            "gain_reduction_db": reduced,
        }
        art = store_audio(ctx, out, rate, args.audio, args.effect, source=args.audio.id, **info)
        note = f", {info['tail_seconds']:g}s longer for its tail" if info["tail_seconds"] else ""
        return ToolResult(
            artifacts=[art],
            data=info,
            summary=f"applied {args.effect} ({args.amount:g}) to {args.audio.label()}{note}",
        )


# --- reduce_noise ------------------------------------------------------------------------

NOISE_CHUNK_SECONDS = 60.0
NOISE_PAD_SECONDS = 1.0
"""Long clips are cleaned a minute at a time (each padded on both sides, the padding then
dropped, as noisereduce itself does), to report progress and stop when cancelled."""
QUIET_FRAME_SECONDS = 0.1
QUIET_FRACTION = 0.2
"""The noise profile: the quietest fifth of the clip's 100 ms frames (at most 30 s)."""
MASK_SMOOTH_HZ = 100
"""How far the gate's mask is smoothed across frequency. noisereduce's 500 Hz blurs the
gaps between a voice's harmonics into them: on LibriSpeech speech with added white noise it
cost the speech 3 dB at strength 0.7, against under 1 dB at 100 Hz, for the same noise
removed between words."""


class NoiseArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: AudioInput
    strength: float = Field(0.7, ge=0, le=1, description="how much noise to remove, 0 to 1")


def quiet_frames(x: Any, rate: int, min_samples: int = 0) -> Any:
    """The quietest ``QUIET_FRACTION`` of a channel's 100 ms frames, in order, joined: where
    only the background noise is heard (between words, before the music starts)."""
    import numpy as np

    w = max(1, round(QUIET_FRAME_SECONDS * rate))
    n = len(x) // w
    frames = x[: n * w].reshape(n, w)
    energy = np.mean(np.square(frames, dtype=np.float64), axis=1)
    k = min(n, max(math.ceil(QUIET_FRACTION * n), math.ceil(min_samples / w)))
    k = min(k, max(1, round(30 / QUIET_FRAME_SECONDS)))
    return frames[np.sort(np.argsort(energy, kind="stable")[:k])].reshape(-1)


def _rms_db(x: Any) -> float:
    import numpy as np

    return round(float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20)), 2)


class ReduceNoise(Tool):
    name = "reduce_noise"
    description = (
        "Remove background noise (hiss, hum, fans, steady wind, room noise) from a recording."
    )
    inputs = NoiseArgs
    outputs = (Modality.AUDIO,)

    def run(self, args: NoiseArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        nr = require("noisereduce", "audio")
        data, rate = _decode(args.audio, ctx, 0.5, "telling noise from sound")
        n_fft = 1024 if rate <= 24_000 else 2048 if rate <= 48_000 else 4096
        step, pad = round(NOISE_CHUNK_SECONDS * rate), round(NOISE_PAD_SECONDS * rate)
        starts = range(0, len(data), step)
        total = data.shape[1] * len(starts)
        out = np.zeros_like(data)
        floors = []
        for c in range(data.shape[1]):
            x = data[:, c]
            # Spectral gating against a noise profile taken from the clip's quietest parts:
            # estimating the noise from the whole clip (noisereduce's default) counts the
            # speech or music as noise and gates it away too.
            profile = quiet_frames(x, rate, min_samples=4 * n_fft)
            floors.append(_rms_db(profile))
            if not np.any(x) or args.strength == 0:  # nothing to gate, or asked to keep all
                out[:, c] = x
                continue
            for k, s in enumerate(starts):
                ctx.check_cancelled()
                ctx.report((c * len(starts) + k) / total, f"channel {c + 1}: {s / rate:.0f}s")
                lo, hi = max(0, s - pad), min(len(data), s + step + pad)
                y = nr.reduce_noise(
                    y=x[lo:hi],
                    sr=rate,
                    stationary=True,
                    y_noise=profile,
                    prop_decrease=args.strength,
                    n_fft=n_fft,
                    freq_mask_smooth_hz=MASK_SMOOTH_HZ,
                )
                out[s : min(s + step, len(data)), c] = y[s - lo : s - lo + step]
        out = np.nan_to_num(out)
        after = [_rms_db(quiet_frames(out[:, c], rate, 4 * n_fft)) for c in range(out.shape[1])]
        info = {
            **facts(out, rate),
            "strength": args.strength,
            "noise_floor_before_db": max(floors),
            "noise_floor_after_db": max(after),
            "level_before_db": _rms_db(data),
            "level_after_db": _rms_db(out),
        }
        art = store_audio(ctx, out, rate, args.audio, "denoised", source=args.audio.id, **info)
        return ToolResult(
            artifacts=[art],
            data=info,
            summary=f"reduced noise in {args.audio.label()} (strength {args.strength:g}): noise "
            f"floor {max(floors):.1f} -> {max(after):.1f} dBFS",
        )


mix_audio = MixAudio()
fade_audio = FadeAudio()
normalize_audio = NormalizeAudio()
change_speed_pitch = ChangeSpeedPitch()
audio_effects = AudioEffects()
reduce_noise = ReduceNoise()
