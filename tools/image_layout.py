"""Text and layout on images: add_text_to_image (titles, captions, watermarks) and
contact_sheet (many images as labelled thumbnails)."""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Modality
from tools.base import ImageInput, Tool, ToolContext, ToolResult, text_input
from tools.errors import ToolError
from tools.image_draw import default_font, parse_color, working_copy
from tools.image_io import check_output_size, open_image
from tools.image_ops import save_image

if TYPE_CHECKING:  # mypy sees the value the slot hands the tool
    Words = str
else:
    Words = text_input("the words to write")


@cache
def _bold_font_path() -> str | None:
    """A bold TrueType font with wide script coverage, if the system has one."""
    from PIL import ImageFont

    for name in ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "Arial Bold.ttf"):
        try:
            return str(ImageFont.truetype(name, 12).path)
        except OSError:
            continue
    return None


def _text_font(size: int) -> Any:
    from PIL import ImageFont

    path = _bold_font_path()
    return ImageFont.truetype(path, size) if path else default_font(size)


# --- add_text_to_image -------------------------------------------------------------------------

Position = Literal[
    "top", "center", "bottom", "top-left", "top-right", "bottom-left", "bottom-right"
]
MAX_TEXT_CHARS = 2000


class AddTextArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    text: Words
    position: Position = Field("bottom", description="where to put the text")
    size: int | None = Field(
        None, ge=8, le=512, description="font size in pixels (default: scaled to the image)"
    )
    color: str = Field("white", description="text colour (name or #rrggbb)")
    band: bool = Field(
        False, description="put a band behind the text instead of outlining the letters"
    )


def wrap_text(text: str, font: Any, max_width: float) -> list[str]:
    """Greedy word wrap to ``max_width`` pixels; words longer than a line are split."""
    lines: list[str] = []
    for para in text.splitlines():
        line = ""
        for word in para.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and font.getlength(word) > max_width:
                cut = 1
                while cut < len(word) and font.getlength(word[: cut + 1]) <= max_width:
                    cut += 1
                lines.append(word[:cut])
                word = word[cut:]
            line = word
        lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines


class AddTextToImage(Tool):
    name = "add_text_to_image"
    description = (
        "Write text onto an image (a title, a caption, a meme line, a watermark); long text "
        "wraps to the image width."
    )
    inputs = AddTextArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: AddTextArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image, ImageDraw

        text = args.text.strip()
        if not text:
            raise ToolError("the text to write is empty; give the words to put on the image")
        if len(text) > MAX_TEXT_CHARS:
            raise ToolError(
                f"the text has {len(text)} characters; the limit is {MAX_TEXT_CHARS}. "
                "Summarise it first (summarize_text)"
            )
        fill = parse_color(args.color, "text colour")
        img = working_copy(open_image(args.image, ctx.settings))
        w, h = img.size
        margin = max(2, round(min(w, h) * 0.03))
        size = args.size or max(12, round(min(w, h) * 0.08))
        asked = size
        draw = ImageDraw.Draw(img)
        align = {"left": "left", "right": "right"}.get(args.position.split("-")[-1], "center")
        while True:
            font = _text_font(size)
            stroke = 0 if args.band else max(1, round(size / 14))
            lines = wrap_text(text, font, w - 2 * margin - 2 * stroke)
            block = "\n".join(lines)
            spacing = max(2, size // 6)
            left, top, right, bottom = draw.multiline_textbbox(
                (0, 0), block, font=font, spacing=spacing, align=align, stroke_width=stroke
            )
            if bottom - top <= h - 2 * margin and right - left <= w - 2 * margin:
                break
            if size <= 8:
                raise ToolError(
                    f"the text ({len(text)} characters) does not fit on a {w}x{h} image even at "
                    "8 px; shorten it, or enlarge the image first (resize_image)"
                )
            size = max(8, int(size * 0.85))
        bw, bh = right - left, bottom - top
        x = margin if align == "left" else w - margin - bw if align == "right" else (w - bw) / 2
        vertical = args.position.split("-")[0]
        y = {"top": margin, "bottom": h - margin - bh}.get(vertical, (h - bh) / 2)
        light = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] > 128
        if args.band:  # a dark band behind light text, a light one behind dark text
            pad = max(4, size // 4)
            overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
            x0, x1 = (0, w) if align == "center" else (x - pad, x + bw + pad)
            ImageDraw.Draw(overlay).rectangle(
                [x0, max(0, y - pad), x1, min(h, y + bh + pad)],
                fill=(0, 0, 0, 150) if light else (255, 255, 255, 170),
            )
            img = Image.alpha_composite(img.convert("RGBA"), overlay).convert(img.mode)
            draw = ImageDraw.Draw(img)
        draw.multiline_text(
            (x - left, y - top),
            block,
            font=font,
            fill=fill,
            spacing=spacing,
            align=align,
            stroke_width=stroke,
            stroke_fill=(0, 0, 0) if light else (255, 255, 255),
        )
        art = save_image(ctx, img, args.image, "text", text=text[:200])
        region = [round(x), round(y), round(x + bw), round(y + bh)]
        note = f" (shrunk from {asked} px to fit)" if size != asked else ""
        return ToolResult(
            artifacts=[art],
            data={"width": w, "height": h, "size": size, "lines": len(lines), "box": region},
            summary=f"wrote {len(lines)} line(s) of text at the {args.position} of "
            f"{args.image.label()}, {size} px{note}",
        )


# --- contact_sheet -----------------------------------------------------------------------------


class ContactSheetArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[ImageInput] = Field(
        min_length=2, max_length=64, description="the images, in order"
    )
    columns: int | None = Field(
        None, ge=1, le=20, description="thumbnails per row (default: a near-square grid)"
    )
    labels: bool = Field(True, description="print each image's name under it")
    cell: int = Field(256, ge=32, le=1024, description="thumbnail box size in pixels")


class ContactSheet(Tool):
    name = "contact_sheet"
    description = (
        "Lay out many images as (labelled) thumbnails on one sheet, to compare or review them."
    )
    inputs = ContactSheetArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: ContactSheetArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image, ImageDraw

        n, cell = len(args.images), args.cell
        cols = min(n, args.columns or math.ceil(math.sqrt(n)))
        rows = math.ceil(n / cols)
        gap = max(4, cell // 32)
        font = default_font(max(10, cell // 14))
        label_h = (font.getbbox("Ag")[3] + gap) if args.labels else 0
        width = cols * cell + (cols + 1) * gap
        height = rows * (cell + label_h) + (rows + 1) * gap
        check_output_size(width, height, ctx.settings)
        sheet = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for i, art in enumerate(args.images):
            ctx.check_cancelled()
            ctx.report(i / n, f"adding {art.label()}")
            thumb = open_image(art, ctx.settings)
            thumb.thumbnail((cell, cell), Image.Resampling.LANCZOS)
            if "A" in thumb.getbands() or "transparency" in thumb.info:
                backed = Image.new("RGBA", thumb.size, (255, 255, 255, 255))
                thumb = Image.alpha_composite(backed, thumb.convert("RGBA"))
            r, c = divmod(i, cols)
            x = gap + c * (cell + gap)
            y = gap + r * (cell + label_h + gap)
            sheet.paste(
                thumb.convert("RGB"),
                (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2),
            )
            if args.labels:
                name = art.name or art.label()
                while len(name) > 1 and font.getlength(name) > cell:
                    name = name[:-2] + "…"
                draw.text(
                    (x + cell / 2, y + cell + gap / 2),
                    name,
                    fill=(40, 40, 40),
                    font=font,
                    anchor="ma",
                )
        out = ctx.store.add_image(
            sheet,
            name="contact-sheet.png",
            metadata={"source_step": ctx.step_id, "sources": [a.id for a in args.images]},
        )
        return ToolResult(
            artifacts=[out],
            data={"width": width, "height": height, "columns": cols, "rows": rows, "cell": cell},
            summary=f"laid out {n} images in {rows} row(s) of {cols} on a {width}x{height} sheet",
        )


add_text_to_image = AddTextToImage()
contact_sheet = ContactSheet()
