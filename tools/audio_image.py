"""audio_to_image: a picture of a sound, as a spectrogram, a waveform, or (with a sound
describer and an image generator) a scene that matches what it sounds like."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Modality
from tools.audio_io import decode_audio
from tools.base import AudioInput, Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.image_draw import default_font
from tools.image_io import check_output_size
from tools.image_ops import save_image

MIN_SECONDS = 0.01
DB_RANGE = 80.0
"""The spectrogram shows the loudest 80 dB; anything quieter is black."""
SILENT_PEAK = 10 ** (-96 / 20)
"""A clip whose peak is below this (-96 dBFS, under 16-bit resolution) counts as silent."""
MAX_FRAMES_PER_COLUMN = 16
"""Long clips are sampled, at most this many FFT frames per pixel column, so time is bounded."""

MAGMA = [
    (0, 0, 4),
    (29, 17, 71),
    (81, 18, 124),
    (131, 38, 129),
    (183, 55, 121),
    (231, 82, 99),
    (252, 137, 97),
    (254, 196, 136),
    (252, 253, 191),
]
"""Anchors of the 'magma' colour map at 0, 1/8 ... 1: perceptually uniform, dark to light,
readable in grey; interpolated into a 256-entry table."""
BACKGROUND = (14, 14, 20)
TEXT = (205, 205, 215)
WAVE = (80, 160, 250)
WAVE_RMS = (175, 215, 255)
CENTRE = (55, 55, 70)


class AudioImageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    audio: AudioInput
    style: Literal["scene", "spectrogram", "waveform"] = Field(
        "scene",
        description="what kind of picture: a scene that matches the sound, a spectrogram "
        "(frequencies over time), or a waveform (loudness over time)",
    )
    seed: int | None = Field(None, description="random seed for the scene (same seed, same image)")
    width: int = Field(1024, ge=64, le=4096, description="image width in pixels")
    height: int = Field(512, ge=64, le=4096, description="image height in pixels")


class AudioToImage(Tool):
    name = "audio_to_image"
    description = (
        "Make an image from a sound: a scene that matches what it sounds like, or a "
        "spectrogram or waveform picture."
    )
    inputs = AudioImageArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: AudioImageArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        check_output_size(args.width, args.height, ctx.settings)
        data, rate = decode_audio(args.audio, ctx.settings)
        if len(data) < MIN_SECONDS * rate:
            raise ToolError(
                f"{args.audio.label()} lasts {len(data) / rate * 1000:.1f} ms; a picture needs "
                f"at least {MIN_SECONDS * 1000:g} ms of audio"
            )
        if args.style == "scene":
            return _scene(args, ctx, data, rate)
        silent = bool(np.abs(data).max() < SILENT_PEAK)
        info: dict[str, Any] = {
            "style": args.style,
            "duration": round(len(data) / rate, 6),
            "sample_rate": rate,
            "channels": data.shape[1],
            "silent": silent,
        }
        canvas, box = _layout(args.width, args.height)
        pw, ph = box[2] - box[0], box[3] - box[1]
        if args.style == "spectrogram":
            plot, facts = _spectrogram(data.mean(axis=1), rate, pw, ph, silent, ctx)
            _freq_axis(canvas, box, rate / 2)
        else:
            plot, facts = _waveform(data, pw, ph), {}
            _lane_labels(canvas, box, data.shape[1])
        info.update(facts)
        from PIL import Image

        canvas.paste(Image.fromarray(plot), box[:2])
        _time_axis(canvas, box, len(data) / rate)
        info["plot_box"] = list(box)
        art = save_image(
            ctx, canvas, args.audio, args.style, fmt="png", style=args.style, silent=silent
        )
        quiet = " (the clip is silent)" if silent else ""
        return ToolResult(
            artifacts=[art],
            data=info,
            summary=f"drew the {args.style} of {args.audio.label()} "
            f"({args.width}x{args.height}){quiet}",
        )


def _scene(args: AudioImageArgs, ctx: ToolContext, data: Any, rate: int) -> ToolResult:
    """What the sound suggests, painted by generate_image (tools/audio_scene.py)."""
    from tools.audio_scene import paint_scene

    asked = args.model_fields_set  # unasked sizes are the image model's native size
    width = args.width if "width" in asked else None
    height = args.height if "height" in asked else None
    return paint_scene(ctx, args.audio, data, rate, width, height, args.seed)


# --- layout and axes ---------------------------------------------------------------------


def _font_size(height: int) -> int:
    return max(10, min(16, height // 32))


def _layout(width: int, height: int) -> tuple[Any, tuple[int, int, int, int]]:
    """A dark canvas and the plot's box (left, top, right, bottom; right/bottom exclusive):
    room for axis labels on the left and bottom, or the whole image when it is too small
    for readable labels."""
    from PIL import Image

    canvas = Image.new("RGB", (width, height), BACKGROUND)
    if width < 200 or height < 120:
        return canvas, (0, 0, width, height)
    size = _font_size(height)
    return canvas, (round(size * 3.2), round(size * 0.6), width - 6, height - round(size * 1.8))


def _nice_step(span: float, pixels: int, min_px: int) -> float:
    """The smallest 1-2-5 step (in the span's unit) whose ticks are at least min_px apart."""
    for exp in range(-3, 7):
        for m in (1, 2, 5):
            step = m * 10.0**exp
            if step / span * pixels >= min_px:
                return step
    return span


def _time_label(t: float, step: float) -> str:
    if step >= 1 and t >= 120:
        return f"{int(t // 60)}:{int(t % 60):02d}"
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{t:.{digits}f}s"


def _time_axis(canvas: Any, box: tuple[int, int, int, int], seconds: float) -> None:
    """Tick marks and labels in seconds (m:ss past two minutes) under the plot."""
    if box[3] == canvas.height:
        return
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    font = default_font(_font_size(canvas.height))
    left, _, right, bottom = box
    step = _nice_step(seconds, right - left, 7 * _font_size(canvas.height))
    for i in range(int(seconds / step) + 1):
        t = i * step
        x = left + round(t / seconds * (right - left - 1))
        draw.line([(x, bottom), (x, bottom + 3)], fill=TEXT)
        label = _time_label(t, step)
        w = draw.textlength(label, font=font)
        draw.text((min(max(0, x - w / 2), canvas.width - w), bottom + 4), label, TEXT, font=font)


def _freq_axis(canvas: Any, box: tuple[int, int, int, int], nyquist: float) -> None:
    """kHz labels on the left at octave-spaced frequencies, which are evenly spread on the
    mel scale the spectrogram uses."""
    if box[0] == 0:
        return
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    size = _font_size(canvas.height)
    font = default_font(size)
    left, top, _, bottom = box
    last = math.inf
    draw.text((2, max(0, top - 2)), "kHz", TEXT, font=font)
    for hz in [0.0] + [125.0 * 2**k for k in range(12)]:
        if hz > nyquist:
            break
        y = bottom - 1 - round(mel(hz) / mel(nyquist) * (bottom - top - 1))
        if last - y < 1.6 * size or y - top < 1.6 * size:
            continue
        last = y
        draw.line([(left - 3, y), (left - 1, y)], fill=TEXT)
        label = f"{hz / 1000:g}"
        w = draw.textlength(label, font=font)
        draw.text((left - 5 - w, y - size / 2), label, TEXT, font=font)


def _lane_labels(canvas: Any, box: tuple[int, int, int, int], channels: int) -> None:
    if box[0] == 0 or channels == 1:
        return
    from PIL import ImageDraw

    draw = ImageDraw.Draw(canvas)
    font = default_font(_font_size(canvas.height))
    lanes = _lanes(box[3] - box[1], channels)
    for c, (top, bottom) in enumerate(lanes):
        label = ("L", "R")[c] if channels == 2 else str(c + 1)
        draw.text((4, box[1] + (top + bottom) / 2 - 6), label, TEXT, font=font)


# --- spectrogram -------------------------------------------------------------------------


def mel(hz: Any) -> Any:
    """The mel scale (HTK formula): equal steps sound like equal steps in pitch."""
    import numpy as np

    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(m: Any) -> Any:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def colour_table() -> Any:
    """The 256-entry RGB table interpolated from the MAGMA anchors."""
    import numpy as np

    anchors = np.array(MAGMA, dtype=np.float64)
    at = np.linspace(0, 1, len(anchors))
    x = np.linspace(0, 1, 256)
    return np.stack([np.interp(x, at, anchors[:, i]) for i in range(3)], 1).astype(np.uint8)


def _mel_rows(nbins: int, df: float, nyquist: float, rows: int) -> Any:
    """A (rows, bins) matrix averaging FFT power into mel-spaced rows, bottom row first; a
    row narrower than one bin interpolates between its neighbours instead of going empty."""
    import numpy as np

    edges = _mel_to_hz(np.linspace(0, float(mel(nyquist)), rows + 1))
    lo, hi = edges[:-1], edges[1:].copy()
    hi[-1] = nyquist + df  # the last row keeps the Nyquist bin
    freqs = np.arange(nbins) * df
    weights = ((freqs >= lo[:, None]) & (freqs < hi[:, None])).astype(np.float64)
    counts = weights.sum(axis=1)
    weights[counts > 0] /= counts[counts > 0, None]
    empty = np.flatnonzero(counts == 0)
    pos = np.clip((lo[empty] + hi[empty]) / 2 / df, 0, nbins - 1.000001)
    i0 = np.floor(pos).astype(int)
    weights[empty, i0] = 1 - (pos - i0)
    weights[empty, i0 + 1] = pos - i0
    return weights


def _spectrogram(
    x: Any, rate: int, width: int, height: int, silent: bool, ctx: ToolContext
) -> tuple[Any, dict[str, Any]]:
    """Log-power mel spectrogram of mono ``x`` as an RGB array (height, width, 3), low
    frequencies at the bottom. Each pixel column averages the FFT frames of its time span."""
    import numpy as np

    n = len(x)
    nfft = 2 ** round(math.log2(rate * 0.032))  # about 32 ms: 512 at 16 kHz, 2048 at 44.1
    nfft = max(16, min(nfft, 2 ** int(math.log2(n))))
    window = np.hanning(nfft + 1)[:-1]
    scale = (2 / window.sum()) ** 2  # a full-scale sine reads 0 dB
    span = n / width
    per_col = min(MAX_FRAMES_PER_COLUMN, max(1, math.ceil(span / (nfft / 4))))
    padded = np.concatenate([np.zeros(nfft // 2), x, np.zeros(nfft // 2)]).astype(np.float32)
    offsets = np.arange(nfft)
    power = np.empty((nfft // 2 + 1, width))
    block = max(1, 2**22 // (per_col * nfft))
    for c0 in range(0, width, block):
        ctx.check_cancelled()
        ctx.report(c0 / width, "spectrogram")
        cols = np.arange(c0, min(width, c0 + block))
        centres = ((cols[:, None] + (np.arange(per_col) + 0.5) / per_col) * span).astype(int)
        frames = padded[np.minimum(centres.reshape(-1), n - 1)[:, None] + offsets] * window
        spec = np.abs(np.fft.rfft(frames, axis=1)) ** 2 * scale
        power[:, cols] = spec.reshape(len(cols), per_col, -1).mean(axis=1).T
    rows = _mel_rows(nfft // 2 + 1, rate / nfft, rate / 2, height) @ power
    db = 10 * np.log10(rows + 1e-20)[::-1]
    peak = float(db.max())
    level = np.zeros_like(db) if silent else np.clip((db - peak + DB_RANGE) / DB_RANGE, 0, 1)
    rgb = colour_table()[np.round(level * 255).astype(np.uint8)]
    facts = {
        "frequency_scale": "mel",
        "max_hz": rate / 2,
        "fft_size": nfft,
        "db_range": DB_RANGE,
        "peak_db": None if silent else round(peak, 2),
    }
    return rgb, facts


# --- waveform ----------------------------------------------------------------------------


def _lanes(height: int, channels: int) -> list[tuple[int, int]]:
    """One horizontal lane per channel (top, bottom exclusive), 4 px apart."""
    gap = 4 if height >= 8 * channels else 0
    h = (height - gap * (channels - 1)) / channels
    return [(round(c * (h + gap)), round(c * (h + gap) + h)) for c in range(channels)]


def _waveform(data: Any, width: int, height: int) -> Any:
    """Per pixel column, the min..max of the samples (dark) and +-RMS (light), one lane per
    channel, full scale (+-1) filling the lane: quiet audio looks quiet."""
    import numpy as np

    n, channels = data.shape
    starts = (np.arange(width) * n / width).astype(int)
    counts = np.maximum(np.diff(np.append(starts, n)), 1)
    nxt = np.minimum(np.append(starts[1:], n - 1), n - 1)
    out = np.empty((height, width, 3), np.uint8)
    out[:] = BACKGROUND
    for c, (top, bottom) in enumerate(_lanes(height, channels)):
        x = data[:, c]
        # Each column also reaches its neighbour's first sample, so the trace is joined up
        # even when there are fewer samples than columns.
        hi = np.maximum(np.maximum.reduceat(x, starts), x[nxt])
        lo = np.minimum(np.minimum.reduceat(x, starts), x[nxt])
        rms = np.sqrt(np.add.reduceat(np.square(x, dtype=np.float64), starts) / counts)
        mid, half = (top + bottom - 1) / 2, (bottom - top - 1) / 2
        rows = np.arange(top, bottom)[:, None]

        def y(v: Any, mid: float = mid, half: float = half) -> Any:
            return np.round(mid - np.clip(v, -1, 1) * half)

        out[round(mid), :] = CENTRE
        lane = out[top:bottom]
        lane[(rows >= y(hi)) & (rows <= y(lo))] = WAVE
        inner = (rows >= y(np.minimum(rms, hi))) & (rows <= y(np.maximum(-rms, lo)))
        lane[inner] = WAVE_RMS
    return out


audio_to_image = AudioToImage()
