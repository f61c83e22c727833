"""The work behind the inline artifact widgets (``tui/artifacts.py``), kept out of the widgets
so it runs in thread workers and is tested alone: header facts, waveform strips, video posters
and frame strips, mesh previews, text heads, and which image widget and how many cells.

Much here is slow (decoding, rendering) or fails on a broken file; the widgets call it from
thread workers and show a failure as "cannot show: ...".

``textual_image.widget`` is imported at import time on purpose: it asks the terminal which
graphics it supports, which is impossible once Textual owns the terminal, so the app imports
these modules before it runs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from textual_image import widget as image_widgets

from tools.artifact import Artifact, ArtifactStore
from tools.errors import ToolError
from tools.settings import ToolSettings

if TYPE_CHECKING:
    from PIL import Image
    from textual.widget import Widget

    from tools.video_io import VideoInfo

BLOCKS = "▁▂▃▄▅▆▇█"
"""Waveform levels, quietest first: silence draws as a flat line of the first."""
ENVELOPE_BUCKETS = 1024
"""Peaks kept per audio clip; the strip regroups them to whatever width it is drawn at."""
PLAY_MAX_SECONDS = 900.0
"""Audio up to this long is decoded whole and playable inline; longer, only its waveform is
read (in blocks) and o opens it in the system's player."""
POSTER_AT = 0.1
"""The poster frame is taken this far into a video (a first frame is often black)."""
MAX_IMAGE_SIDE = 1024
"""Images are scaled down to this before display: a terminal never shows more pixels."""
TEXT_CHARS = 4000
"""Characters of a text artifact shown inline; the whole file is a keypress (o) away."""
TEXT_COLLAPSE_LINES = 12
"""Text longer than this many lines starts collapsed."""


def tool_settings(config: Any) -> ToolSettings:
    """The tools' limits from the assistant's ``Config`` (defaults without one)."""
    tools = getattr(config, "tools", None)
    return tools if isinstance(tools, ToolSettings) else ToolSettings()


def image_class(config: Any) -> type[Widget] | None:
    """The textual-image widget for ``Config.tui.images``: "auto" lets textual-image pick
    (Sixel, Kitty's graphics protocol, half-cells; Unicode when not on a terminal); "none" is
    None (headers only)."""
    mode = str(getattr(getattr(config, "tui", None), "images", "auto"))
    classes: dict[str, type[Widget] | None] = {
        "kitty": image_widgets.TGPImage,
        "sixel": image_widgets.SixelImage,
        "halfcell": image_widgets.HalfcellImage,
        "none": None,
    }
    return classes.get(mode, image_widgets.Image)


def human_size(n: float) -> str:
    """Bytes as a short human figure: 2.3 MB."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop always returns


def human_duration(seconds: float) -> str:
    """Seconds as 4.2 s, or 3:07 / 1:02:03 past a minute."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def header_facts(meta: dict[str, Any]) -> list[str]:
    """The key facts of an artifact's metadata, in the order a header shows them."""
    out: list[str] = []
    if meta.get("width") and meta.get("height"):
        out.append(f"{meta['width']}x{meta['height']}")
    if isinstance(meta.get("duration"), (int, float)):
        out.append(human_duration(float(meta["duration"])))
    if meta.get("fps"):
        out.append(f"{float(meta['fps']):g} fps")
    if meta.get("sample_rate"):
        out.append(f"{int(meta['sample_rate']) / 1000:g} kHz")
    channels = meta.get("channels")
    if channels:
        out.append({1: "mono", 2: "stereo"}.get(int(channels), f"{channels} ch"))
    if meta.get("faces") is not None:
        out.append(f"{int(meta['faces']):,} faces")
    if meta.get("watertight") is not None:
        out.append("watertight" if meta["watertight"] else "not watertight")
    if meta.get("chars") is not None:
        out.append(f"{int(meta['chars']):,} chars")
    if isinstance(meta.get("size"), int):
        out.append(human_size(meta["size"]))
    if meta.get("procedural"):
        out.append("procedural")
    return out


def reason(exc: BaseException) -> str:
    """What a widget says after "cannot show:": a tool's own message, else the error's type."""
    if isinstance(exc, ToolError):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- audio --------------------------------------------------------------------------------------


