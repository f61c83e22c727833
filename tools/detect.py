"""Open-vocabulary object detection through transformers (OWLv2, OWL-ViT, Grounding DINO):
``detect_objects``, and ``detect`` for other tools (segmentation by words in ``tools.segment``)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools.artifact import Modality
from tools.base import ImageInput, Tool, ToolContext, ToolResult
from tools.errors import ToolError, require
from tools.hf import load_pretrained, model_inputs
from tools.image_draw import draw_detections
from tools.image_io import open_image

OWL_TYPES = ("owlv2", "owlvit")
DINO_TYPES = ("grounding-dino", "mm-grounding-dino")
DEFAULT_THRESHOLD = {"owlv2": 0.1, "owlvit": 0.1, "grounding-dino": 0.3, "mm-grounding-dino": 0.3}
"""The usual score threshold of each detector type."""
MAX_DETECTIONS = 100
NMS_IOU = 0.5


# --- detection --------------------------------------------------------------------------------


def _owl(model: Any, processor: Any, rgb: Any, labels: list[str], cut: float) -> list[Any]:
    """(box, score, label) rows from OWLv2 / OWL-ViT, boxes in pixels of ``rgb``."""
    batch = processor(text=[labels], images=rgb, return_tensors="pt", truncation=True)
    outputs = model(**model_inputs(batch, model))
    result = processor.post_process_grounded_object_detection(
        outputs, threshold=cut, target_sizes=[(rgb.height, rgb.width)], text_labels=[labels]
    )[0]
    names = [labels[i] for i in result["labels"].tolist()]
    return list(
        zip(result["boxes"].float().tolist(), result["scores"].tolist(), names, strict=True)
    )


def _dino(model: Any, processor: Any, rgb: Any, labels: list[str], cut: float) -> list[Any]:
    """(box, score, label) rows from Grounding DINO, prompted "cat. red car."; a box's label is
    the one whose tokens it matches best."""
    import torch

    text = " ".join(re.sub(r"[.\s]+", " ", label).strip().lower() + "." for label in labels)
    batch = processor(images=rgb, text=text, return_tensors="pt")
    outputs = model(**model_inputs(batch, model))
    sep = processor.tokenizer.convert_tokens_to_ids(".")
    spans: list[list[int]] = [[]]
    for pos, tok in enumerate(batch["input_ids"][0].tolist()[1:], start=1):  # after [CLS]
        if tok == sep:
            spans.append([])
        elif len(spans) <= len(labels):
            spans[-1].append(pos)
    probs = outputs.logits[0].float().sigmoid()
    per_label = [probs[:, s].amax(dim=1) if s else probs[:, 0] * 0 for s in spans[: len(labels)]]
    best, which = torch.stack(per_label, dim=1).max(dim=1)
    cx, cy, bw, bh = outputs.pred_boxes[0].float().unbind(-1)
    w, h = rgb.size
    boxes = torch.stack(
        [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
    )
    keep = best > cut
    names = [labels[i] for i in which[keep].tolist()]
    return list(zip(boxes.T[keep].tolist(), best[keep].tolist(), names, strict=True))


def _iou(a: list[int], b: list[int]) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def detect(
    ctx: ToolContext, img: Any, labels: list[str], threshold: float | None = None
) -> list[dict[str, Any]]:
    """Boxes of what ``labels`` name in a PIL image, best first, with the configured detector.

    Returns:
        Dicts with ``label``, ``score`` (0..1) and ``box`` ``[x0, y0, x1, y1]``: whole pixels
        of ``img``, clipped to it; overlapping boxes of one label are merged (NMS).
    """
    torch = require("torch", "image")

    spec = ctx.settings.image.detector
    model, processor = load_pretrained(
        ctx, spec, "tools.image.detector", "zero-shot object detector",
        "AutoModelForZeroShotObjectDetection",
    )  # fmt: skip
    kind = model.config.model_type
    if kind not in OWL_TYPES + DINO_TYPES:
        raise ToolError(
            f"{spec!r} is a {kind} model; detect_objects runs OWLv2, OWL-ViT or Grounding DINO "
            "(tools.image.detector)"
        )
    cut = DEFAULT_THRESHOLD[kind] if threshold is None else threshold
    rgb = img.convert("RGB")
    with torch.inference_mode():
        rows = (_owl if kind in OWL_TYPES else _dino)(model, processor, rgb, labels, cut)
    found: list[dict[str, Any]] = []
    for box, score, label in sorted(rows, key=lambda row: -row[1]):
        x0, y0 = max(0, round(box[0])), max(0, round(box[1]))
        x1, y1 = min(rgb.width, round(box[2])), min(rgb.height, round(box[3]))
        box = [x0, y0, x1, y1]
        if x1 <= x0 or y1 <= y0:
            continue
        if all(d["label"] != label or _iou(d["box"], box) < NMS_IOU for d in found):
            found.append({"label": label, "score": round(float(score), 4), "box": box})
    return found[:MAX_DETECTIONS]


def _plural(word: str, n: int) -> str:
    if n == 1 or word.endswith("s"):
        return word
    if word.endswith(("x", "ch", "sh")):
        return word + "es"
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def describe_counts(labels: list[str]) -> str:
    """'2 dogs, 1 cat'."""
    return ", ".join(f"{n} {_plural(label, n)}" for label, n in Counter(labels).items())


def clean_label(text: str) -> str:
    """'the dog' -> 'dog': the words a detector is asked for."""
    return re.sub(r"^(the|a|an)\s+", "", " ".join(text.split()), flags=re.IGNORECASE)


class DetectArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    labels: list[str] = Field(
        max_length=64,
        json_schema_extra={"minItems": 1},
        description="what to look for, in words, e.g. ['dog', 'red car'] (any words work)",
    )
    threshold: float | None = Field(
        None,
        ge=0,
        le=1,
        description="minimum confidence 0..1 to report a box (default: the model's usual, "
        "0.1 for OWLv2; lower finds more)",
    )

    @field_validator("labels")
    @classmethod
    def _named(cls, labels: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(" ".join(label.split()) for label in labels))
        if not cleaned or not all(cleaned):
            raise ValueError("say what to look for in words, e.g. ['dog', 'car'] (no empty labels)")
        return cleaned


class DetectObjects(Tool):
    name = "detect_objects"
    description = (
        "Find objects named in words in an image: labelled boxes with scores, as JSON text "
        "(also as data), and a copy of the image with the boxes drawn."
    )
    inputs = DetectArgs
    outputs = (Modality.TEXT, Modality.IMAGE)

    def run(self, args: DetectArgs, ctx: ToolContext) -> ToolResult:
        img = open_image(args.image, ctx.settings)
        ctx.report(0.1, "loading the detector")
        found = detect(ctx, img, args.labels, args.threshold)
        ctx.check_cancelled()
        stem = Path(args.image.name).stem or "image"
        meta = {"source_step": ctx.step_id, "source": args.image.id}
        data = {"detections": found, "model": ctx.settings.image.detector}
        data |= {"width": img.width, "height": img.height}
        text = ctx.store.add_text(
            json.dumps(data, indent=1), name=f"{stem}-detections.json", metadata=meta
        )
        drawn = ctx.store.add_image(
            draw_detections(img, found), name=f"{stem}-detections.png", metadata=meta
        )
        where = args.image.label()
        summary = (
            f"found {describe_counts([d['label'] for d in found])} in {where}"
            if found
            else f"found nothing matching {', '.join(map(repr, args.labels))} in {where}"
        )
        return ToolResult(artifacts=[text, drawn], data=data, summary=summary)


detect_objects = DetectObjects()
