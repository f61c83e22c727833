"""Promptable segmentation (SAM) through transformers: ``segment_image``, and
``mask_from_words`` for tools that need a mask of what some words name (Grounded-SAM: boxes from
the detector in ``tools.detect``, masks from SAM inside them)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.artifact import Artifact, Modality
from tools.base import ImageInput, Tool, ToolContext, ToolResult
from tools.detect import clean_label, describe_counts, detect
from tools.errors import ToolError, require
from tools.hf import load_pretrained, model_inputs
from tools.image_draw import overlay_masks
from tools.image_io import open_image

MAX_SEGMENTS = 16
"""Most objects one call segments (found by words, or boxes given)."""


def _segment(
    ctx: ToolContext, img: Any, boxes: list[list[float]], points: list[list[float]]
) -> list[tuple[Any, float]]:
    """SAM masks (boolean arrays of the image's size) with SAM's predicted IoU: one per box,
    then one for all the points together (clicks on one object)."""
    torch = require("torch", "image")

    spec = ctx.settings.image.segmenter
    model, processor = load_pretrained(ctx, spec, "tools.image.segmenter", "segmenter", "AutoModel")
    if model.config.model_type != "sam":
        raise ToolError(
            f"{spec!r} is a {model.config.model_type} model; segment_image runs SAM "
            "(tools.image.segmenter)"
        )
    rgb = img.convert("RGB")
    prompts: list[dict[str, Any]] = [{"input_boxes": [boxes]}] if boxes else []
    if points:
        prompts.append({"input_points": [[points]], "input_labels": [[[1] * len(points)]]})
    found: list[tuple[Any, float]] = []
    embeddings = None
    with torch.inference_mode():
        for prompt in prompts:
            batch = processor(images=rgb, return_tensors="pt", **prompt)
            inputs = model_inputs(batch, model)
            if embeddings is None:  # the image is encoded once for all prompts
                embeddings = model.get_image_embeddings(inputs["pixel_values"])
            out = model(
                image_embeddings=embeddings,
                multimask_output="input_points" in prompt and len(points) == 1,
                **{k: v for k, v in inputs.items() if k.startswith("input_")},
            )
            masks = processor.post_process_masks(
                out.pred_masks.float().cpu(), batch["original_sizes"], batch["reshaped_input_sizes"]
            )[0]
            ious = out.iou_scores[0].float().cpu().clamp(0, 1)
            for obj in range(masks.shape[0]):
                pick = int(ious[obj].argmax())
                found.append((masks[obj, pick].numpy(), round(float(ious[obj, pick]), 4)))
    return found


def _to_image(mask: Any) -> Any:
    from PIL import Image

    return Image.fromarray(mask.astype("uint8") * 255, "L")


def _bbox(mask: Any) -> list[int]:
    import numpy as np

    ys, xs = np.nonzero(mask)
    if not len(xs):
        return [0, 0, 0, 0]
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


def _from_words(
    ctx: ToolContext, img: Any, image: Artifact, words: str, threshold: float | None = None
) -> list[dict[str, Any]]:
    """Grounded-SAM: boxes for the words (commas separate things), then SAM in each box."""
    labels = [clean_label(part) for part in re.split(r"[,;]", words) if part.strip()]
    if not labels:
        raise ToolError("say what to segment in words, e.g. 'the dog'")
    found = detect(ctx, img, labels, threshold)[:MAX_SEGMENTS]
    if not found:
        raise ToolError(
            f"found no {words.strip()} in {image.label()}; try other words, a lower "
            "threshold, or give points or boxes"
        )
    ctx.check_cancelled()
    masks = _segment(ctx, img, [d["box"] for d in found], [])
    return [{**d, "mask": m} for d, (m, _) in zip(found, masks, strict=True)]


def mask_from_words(ctx: ToolContext, image: Artifact, words: str) -> Any:
    """A mode "L" mask of ``image`` (white = object), the union of everything ``words`` name.

    Raises:
        ToolError: "found no <words> in <image>" when nothing matches.
    """
    import numpy as np

    img = open_image(image, ctx.settings)
    segments = _from_words(ctx, img, image, words)
    return _to_image(np.logical_or.reduce([s["mask"] for s in segments]))


class SegmentArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    prompt: str = Field(
        min_length=1,
        description="what to segment, in words, e.g. 'the dog' or 'the sky' (with points or "
        "boxes it only names the result)",
    )
    points: list[list[float]] | None = Field(
        None, description="optional clicks on one object, [[x, y], ...] in pixels"
    )
    boxes: list[list[float]] | None = Field(
        None,
        max_length=MAX_SEGMENTS,
        description="optional boxes around objects, [[x0, y0, x1, y1], ...] in pixels",
    )
    threshold: float | None = Field(
        None, ge=0, le=1, description="detector confidence for the words (default: its usual)"
    )

    @field_validator("points")
    @classmethod
    def _pairs(cls, points: list[list[float]] | None) -> list[list[float]] | None:
        if points and not all(len(p) == 2 for p in points):
            raise ValueError("each point is [x, y]")
        return points or None

    @field_validator("boxes")
    @classmethod
    def _quads(cls, boxes: list[list[float]] | None) -> list[list[float]] | None:
        if boxes and not all(len(b) == 4 and b[2] > b[0] and b[3] > b[1] for b in boxes):
            raise ValueError("each box is [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        return boxes or None


def _from_prompts(ctx: ToolContext, img: Any, args: SegmentArgs) -> list[dict[str, Any]]:
    """SAM on the given boxes and points; the prompt's words only name the segments."""
    w, h = img.size
    where = args.image.label()
    points = args.points or []
    for x, y in points:
        if not (0 <= x < w and 0 <= y < h):
            raise ToolError(f"point [{x:g}, {y:g}] is outside {where}, which is {w}x{h}")
    boxes = [[max(0, b[0]), max(0, b[1]), min(w, b[2]), min(h, b[3])] for b in args.boxes or []]
    if any(b[2] <= b[0] or b[3] <= b[1] for b in boxes):
        raise ToolError(f"a box lies outside {where}, which is {w}x{h}")
    masks = _segment(ctx, img, boxes, points)
    given: list[list[int] | None] = [[round(v) for v in b] for b in boxes] + [None]
    label = clean_label(args.prompt)
    return [
        {"label": label, "score": iou, "box": box or _bbox(mask), "mask": mask}
        for (mask, iou), box in zip(masks, given, strict=False)
    ]


class SegmentImage(Tool):
    name = "segment_image"
    description = (
        "Make a mask (white on black) of the thing a prompt names, e.g. 'the dog' or 'the sky', "
        "or of what given points or boxes mark; also an overlay and one mask per object."
    )
    inputs = SegmentArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: SegmentArgs, ctx: ToolContext) -> ToolResult:
        import numpy as np

        img = open_image(args.image, ctx.settings)
        ctx.report(0.1, "loading models")
        if args.points or args.boxes:
            segments = _from_prompts(ctx, img, args)
        else:
            segments = _from_words(ctx, img, args.image, args.prompt, args.threshold)
        ctx.check_cancelled()
        stem = Path(args.image.name).stem or "image"
        meta = {"source_step": ctx.step_id, "source": args.image.id, "prompt": args.prompt}
        union = np.logical_or.reduce([s["mask"] for s in segments])
        mask = ctx.store.add_image(_to_image(union), name=f"{stem}-mask.png", metadata=meta)
        pictures = [_to_image(s["mask"]) for s in segments]
        overlay = ctx.store.add_image(
            overlay_masks(img, pictures), name=f"{stem}-segments.png", metadata=meta
        )
        artifacts, out = [mask, overlay], []
        for i, (seg, picture) in enumerate(zip(segments, pictures, strict=True), 1):
            art = ctx.store.add_image(picture, name=f"{stem}-mask{i}.png", metadata=meta)
            artifacts.append(art)
            out.append({k: seg[k] for k in ("label", "score", "box")} | {"mask": art.id})
            out[-1]["area"] = int(seg["mask"].sum())
        share = 100 * int(union.sum()) / (img.width * img.height)
        data = {"segments": out, "mask": mask.id, "overlay": overlay.id}
        return ToolResult(
            artifacts=artifacts,
            data=data | {"model": ctx.settings.image.segmenter},
            summary=f"segmented {describe_counts([s['label'] for s in segments])} in "
            f"{args.image.label()} ({share:.0f}% of the image)",
        )


segment_image = SegmentImage()