def envelope(samples: Any, buckets: int = ENVELOPE_BUCKETS) -> np.ndarray:
    """Peak absolute amplitude (0..1) of ``buckets`` equal slices of ``samples`` (frames,) or
    (frames, channels), the loudest channel winning."""
    data = np.abs(np.asarray(samples, dtype=np.float32))
    mono = data.max(axis=1) if data.ndim == 2 else data
    if len(mono) == 0:
        return np.zeros(0, np.float32)
    n = min(buckets, len(mono))
    edges = np.linspace(0, len(mono), n + 1).astype(int)[:-1]
    return np.clip(np.maximum.reduceat(mono, edges), 0.0, 1.0)


def waveform_strip(peaks: np.ndarray, width: int) -> str:
    """``peaks`` drawn as ``width`` block characters; a square-root scale keeps quiet passages
    visible while silence stays on the bottom line."""
    if width <= 0 or len(peaks) == 0:
        return ""
    if len(peaks) >= width:
        edges = np.linspace(0, len(peaks), width + 1).astype(int)[:-1]
        values = np.maximum.reduceat(peaks, edges)
    else:
        values = peaks[np.linspace(0, len(peaks) - 1, width).round().astype(int)]
    levels = np.rint(np.sqrt(np.clip(values, 0.0, 1.0)) * (len(BLOCKS) - 1)).astype(int)
    return "".join(BLOCKS[i] for i in levels)


@dataclass
class DecodedAudio:
    """An audio artifact read for the widget: peaks to draw, and samples to play unless it is
    longer than ``PLAY_MAX_SECONDS`` (then only its peaks were kept)."""

    samples: np.ndarray | None
    rate: int
    peaks: np.ndarray
    duration: float
    channels: int


def decode_for_display(art: Artifact, settings: ToolSettings) -> DecodedAudio:
    """Decode ``art`` (soundfile, else ffmpeg) and take its envelope; a long file soundfile
    reads is streamed in blocks, so an hour of audio never sits in memory."""
    from tools.audio_io import audio_facts, decode_audio

    facts = audio_facts(art)
    if facts.get("duration", 0.0) > PLAY_MAX_SECONDS:
        return _stream_envelope(art, settings)
    samples, rate = decode_audio(art, settings)
    return DecodedAudio(samples, rate, envelope(samples), len(samples) / rate, samples.shape[1])


