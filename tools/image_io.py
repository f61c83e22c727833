"""Decoding images safely: size limits before decoding, clear errors for broken files."""

from __future__ import annotations

import warnings
from typing import Any

from tools.artifact import Artifact
from tools.errors import ToolError
from tools.settings import ToolSettings

# Formats a tool can write, by the name a user or planner would use.
WRITE_FORMATS = {
    "png": "PNG",
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "webp": "WEBP",
    "gif": "GIF",
    "bmp": "BMP",
    "tiff": "TIFF",
    "tif": "TIFF",
}


def open_image(art: Artifact, settings: ToolSettings) -> Any:
    """Open and fully decode an image artifact, refusing empty, broken or oversized files."""
    from PIL import Image, UnidentifiedImageError

    size = art.metadata.get("size")
    if size == 0:
        raise ToolError(f"{art.label()} is an empty (0-byte) file; attach the image again")
    try:
        with warnings.catch_warnings():
            # Our own limit is checked below, before any pixel is decoded; PIL still refuses
            # anything over twice its own limit (DecompressionBombError) on its own.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(art.path)
        w, h = img.size
        if w * h > settings.max_image_pixels:
            img.close()
            raise ToolError(
                f"{art.label()} is {w}x{h} ({w * h / 1e6:.0f} megapixels); the limit is "
                f"{settings.max_image_pixels / 1e6:.0f} megapixels (tools.max_image_pixels). "
                "Downscale it first, or raise the limit if you trust the file"
            )
        img.load()
    except ToolError:
        raise
    except Image.DecompressionBombError as exc:
        raise ToolError(
            f"{art.label()} is too large to decode safely ({exc}); downscale it first"
        ) from None
    except UnidentifiedImageError:
        raise ToolError(
            f"{art.label()} is not an image anymodal can read ({art.mime}); "
            "use PNG, JPEG, WebP, GIF, BMP or TIFF"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ToolError(
            f"{art.label()} could not be decoded ({exc}); the file is truncated or corrupt"
        ) from None
    return img


def image_facts(img: Any) -> dict[str, Any]:
    """Cheap facts for state and metadata."""
    facts: dict[str, Any] = {"width": img.width, "height": img.height, "mode": img.mode}
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        facts["frames"] = frames
    return facts


def check_output_size(width: int, height: int, settings: ToolSettings) -> None:
    limit = settings.max_image_side
    if width > limit or height > limit:
        raise ToolError(f"the result would be {width}x{height}; the limit is {limit} per side")
    if width * height > settings.max_image_pixels:
        raise ToolError(
            f"the result would be {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"the limit is {settings.max_image_pixels / 1e6:.0f}"
        )
