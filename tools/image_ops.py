"""Model-free image tools: resize, crop, stitch, convert."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.artifact import Artifact, Modality
from tools.base import ImageInput, Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.image_io import WRITE_FORMATS, check_output_size, open_image


def save_image(
    ctx: ToolContext,
    img: Any,
    source: Artifact,
    suffix: str,
    fmt: str | None = None,
    **metadata: Any,
) -> Artifact:
    """Store ``img`` named after its source, in the source's format unless told otherwise."""
    src_ext = Path(source.path).suffix.lstrip(".").lower()
    fmt = fmt or (src_ext if src_ext in WRITE_FORMATS else "png")
    stem = Path(source.name).stem or "image"
    return ctx.store.add_image(
        img,
        name=f"{stem}-{suffix}.{fmt}",
        format=WRITE_FORMATS[fmt],
        metadata={"source_step": ctx.step_id, "source": source.id, **metadata},
    )


class ResizeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    width: int | None = Field(None, ge=1, le=65_536, description="new width in pixels")
    height: int | None = Field(None, ge=1, le=65_536, description="new height in pixels")

    @model_validator(mode="after")
    def _one_side(self) -> ResizeArgs:
        if self.width is None and self.height is None:
            raise ValueError("give width, height, or both (one keeps the aspect ratio)")
        return self


class ResizeImage(Tool):
    name = "resize_image"
    description = (
        "Resize an image to a width and/or height in pixels; giving only one keeps the "
        "aspect ratio."
    )
    inputs = ResizeArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: ResizeArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image

        img = open_image(args.image, ctx.settings)
        w, h = img.size
        width = args.width or max(1, round(w * (args.height or h) / h))
        height = args.height or max(1, round(h * width / w))
        check_output_size(width, height, ctx.settings)
        out = img.resize((width, height), Image.Resampling.LANCZOS)
        art = save_image(ctx, out, args.image, f"{width}x{height}")
        return ToolResult(
            artifacts=[art],
            data={"width": width, "height": height},
            summary=f"resized {args.image.label()} from {w}x{h} to {width}x{height}",
        )


class CropArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    left: int = Field(ge=0, description="left edge in pixels")
    top: int = Field(ge=0, description="top edge in pixels")
    width: int = Field(ge=1, description="width of the crop in pixels")
    height: int = Field(ge=1, description="height of the crop in pixels")


class CropImage(Tool):
    name = "crop_image"
    description = "Cut a rectangle (left, top, width, height in pixels) out of an image."
    inputs = CropArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: CropArgs, ctx: ToolContext) -> ToolResult:
        img = open_image(args.image, ctx.settings)
        w, h = img.size
        if args.left + args.width > w or args.top + args.height > h:
            raise ToolError(
                f"crop {args.width}x{args.height} at ({args.left}, {args.top}) falls outside "
                f"{args.image.label()}, which is {w}x{h}"
            )
        box = (args.left, args.top, args.left + args.width, args.top + args.height)
        art = save_image(ctx, img.crop(box), args.image, f"crop{args.width}x{args.height}")
        return ToolResult(
            artifacts=[art],
            data={"box": list(box)},
            summary=f"cropped {args.image.label()} to {args.width}x{args.height}",
        )


class StitchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    images: list[ImageInput] = Field(
        min_length=2, max_length=64, description="the images, in order"
    )
    layout: Literal["horizontal", "vertical", "grid"] = Field(
        "horizontal", description="side by side, stacked, or a near-square grid"
    )
    gap: int = Field(0, ge=0, le=256, description="pixels between images")
    background: str = Field("white", description="colour behind and between the images")


class StitchImages(Tool):
    name = "stitch_images"
    description = (
        "Put several images side by side (horizontal), one above another (vertical), or in "
        "a grid, in one image."
    )
    inputs = StitchArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: StitchArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image, ImageColor

        try:
            bg = ImageColor.getrgb(args.background)
        except ValueError:
            raise ToolError(f"unknown colour {args.background!r}; use a name or #rrggbb") from None
        imgs = [open_image(a, ctx.settings).convert("RGB") for a in args.images]
        n = len(imgs)
        if args.layout == "horizontal":
            cols, rows = n, 1
        elif args.layout == "vertical":
            cols, rows = 1, n
        else:
            cols = math.ceil(math.sqrt(n))
            rows = math.ceil(n / cols)
        # Each column is as wide as its widest image, each row as tall as its tallest.
        col_w = [max(imgs[i].width for i in range(c, n, cols)) for c in range(cols)]
        row_h = [max(im.height for im in imgs[r * cols : (r + 1) * cols]) for r in range(rows)]
        width = sum(col_w) + args.gap * (cols - 1)
        height = sum(row_h) + args.gap * (rows - 1)
        check_output_size(width, height, ctx.settings)
        canvas = Image.new("RGB", (width, height), bg)
        for i, im in enumerate(imgs):
            r, c = divmod(i, cols)
            x = sum(col_w[:c]) + args.gap * c + (col_w[c] - im.width) // 2
            y = sum(row_h[:r]) + args.gap * r + (row_h[r] - im.height) // 2
            canvas.paste(im, (x, y))
        art = ctx.store.add_image(
            canvas,
            name=f"stitched-{args.layout}.png",
            metadata={"source_step": ctx.step_id, "sources": [a.id for a in args.images]},
        )
        return ToolResult(
            artifacts=[art],
            data={"width": width, "height": height},
            summary=f"stitched {n} images ({args.layout}) into {width}x{height}",
        )


class ConvertImageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    format: Literal["png", "jpg", "jpeg", "webp", "gif", "bmp", "tiff"] = Field(
        description="the file format to write"
    )
    quality: int = Field(90, ge=1, le=100, description="JPEG/WebP quality")


class ConvertImage(Tool):
    name = "convert_image"
    description = "Convert an image to another file format (png, jpg, webp, gif, bmp, tiff)."
    inputs = ConvertImageArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: ConvertImageArgs, ctx: ToolContext) -> ToolResult:
        import io

        img = open_image(args.image, ctx.settings)
        fmt = WRITE_FORMATS[args.format]
        if fmt == "JPEG" and img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        buf = io.BytesIO()
        img.save(buf, format=fmt, quality=args.quality)
        stem = Path(args.image.name).stem or "image"
        art = ctx.store.add_bytes(
            buf.getvalue(),
            name=f"{stem}.{args.format}",
            modality=Modality.IMAGE,
            metadata={
                "width": img.width,
                "height": img.height,
                "source_step": ctx.step_id,
                "source": args.image.id,
            },
        )
        return ToolResult(
            artifacts=[art], summary=f"converted {args.image.label()} to {args.format}"
        )


resize_image = ResizeImage()
crop_image = CropImage()
stitch_images = StitchImages()
convert_image = ConvertImage()
