"""Reading text in images (OCR) with rapidocr and the PP-OCR ONNX models it ships: detection,
orientation, recognition; offline (the models are named by path, so rapidocr never downloads).

The bundled recognizer (PP-OCRv6 small) is multilingual: Chinese (simplified and traditional),
Japanese, English and the Latin-script languages rapidocr lists for it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Modality
from tools.base import ImageInput, Tool, ToolContext, ToolResult
from tools.errors import ToolError, require
from tools.image_draw import draw_detections
from tools.image_io import open_image

OCR_VERSION = "PP-OCRv6"
MODEL_TYPE = "small"
MODEL_KEY = f"rapidocr:{OCR_VERSION}-{MODEL_TYPE}"
"""The engine's name in the model manager."""
BUNDLED = {
    "Det": "PP-OCRv6_det_small.onnx",
    "Cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    "Rec": "PP-OCRv6_rec_small.onnx",
}
"""The model files in rapidocr's package folder, by pipeline stage."""

LANGUAGE_NAMES = {
    "ch": "Chinese", "chinese_cht": "Traditional Chinese", "en": "English", "japan": "Japanese",
    "af": "Afrikaans", "az": "Azerbaijani", "bs": "Bosnian", "ca": "Catalan", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "es": "Spanish", "et": "Estonian",
    "eu": "Basque", "fi": "Finnish", "fr": "French", "ga": "Irish", "gl": "Galician",
    "hr": "Croatian", "hu": "Hungarian", "id": "Indonesian", "is": "Icelandic", "it": "Italian",
    "ku": "Kurdish", "la": "Latin", "lb": "Luxembourgish", "lt": "Lithuanian", "lv": "Latvian",
    "mi": "Maori", "ms": "Malay", "mt": "Maltese", "nl": "Dutch", "no": "Norwegian",
    "oc": "Occitan", "pl": "Polish", "pt": "Portuguese", "qu": "Quechua", "rm": "Romansh",
    "ro": "Romanian", "rs_latin": "Serbian (Latin)", "sk": "Slovak", "sl": "Slovenian",
    "sq": "Albanian", "sv": "Swedish", "sw": "Swahili", "tl": "Tagalog", "tr": "Turkish",
    "uz": "Uzbek", "vi": "Vietnamese", "french": "French", "german": "German",
}  # fmt: skip
"""English names of rapidocr's language codes."""

ALIASES = {
    "zh": "ch", "zh-cn": "ch", "zh-hans": "ch", "cn": "ch", "chi": "ch", "zho": "ch",
    "simplified chinese": "ch", "mandarin": "ch", "zh-tw": "chinese_cht", "zh-hk": "chinese_cht",
    "zh-hant": "chinese_cht", "ja": "japan", "jp": "japan", "jpn": "japan", "eng": "en",
    "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "spa": "es", "ita": "it", "por": "pt",
    "nld": "nl", "dut": "nl", "pol": "pl", "tur": "tr", "vie": "vi", "swe": "sv", "nb": "no",
    "nn": "no", "norsk": "no", "deutsch": "de", "français": "fr", "español": "es",
    "latin script": "en", "latin alphabet": "en", "serbian": "rs_latin", "sr-latn": "rs_latin",
}  # fmt: skip
"""Other ways to name a language the bundled model reads."""

AUTO = {"", "auto", "any", "detect", "default", "unknown"}

_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


class ReadTextArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    language: str | None = Field(
        None,
        description="the language or script to expect, e.g. 'english', 'de', 'chinese' "
        "(default: detect it; the model reads Chinese, Japanese, English and Latin-script "
        "languages)",
    )
    min_confidence: float = Field(
        0.5, ge=0, le=1, description="drop lines read with less confidence than this (0..1)"
    )


