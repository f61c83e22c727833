"""Audio effects (reverb, echo, filters, distortion, chorus, telephone, compression, EQ) and
noise reduction: model-free, keeping the input's sample rate and channels."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Modality
from tools.audio_fx import CEILING_DB, decode_at_least, facts, limit_peaks
from tools.audio_ops import store_audio
from tools.base import AudioInput, Tool, ToolContext, ToolResult
from tools.errors import require

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
        data, rate = decode_at_least(args.audio, ctx, 0.01, "an effect")
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
        data, rate = decode_at_least(args.audio, ctx, 0.5, "telling noise from sound")
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


audio_effects = AudioEffects()
reduce_noise = ReduceNoise()
