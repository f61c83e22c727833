"""Drawing on images: detection boxes with labels, mask overlays; and the model-free tools
built on them (draw_boxes, blur_outside_mask, rotate_image). Text and layout tools are in
``tools.image_layout``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tools.artifact import Artifact, Modality
from tools.base import (
    ImageInput,
    Tool,
    ToolContext,
    ToolResult,
    artifact_input,
    text_input,
)
from tools.errors import ToolError
from tools.image_io import check_output_size, open_image
from tools.image_ops import save_image

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


def default_font(size: int) -> Any:
    """PIL's built-in font at ``size`` pixels (no system fonts needed)."""
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
    font = default_font(max(10, max(out.size) // 40))
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


# --- shared helpers of the tools below ---------------------------------------------------------


def parse_color(value: str, what: str = "colour") -> tuple[int, int, int]:
    """An RGB tuple from a colour name or ``#rrggbb``; a ToolError for an unknown colour."""
    from PIL import ImageColor

    try:
        rgb = ImageColor.getrgb(value.strip())
    except (ValueError, AttributeError):
        raise ToolError(
            f"unknown {what} {value!r}; use a colour name (red, white, navy) or #rrggbb"
        ) from None
    return rgb[0], rgb[1], rgb[2]


def working_copy(img: Any) -> Any:
    """RGB, or RGBA when the image has transparency, so drawing and compositing just work."""
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    return img.convert("RGBA" if has_alpha else "RGB")


# --- draw_boxes --------------------------------------------------------------------------------


def _lists_to_json(value: Any) -> Any:
    """Let Python callers pass detections as data; plans pass JSON text or a reference."""
    return json.dumps(value) if isinstance(value, list | dict) else value


if TYPE_CHECKING:  # mypy sees the values the slots hand the tool
    DetectionsText = str
    MaskInput = Artifact
else:
    DetectionsText = Annotated[
        text_input("the boxes, as detect_objects writes them: JSON [{label, box, score}]"),
        BeforeValidator(_lists_to_json),
    ]
    MaskInput = artifact_input(Modality.IMAGE, description="white where to keep the image as is")


_DETECTION_KEYS = ("detections", "objects", "boxes", "results")


def parse_detections(text: str) -> tuple[list[dict[str, Any]], tuple[float, float] | None]:
    """Detections from JSON text: a list of ``{label, box: [x0, y0, x1, y1], score?}``, or an
    object holding such a list (``{"detections": [...], "width": W, "height": H}``, as
    detect_objects writes it), and the image size the boxes refer to when the text says.
    Raises ToolError when malformed."""
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1).strip()
    if not body:
        raise ToolError("detections is empty; pass the output of detect_objects ('$s1')")
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ToolError(
            f"detections is not JSON ({exc.msg} at line {exc.lineno}); pass the output of "
            'detect_objects, or a list like [{"label": "dog", "box": [10, 20, 200, 180]}]'
        ) from None
    frame = None
    if isinstance(data, dict):
        w, h = data.get("width"), data.get("height")
        if isinstance(w, int | float) and isinstance(h, int | float) and w > 0 and h > 0:
            frame = (float(w), float(h))
        lists = [v for k, v in data.items() if k in _DETECTION_KEYS and isinstance(v, list)]
        data = lists[0] if lists else [data] if "box" in data or "bbox" in data else None
    if not isinstance(data, list):
        raise ToolError("detections must be a list of {label, box: [x0, y0, x1, y1], score}")
    found = []
    for i, det in enumerate(data, 1):
        if not isinstance(det, dict):
            raise ToolError(f"detection {i} is {det!r}; expected {{label, box, score}}")
        box = det.get("box", det.get("bbox"))
        if not (
            isinstance(box, list | tuple)
            and len(box) == 4
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
        ):
            raise ToolError(
                f"detection {i} has box {box!r}; a box is four numbers [x0, y0, x1, y1] in pixels"
            )
        x0, y0, x1, y1 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x1 < x0 or y1 < y0:
            raise ToolError(
                f"detection {i} has box {list(box)}; it needs x1 >= x0 and y1 >= y0 "
                "([left, top, right, bottom] in pixels)"
            )
        score = det.get("score")
        if score is not None and not isinstance(score, int | float):
            raise ToolError(f"detection {i} has score {score!r}; a score is a number")
        found.append({"label": str(det.get("label", "")), "box": [x0, y0, x1, y1], "score": score})
    return found, frame


class DrawBoxesArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    detections: DetectionsText
    color: str | None = Field(
        None, description="one colour for every box (name or #rrggbb); default: one per label"
    )
    line_width: int | None = Field(
        None, ge=1, le=50, description="box line width in pixels (default: scaled to the image)"
    )


class DrawBoxes(Tool):
    name = "draw_boxes"
    description = "Draw labelled boxes (the output of detect_objects) onto an image."
    inputs = DrawBoxesArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: DrawBoxesArgs, ctx: ToolContext) -> ToolResult:
        color = parse_color(args.color) if args.color else None
        detections, frame = parse_detections(args.detections)
        img = open_image(args.image, ctx.settings)
        w, h = img.size
        sx, sy = (w / frame[0], h / frame[1]) if frame else (1.0, 1.0)
        kept, outside = [], 0
        for det in detections:
            x0, y0, x1, y1 = (v * s for v, s in zip(det["box"], (sx, sy, sx, sy), strict=True))
            box = [min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)]
            box += [min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)]
            if x0 >= w or y0 >= h or x1 < 0 or y1 < 0:
                outside += 1  # nothing of it is in the picture
                continue
            kept.append({**det, "box": box})
        out = draw_detections(img, kept, color=color, line_width=args.line_width)
        if "A" in img.getbands():
            out.putalpha(img.getchannel("A"))
        art = save_image(ctx, out, args.image, "boxes", boxes=len(kept))
        labels = sorted({d["label"] for d in kept if d["label"]})
        note = f"; {outside} box(es) lay outside the {w}x{h} image" if outside else ""
        if frame and (sx, sy) != (1.0, 1.0):
            note += f"; boxes scaled from {frame[0]:g}x{frame[1]:g} to {w}x{h}"
        return ToolResult(
            artifacts=[art],
            data={"boxes": len(kept), "outside": outside, "labels": labels, "size": [w, h]},
            summary=f"drew {len(kept)} box(es) on {args.image.label()}"
            + (f" ({', '.join(labels[:6])})" if labels else "")
            + note,
        )