def _stream_envelope(art: Artifact, settings: ToolSettings) -> DecodedAudio:
    import soundfile as sf

    info = sf.info(art.path)
    if info.frames / info.samplerate > settings.max_audio_seconds:
        raise ToolError(
            f"{art.label()} lasts {info.frames / info.samplerate / 3600:.1f} hours, over "
            "tools.max_audio_seconds"
        )
    block = max(1, -(-info.frames // ENVELOPE_BUCKETS))
    peaks = [
        float(np.abs(chunk).max()) if len(chunk) else 0.0
        for chunk in sf.blocks(art.path, blocksize=block, dtype="float32", always_2d=True)
    ]
    if not peaks:
        raise ToolError(f"{art.label()} holds no audio samples (truncated or empty)")
    duration = info.frames / info.samplerate
    return DecodedAudio(None, info.samplerate, np.clip(peaks, 0, 1), duration, info.channels)


def output_device() -> Any | None:
    """The ``sounddevice`` module when it is installed and reports an output device, else None
    (no speaker, a headless box, or no PortAudio)."""
    try:
        import sounddevice as sd  # type: ignore[import-not-found, unused-ignore]

        sd.query_devices(kind="output")
    except Exception:  # ImportError, OSError without PortAudio, PortAudioError without device
        return None
    return sd


# --- images -------------------------------------------------------------------------------------


def load_image(path: str | Path) -> Image.Image:
    """Decode an image fully (so a truncated file fails here, not while drawing) and scale it
    down to ``MAX_IMAGE_SIDE``; the first frame of an animation. ``info["source_size"]`` keeps
    the size before scaling."""
    from PIL import Image

    with Image.open(path) as src:
        src.load()
        img = src.convert("RGBA" if "A" in src.getbands() else "RGB")
    img.info["source_size"] = img.size
    img.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
    return img


def fit_cells(
    pixels: tuple[int, int], cell: tuple[int, int], max_cols: int, max_rows: int, min_rows: int = 6
) -> tuple[int, int]:
    """Columns and rows for an image of ``pixels`` (w, h) in cells of ``cell`` (w, h) px: its
    own size, grown to ``min_rows`` when tiny, shrunk to fit ``max_cols`` x ``max_rows``."""
    w, h = max(1, pixels[0]), max(1, pixels[1])
    cols, rows = w / cell[0], h / cell[1]
    scale = max(1.0, min_rows / rows)
    scale = min(scale, max_cols / cols, max_rows / rows)
    return max(1, round(cols * scale)), max(1, round(rows * scale))


# --- video --------------------------------------------------------------------------------------


@dataclass
class VideoFrames:
    """A video's poster, the frames its widget plays, and those frames as one strip image."""

    info: VideoInfo
    poster: Image.Image
    frames: list[Image.Image]
    strip: Image.Image


def frame_strip(frames: list[Image.Image], height: int = 72, gap: int = 2) -> Image.Image:
    """``frames`` scaled to ``height`` px and laid side by side on one image, a gap between."""
    from PIL import Image

    thumbs = [f.resize((max(1, round(f.width * height / f.height)), height)) for f in frames]
    width = sum(t.width for t in thumbs) + gap * (len(thumbs) - 1)
    sheet = Image.new("RGB", (max(1, width), height), (0, 0, 0))
    x = 0
    for t in thumbs:
        sheet.paste(t.convert("RGB"), (x, 0))
        x += t.width + gap
    return sheet


def video_frames(
    art: Artifact, settings: ToolSettings, count: int = 6, max_side: int = 480
) -> VideoFrames:
    """Probe ``art`` and decode its poster (at 10% of its length) and ``count`` evenly spaced
    frames, seeking rather than decoding the whole file."""
    from PIL import Image

    from tools.video_io import probe, seek_frames

    info = probe(art, settings)
    length = max(info.duration, 0.0)
    poster_t = POSTER_AT * length
    times = [length * (i + 0.5) / count for i in range(count)]
    order = sorted([poster_t, *times])
    got = seek_frames(art.path, order, max_side=max_side, label=art.label())
    if len(got) != len(order):
        raise ToolError(f"{art.label()} has no decodable frames")
    images = [Image.fromarray(rgb) for _, rgb in got]
    poster = images.pop(order.index(poster_t))
    return VideoFrames(info, poster, images, frame_strip(images))


# --- meshes -------------------------------------------------------------------------------------


def stored_preview(art: Artifact) -> Path | None:
    """The preview image ``art.metadata["preview"]`` names, looked up in the store the mesh
    lives in (``<root>/<id[:2]>/<id><ext>``); None when there is none."""
    preview_id = art.metadata.get("preview")
    if not isinstance(preview_id, str):
        return None
    return ArtifactStore(Path(art.path).parent.parent).get(preview_id)


def preview_cache(art: Artifact) -> Path:
    """Where a preview rendered for ``art`` is kept: by content id, so any session reuses it."""
    from assistant import paths

    return paths.cache_dir() / "tui-previews" / f"{art.id}.png"


def render_preview(art: Artifact, settings: ToolSettings, views: int = 4, size: int = 256) -> Path:
    """Render ``views`` views of the mesh as one grid PNG, cached by ``preview_cache``."""
    target = preview_cache(art)
    if target.is_file():
        return target
    from tools.mesh_io import load_mesh
    from tools.mesh_render import grid, render_views, renderable

    shown, _ = renderable(load_mesh(art, settings).mesh, settings)
    sheet = grid(render_views(shown, views, size))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            sheet.save(fh, format="PNG")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --- text ---------------------------------------------------------------------------------------


def text_view(art: Artifact, limit: int = TEXT_CHARS) -> tuple[str, str, bool]:
    """A text artifact as (Markdown of its first ``limit`` characters, a title, whether it
    starts collapsed); JSON is shown as a code block. Raises ``OSError`` when unreadable."""
    with open(art.path, encoding="utf-8", errors="replace") as fh:
        text = fh.read(limit + 1)
    more = len(text) > limit
    text = text[:limit]
    lines = text.count("\n") + 1
    body = f"```json\n{text}\n```" if art.mime == "application/json" else text
    if more:
        body += "\n\n*… (o opens the whole text)*"
    title = f"{lines} lines" + (f", first {limit:,} characters" if more else "")
    return body, title, more or lines > TEXT_COLLAPSE_LINES
