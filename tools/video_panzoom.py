"""The pan-and-zoom fallback of animate_image: a camera moving over a still image, as the words
of ``motion`` say (zoom in or out, pan left, right, up or down, slowly or fast).

It is not a generated video (nothing in the picture moves) and is labelled as such wherever it
shows; animate_image makes one only when no image-to-video model is installed and
``tools.video.pan_zoom_fallback`` allows it, since moving a camera over a photo is an honest,
common way to put a still in a video.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tools.video_pipes import fill_size

PAN_ZOOM_LABEL = "pan-and-zoom over the still image (no image-to-video model installed)"
CALM = ("slow", "gentle", "subtle", "slight", "calm", "soft", "little", "still")
"""Word stems asking for little or slow motion."""
WILD = ("fast", "quick", "rapid", "strong", "dramatic", "wild", "intense", "lots", "big")
"""Word stems asking for much or fast motion."""


@dataclass(frozen=True)
class CameraMove:
    """A camera move over a still: the crop box's size at the start and the end (a fraction
    of the largest box of the frame's shape: shrinking zooms in) and the direction the camera
    travels (dx: -1 left .. 1 right; dy: -1 up .. 1 down)."""

    start: float
    end: float
    dx: float
    dy: float
    words: str


def said(words: set[str], stems: tuple[str, ...]) -> bool:
    """Whether any of ``words`` starts with one of ``stems`` ("slowly" says "slow")."""
    return any(w.startswith(stem) for w in words for stem in stems)


def camera_move(motion: str) -> tuple[CameraMove, list[str]]:
    """Read a camera move from ``motion`` (zoom in/out, pan left/right/up/down, slow/fast);
    a slow zoom in when it names none."""
    text = " ".join(re.findall(r"[a-z]+", motion.lower()))
    words = set(text.split())
    speed = 0.5 if said(words, CALM) else 1.6 if said(words, WILD) else 1.0
    dx = -1.0 if "left" in words else 1.0 if "right" in words else 0.0
    dy = -1.0 if words & {"up", "upward", "upwards"} else 1.0 if "down" in words else 0.0
    zoom_out = bool(re.search(r"\b(zoom(ing)? out|pull(ing)? (back|out)|dolly out|wider)\b", text))
    zoom_in = bool(re.search(r"\b(zoom|push(ing)? in|dolly in|closer|close up)", text))
    notes = []
    if not (zoom_out or zoom_in or dx or dy):
        speed, zoom_in = 0.5, True
        if motion.strip():
            notes.append(f"a pan-and-zoom cannot show {motion.strip()!r}; it is a slow zoom in")
    room = 1 / (1 + 0.3 * speed)
    if zoom_out:
        start, end, zoom = room, 1.0, "zoom out"
    elif zoom_in:
        start, end, zoom = 1.0, room, "zoom in"
    else:
        start, end, zoom = room, room, ""  # a pan needs room to travel
    pace = "slow " if speed < 1 else "fast " if speed > 1 else ""
    pans = (("left", -dx), ("right", dx), ("up", -dy), ("down", dy))
    parts = ([zoom] if zoom else []) + [f"pan {d}" for d, v in pans if v > 0]
    return CameraMove(start, end, dx, dy, pace + " and ".join(parts)), notes


def plan_pan_zoom(
    img_size: tuple[int, int],
    motion: str,
    asked: tuple[int | None, int | None],
    max_side: int,
) -> tuple[CameraMove, tuple[int, int], list[str]]:
    """The camera move ``motion`` asks for, the clip's size (as asked, a missing side from the
    image's shape, else the image's own size; within ``max_side``, even for H.264) and notes
    on what the words could not get."""
    from tools.ffmpeg import even

    move, notes = camera_move(motion)
    w, h = fill_size(asked, img_size[0] / img_size[1], img_size)
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = round(w * scale), round(h * scale)
    return move, (even(w), even(h)), notes


def pan_zoom_frames(img: Any, move: CameraMove, size: tuple[int, int], count: int) -> Iterator[Any]:
    """``count`` frames of ``size`` moving the camera over ``img``: float crop boxes (scaled
    geometrically, so the zoom keeps a steady pace) resampled with Lanczos, so the motion is
    smooth at any speed."""
    from PIL import Image

    aspect = size[0] / size[1]
    shrink = min(img.width, img.height * aspect) / (2 * size[0])
    if shrink > 1:  # keep twice the frame's detail, no more: a big photo resamples slowly
        img = img.resize(
            (round(img.width / shrink), round(img.height / shrink)), Image.Resampling.LANCZOS
        )
    iw, ih = img.size
    bw = min(iw, ih * aspect)
    bh = bw / aspect
    for i in range(count):
        u = i / max(1, count - 1)
        scale = move.start * (move.end / move.start) ** u
        w, h = bw * scale, bh * scale
        cx = iw / 2 + move.dx * (2 * u - 1) * (iw - w) / 2
        cy = ih / 2 + move.dy * (2 * u - 1) * (ih - h) / 2
        box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        yield img.resize(size, Image.Resampling.LANCZOS, box=box)
