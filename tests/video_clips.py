"""Synthetic video clips for tests, written through the same encoder the tools use.

Each frame is a flat colour with a white square that moves left to right, so frames differ
from one another, and ``scenes`` switches the colour abruptly (a cut) at even intervals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.ffmpeg import encode_frames
from tools.settings import ToolSettings

COLOURS: list[tuple[int, ...]] = [
    (200, 30, 30),
    (30, 160, 40),
    (40, 60, 200),
    (220, 200, 40),
    (150, 40, 160),
]


def frame(index: int, total: int, size: tuple[int, int], colour: tuple[int, ...]) -> np.ndarray:
    """One RGB frame: ``colour`` with a white square at a position set by ``index``."""
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = colour
    side = max(2, min(w, h) // 4)
    x = int((w - side) * index / max(1, total - 1))
    y = (h - side) // 2
    img[y : y + side, x : x + side] = 255
    return img


def tone(path: Path, seconds: float, rate: int = 16_000, freq: float = 440.0) -> Path:
    """A sine tone as a WAV file."""
    import soundfile as sf

    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


def make_clip(
    path: Path,
    seconds: float = 2.0,
    fps: float = 10.0,
    size: tuple[int, int] = (96, 64),
    *,
    audio: bool = True,
    scenes: int = 1,
) -> Path:
    """An H.264 MP4 of ``seconds`` at ``fps`` and ``size`` (even sides), with a 440 Hz
    soundtrack when ``audio``, and ``scenes`` flat-colour scenes cut one after another."""
    total = round(seconds * fps)
    per_scene = max(1, -(-total // scenes))
    frames = (frame(i, total, size, COLOURS[(i // per_scene) % len(COLOURS)]) for i in range(total))
    wav = tone(path.with_suffix(".wav"), seconds) if audio else None
    encode_frames(frames, path, fps, ToolSettings(), audio=wav)
    if wav is not None:
        wav.unlink()
    return path


def make_vfr_clip(path: Path, settings: ToolSettings | None = None) -> Path:
    """A 3 s variable-frame-rate clip: 10 frames/s for 1.5 s, then 30 frames/s (60 frames)."""
    from tools.ffmpeg import run_ffmpeg

    steady = make_clip(path.with_name(path.stem + "-cfr.mp4"), 3.0, 30.0, audio=False)
    keep = "select='gte(n\\,45)+not(mod(n\\,3))'"
    args = ["-i", str(steady), "-vf", keep, "-fps_mode", "vfr", "-an", str(path)]
    run_ffmpeg(args, "making a VFR clip", settings or ToolSettings())
    steady.unlink()
    return path