# --- blur_outside_mask -------------------------------------------------------------------------


class BlurOutsideArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    mask: MaskInput
    radius: int = Field(25, ge=1, le=200, description="blur radius in pixels")
    effect: Literal["blur", "grayscale"] = Field(
        "blur",
        description="blur the rest (background blur), or make the rest grey (colour pop)",
    )


class BlurOutsideMask(Tool):
    name = "blur_outside_mask"
    description = (
        "Blur everything outside a mask (a portrait-style background blur, or hiding a "
        "background), or turn it grey (effect='grayscale': a colour pop)."
    )
    inputs = BlurOutsideArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: BlurOutsideArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image, ImageFilter

        img = working_copy(open_image(args.image, ctx.settings))
        mask = open_image(args.mask, ctx.settings).convert("L")
        notes = []
        if mask.size != img.size:
            notes.append(
                f"the mask ({mask.width}x{mask.height}) was resized to the image "
                f"({img.width}x{img.height})"
            )
            mask = mask.resize(img.size, Image.Resampling.BILINEAR)
        lo, hi = mask.getextrema()
        if hi < 128:
            raise ToolError(
                f"the mask {args.mask.label()} is all black, so nothing would be kept; white "
                "marks what to keep (make one with segment_image, e.g. 'the person')"
            )
        if lo >= 128:
            notes.append("the mask is all white, so almost nothing changed")
        if args.effect == "blur":
            rest = img.filter(ImageFilter.GaussianBlur(args.radius))
        else:
            rest = img.convert("L").convert(img.mode)
            if img.mode == "RGBA":
                rest.putalpha(img.getchannel("A"))
        out = Image.composite(img, rest, mask)
        art = save_image(ctx, out, args.image, args.effect, mask=args.mask.id)
        kept = sum(n for v, n in enumerate(mask.histogram()) if v >= 128) / (img.width * img.height)
        what = f"blurred (radius {args.radius})" if args.effect == "blur" else "turned grey"
        return ToolResult(
            artifacts=[art],
            data={"width": img.width, "height": img.height, "kept_fraction": round(kept, 4)}
            | ({"notes": notes} if notes else {}),
            summary=f"{what} {args.image.label()} outside the mask ({kept:.0%} kept)"
            + "".join(f"; {n}" for n in notes),
        )