def supported_languages() -> list[str]:
    """Codes of the languages the bundled recognizer reads, as rapidocr lists them."""
    rapidocr = require("rapidocr", "ocr")
    try:
        return list(rapidocr.RapidOCR.list_supported_langs("rec", OCR_VERSION, MODEL_TYPE))
    except (ValueError, KeyError, AttributeError):  # an older rapidocr: its ch model
        return ["ch", "en"]


def check_language(language: str | None) -> str | None:
    """The rapidocr code of ``language`` (a code or an English name), None for any; a
    ``ToolError`` listing what works when the bundled model cannot read it."""
    if language is None or language.strip().lower() in AUTO:
        return None
    key = " ".join(language.strip().lower().replace("_", "-").split())
    by_name: dict[str, str] = {}
    for short, name in LANGUAGE_NAMES.items():
        by_name.setdefault(name.lower(), short)  # the first code of a name: 'de', not 'german'
    code = ALIASES.get(key) or by_name.get(key) or key.replace("-", "_")
    supported = supported_languages()
    if code in supported:
        return code
    raise ToolError(
        f"read_text cannot read {language!r}: its bundled {OCR_VERSION} model reads "
        f"{describe(supported)}. Other scripts (Korean, Arabic, Cyrillic, Devanagari, Greek, "
        "Thai, ...) need other PP-OCR models, which are not installed and are never "
        "downloaded; leave language unset to read any of the languages above"
    )


def describe(codes: list[str]) -> str:
    """'Chinese, Japanese, English and these Latin-script languages: ...' for rapidocr codes."""
    names = list(dict.fromkeys(LANGUAGE_NAMES.get(c, c) for c in codes))
    first = [n for n in ("Chinese", "Traditional Chinese", "Japanese", "English") if n in names]
    rest = sorted(n for n in names if n not in first)
    return ", ".join(first) + (
        f" and these Latin-script languages: {', '.join(rest)}" if rest else ""
    )


def model_files() -> dict[str, Path]:
    """The bundled ONNX files by stage; a ``ToolError`` when rapidocr ships without them."""
    rapidocr = require("rapidocr", "ocr")
    folder = Path(str(rapidocr.__file__)).parent / "models"
    files = {stage: folder / name for stage, name in BUNDLED.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise ToolError(
            f"rapidocr's bundled models are missing ({', '.join(missing)}); reinstall it with "
            "pip install --force-reinstall 'anymodal[ocr]'"
        )
    return files


def build_engine() -> Any:
    """A rapidocr engine on the bundled models, loaded now, quiet, never touching the network;
    it keeps every line (confidence filtering is the caller's)."""
    rapidocr = require("rapidocr", "ocr")
    require("onnxruntime", "ocr")
    params: dict[str, Any] = {"Global.log_level": "error", "Global.text_score": 0.0}
    for stage, path in model_files().items():
        params[f"{stage}.model_path"] = str(path)
    try:
        engine = rapidocr.RapidOCR(params=params)
        for stage in ("det", "cls", "rec"):  # rapidocr loads lazily; load now, once
            loader = getattr(engine, f"_load_{stage}_model", None)
            if loader is not None:
                loader()
    except Exception as exc:  # rapidocr raises plain exceptions for broken model files
        raise ToolError(f"rapidocr could not load its models: {exc}") from exc
    return engine


def engine_for(ctx: ToolContext | None) -> Any:
    """The shared engine: through the model manager when there is one, else cached here."""
    if ctx is not None and ctx.models is not None:

        def size() -> int:
            return sum(p.stat().st_size for p in model_files().values())

        return ctx.models.load(MODEL_KEY, build_engine, size_bytes=size)
    with _cache_lock:
        if "engine" not in _cache:
            _cache["engine"] = build_engine()
        return _cache["engine"]


def upright_rgb(img: Any) -> Any:
    """``img`` turned as its EXIF says, in RGB, transparency flattened onto white."""
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def read_lines(engine: Any, rgb: Any, min_confidence: float = 0.0) -> list[dict[str, Any]]:
    """The text lines in an RGB PIL image, in reading order (top to bottom, then left to
    right), each with ``text``, ``confidence``, ``box`` [x0, y0, x1, y1], ``polygon`` (four
    corners) and ``row`` (lines side by side share one)."""
    import numpy as np

    bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])  # rapidocr takes arrays as BGR
    result = engine(bgr)
    if getattr(result, "boxes", None) is None or not getattr(result, "txts", None):
        return []
    lines = []
    for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
        if float(score) < min_confidence or not str(text).strip():
            continue
        pts = [[round(float(x)), round(float(y))] for x, y in quad]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        box = [max(0, min(xs)), max(0, min(ys)), min(rgb.width, max(xs)), min(rgb.height, max(ys))]
        lines.append(
            {"text": str(text), "confidence": round(float(score), 4), "box": box, "polygon": pts}
        )
    return reading_order(lines)


