"""Drawing on images: detection boxes with labels, mask overlays; and the model-free drawing
tools built on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PALETTE = [
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
]
"""Distinct colours, one per label in order of first appearance."""


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def draw_detections(
    img: Any,
    detections: Sequence[dict[str, Any]],
    color: tuple[int, int, int] | None = None,
    line_width: int | None = None,
) -> Any:
    """A copy of ``img`` (RGB) with each detection's box and "label score" drawn on it.

    Args:
        img: A PIL image.
        detections: Dicts with ``box`` ``[x0, y0, x1, y1]`` in pixels, and optionally ``label``
            and ``score``.
        color: One colour for every box; unset, one colour per label.
        line_width: Box outline width; unset, about 1/200 of the image's longer side.
    """
    from PIL import ImageDraw

    out = img.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = line_width or max(2, max(out.size) // 200)
    font = _font(max(10, max(out.size) // 40))
    colors: dict[str, tuple[int, int, int]] = {}
    for det in detections:
        x0, y0, x1, y1 = (float(v) for v in det["box"])
        label = str(det.get("label", ""))
        c = color or colors.setdefault(label, PALETTE[len(colors) % len(PALETTE)])
        draw.rectangle([x0, y0, x1, y1], outline=c, width=width)
        text = label + (f" {det['score']:.2f}" if det.get("score") is not None else "")
        if text.strip():
            left, top, right, bottom = draw.textbbox((x0, y0), text, font=font)
            ty = y0 - (bottom - top) - 2 if y0 - (bottom - top) - 2 >= 0 else y0
            draw.rectangle([x0, ty, x0 + (right - left) + 4, ty + (bottom - top) + 2], fill=c)
            draw.text((x0 + 2, ty - (top - y0)), text, fill=(0, 0, 0), font=font)
    return out


def overlay_masks(img: Any, masks: Sequence[Any], alpha: float = 0.45) -> Any:
    """A copy of ``img`` (RGB) with each mask (a mode "L" or "1" PIL image of the same size)
    tinted in its own colour."""
    from PIL import Image

    out = img.convert("RGB")
    for i, mask in enumerate(masks):
        tint = Image.new("RGB", out.size, PALETTE[i % len(PALETTE)])
        m = mask.convert("L").point(lambda v: int(v * alpha) if v else 0)
        out = Image.composite(tint, out, m)
    return out