# --- rotate_image ------------------------------------------------------------------------------


class RotateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    degrees: float = Field(0.0, ge=-360, le=360, description="clockwise rotation in degrees")
    flip: Literal["none", "horizontal", "vertical"] = Field(
        "none", description="mirror the image as well (after rotating)"
    )
    expand: bool = Field(True, description="grow the canvas so nothing is cut off")
    background: str = Field(
        "white", description="colour of the uncovered corners, or 'transparent' (PNG)"
    )


_RIGHT_ANGLES = {90: "ROTATE_270", 180: "ROTATE_180", 270: "ROTATE_90"}
"""Clockwise right angles as PIL transposes (PIL turns counter-clockwise)."""


class RotateImage(Tool):
    name = "rotate_image"
    description = "Rotate an image clockwise by a number of degrees, or flip (mirror) it."
    inputs = RotateArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: RotateArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image, ImageOps

        degrees = args.degrees % 360
        if abs(degrees - round(degrees / 90) * 90) < 1e-6:  # snap to a lossless right angle
            degrees = round(degrees / 90) * 90 % 360
        if degrees == 0 and args.flip == "none":
            raise ToolError(
                "nothing to do: give degrees (e.g. 90 to turn it clockwise) or flip "
                "('horizontal' or 'vertical')"
            )
        transparent = args.background.strip().lower() == "transparent"
        fill = None if transparent else parse_color(args.background, "background colour")
        src = open_image(args.image, ctx.settings)
        img = ImageOps.exif_transpose(src)  # turn what the user sees, not the raw pixels
        exif_turned = src.getexif().get(0x0112, 1) not in (1, None)
        w, h = img.size
        lossless = degrees in _RIGHT_ANGLES and (args.expand or degrees == 180 or w == h)
        if degrees == 0:
            out = img
        elif lossless:
            out = img.transpose(getattr(Image.Transpose, _RIGHT_ANGLES[int(degrees)]))
        else:
            img = img.convert("RGBA") if transparent else working_copy(img)
            color = (0, 0, 0, 0) if fill is None else fill + ((255,) if img.mode == "RGBA" else ())
            rad = math.radians(degrees)
            if args.expand:
                nw = math.ceil(abs(w * math.cos(rad)) + abs(h * math.sin(rad)))
                nh = math.ceil(abs(w * math.sin(rad)) + abs(h * math.cos(rad)))
                check_output_size(nw, nh, ctx.settings)
            out = img.rotate(
                -degrees,
                resample=Image.Resampling.BICUBIC,
                expand=args.expand,
                fillcolor=color,
            )
        if args.flip == "horizontal":
            out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif args.flip == "vertical":
            out = out.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
        fmt = "png" if transparent and not lossless and degrees else None
        suffix = "rot" + f"{degrees:g}".replace(".", "_") if degrees else f"flip-{args.flip}"
        art = save_image(ctx, out, args.image, suffix, fmt=fmt, degrees=degrees, flip=args.flip)
        done = [f"rotated {degrees:g} degrees clockwise"] if degrees else []
        done += [f"flipped {args.flip}ly"] if args.flip != "none" else []
        return ToolResult(
            artifacts=[art],
            data={
                "width": out.width,
                "height": out.height,
                "lossless": degrees == 0 or lossless,
                "exif_orientation_applied": exif_turned,
            },
            summary=f"{' and '.join(done)} {args.image.label()}: {w}x{h} -> "
            f"{out.width}x{out.height}",
        )


draw_boxes = DrawBoxes()
blur_outside_mask = BlurOutsideMask()
rotate_image = RotateImage()