def reading_order(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows top to bottom (a line joins a row when its middle lies within the row's height),
    each row left to right; every line gets its ``row`` number (from 0)."""
    rows: list[list[dict[str, Any]]] = []
    for line in sorted(lines, key=lambda ln: (ln["box"][1], ln["box"][0])):
        middle = (line["box"][1] + line["box"][3]) / 2
        row = rows[-1] if rows else []
        if row and min(r["box"][1] for r in row) <= middle <= max(r["box"][3] for r in row):
            row.append(line)
        else:
            rows.append([line])
    return [
        {**line, "row": i}
        for i, row in enumerate(rows)
        for line in sorted(row, key=lambda ln: ln["box"][0])
    ]


def plain_text(lines: list[dict[str, Any]]) -> str:
    """One text line per row, the lines of a row joined by spaces."""
    rows: dict[int, list[str]] = {}
    for line in lines:
        rows.setdefault(line.get("row", len(rows)), []).append(line["text"])
    return "\n".join(" ".join(texts) for texts in rows.values())


class ReadText(Tool):
    name = "read_text"
    description = (
        "Read the text in an image (OCR): signs, documents, screenshots, menus, labels. "
        "Returns the text, and a copy of the image with the lines boxed."
    )
    inputs = ReadTextArgs
    outputs = (Modality.TEXT, Modality.IMAGE)

    def run(self, args: ReadTextArgs, ctx: ToolContext) -> ToolResult:
        language = check_language(args.language)
        rgb = upright_rgb(open_image(args.image, ctx.settings))
        ctx.report(0.1, "loading the OCR models")
        engine = engine_for(ctx)
        ctx.check_cancelled()
        ctx.report(0.3, "reading")
        lines = read_lines(engine, rgb, args.min_confidence)
        text = plain_text(lines)
        stem = Path(args.image.name).stem or "image"
        meta = {"source_step": ctx.step_id, "source": args.image.id}
        text_art = ctx.store.add_text(text, name=f"{stem}-text.txt", metadata=meta)
        boxes = [{"box": line["box"], "label": str(i)} for i, line in enumerate(lines, 1)]
        drawn = ctx.store.add_image(
            draw_detections(rgb, boxes), name=f"{stem}-text-boxes.png", metadata=meta
        )
        where = args.image.label()
        if lines:
            preview = " / ".join(line["text"] for line in lines)
            preview = preview if len(preview) <= 80 else preview[:77] + "..."
            summary = f"read {len(lines)} line{'s' * (len(lines) != 1)} in {where}: {preview}"
        else:
            summary = f"no text found in {where}" + (
                f" (at confidence {args.min_confidence:g} or more)" if args.min_confidence else ""
            )
        return ToolResult(
            artifacts=[text_art, drawn],
            data={
                "text": text,
                "lines": lines,
                "language": language,
                "model": f"rapidocr {OCR_VERSION} {MODEL_TYPE}",
            },
            summary=summary,
        )


read_text = ReadText()
