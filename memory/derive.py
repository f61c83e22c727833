"""The text that describes an artifact, for the memory's text space and for reading hits.

Always: the file name as words, the prompt (or edit instruction) it was generated from, and a
text artifact's own text. With ``memory.derive_text``, what the installed tools can extract:
the text in an image (OCR, tools/ocr.py), a caption of it where a vision-language model is
installed (tools/vision.py), the speech in audio or a video's soundtrack (tools/asr.py, the
transcribe tool's steps). So a photo of a police car is found by "POLIZEI", and a recording by
what was said in it, in any space that reads text.

Nothing here raises for a bad or unreadable artifact: what could not be extracted becomes a
note, and the rest of the text still serves. Cancelling the context does stop it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memory.embed import name_words
from memory.settings import MemorySettings
from tools.artifact import Artifact, Modality
from tools.base import Cancelled, ToolContext
from tools.errors import ToolError
from tools.hf import first_line
from tools.models import manager_of

TEXT_CHARS = 4000
"""Characters of a text artifact's own text kept."""
OCR_CHARS = 2000
"""Characters of the text read in an image kept."""
SPEECH_CHARS = 4000
"""Characters of a transcript kept."""
SPEECH_SECONDS = 600
"""Seconds of audio transcribed, from the start (indexing an hour of speech would take
minutes)."""
OCR_CONFIDENCE = 0.5
"""Lines read with less confidence are left out (read_text's default)."""
METADATA_TEXT = ("prompt", "instruction")
"""Metadata that says in words what a generated or edited artifact shows."""


def derive_text(art: Artifact, ctx: ToolContext, settings: MemorySettings) -> tuple[str, list[str]]:
    """The text describing ``art`` (one part a line, most telling first) and notes on what
    could not be extracted.

    Args:
        art: The artifact.
        ctx: Its tool context (settings, model manager); progress is not reported from here.
        settings: The memory settings (``derive_text`` turns on OCR, captions, transcripts).

    Raises:
        Cancelled: ``ctx`` was cancelled.
    """
    ctx.check_cancelled()
    notes: list[str] = []
    work = dataclasses.replace(ctx, models=manager_of(ctx), progress_fn=_no_progress, token_fn=None)
    parts = [name_words(art)]
    for key in METADATA_TEXT:
        value = art.metadata.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(" ".join(value.split()))
    if art.modality == Modality.TEXT:
        parts.append(attempt(notes, "its text was not read", lambda: own_text(art)))
    if settings.derive_text:
        if art.modality == Modality.IMAGE:
            parts += image_text(work, art, notes)
        elif art.modality == Modality.AUDIO:
            parts.append(attempt(notes, "no transcript", lambda: speech(work, art)))
            if tagger_installed(work):
                parts.append(attempt(notes, "no sound tags", lambda: sound_tags(work, art)))
        elif art.modality == Modality.VIDEO:
            parts.append(attempt(notes, "no transcript", lambda: soundtrack(work, art)))
    if art.modality == Modality.MESH:
        parts.append(mesh_words(art))
    return "\n".join(dict.fromkeys(p for p in parts if p)), notes


def mesh_words(art: Artifact) -> str:
    """A mesh's facts in words ("3D model, 1,292 faces, watertight, coloured") from the
    metadata its tool or ingest wrote; "3D model" when there are none."""
    meta = art.metadata
    words = ["3D model"]
    if isinstance(meta.get("faces"), int):
        words.append(f"{meta['faces']:,} faces")
    if meta.get("watertight"):
        words.append("watertight")
    if meta.get("colours"):
        words.append("coloured")
    if meta.get("procedural"):
        words.append("built from simple shapes")
    return ", ".join(words)


def _no_progress(fraction: float, message: str, preview: Artifact | None) -> None:
    return None


def attempt(notes: list[str], what: str, fn: Callable[[], str]) -> str:
    """``fn()``, or "" with a note saying ``what`` and why when it fails."""
    try:
        return fn()
    except Cancelled:
        raise
    except ToolError as exc:
        notes.append(f"{what}: {exc}")
    except Exception as exc:  # a library failing on one odd file must not stop indexing
        notes.append(f"{what}: {type(exc).__name__}: {first_line(exc)}")
    return ""


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0]


def own_text(art: Artifact) -> str:
    """The first ``TEXT_CHARS`` characters of a text artifact (undecodable bytes replaced)."""
    try:
        with Path(art.path).open("rb") as f:
            head = f.read(TEXT_CHARS * 4)
    except OSError as exc:
        raise ToolError(f"{art.label()} cannot be read ({exc.strerror or exc})") from None
    return head.decode("utf-8", errors="replace")[:TEXT_CHARS].strip()


# --- images ----------------------------------------------------------------------------------


def image_text(ctx: ToolContext, art: Artifact, notes: list[str]) -> list[str]:
    """A caption (where a vision-language model is installed) and the text read in it."""
    from tools.image_io import open_image
    from tools.ocr import upright_rgb

    def decode() -> Any:
        with open_image(art, ctx.settings) as img:
            return upright_rgb(img)

    try:
        rgb = decode()
    except Cancelled:
        raise
    except ToolError as exc:
        notes.append(f"the image was not read: {exc}")
        return []
    caption = attempt(notes, "no caption", lambda: describe(ctx, art, notes))
    ctx.check_cancelled()
    written = attempt(notes, "no text read in the image", lambda: read_text(ctx, rgb))
    return [caption, f"text in the image: {written}" if written else ""]


def describe(ctx: ToolContext, art: Artifact, notes: list[str]) -> str:
    """A one-sentence caption by the vision-language model, or "" with a note when none is
    installed (checked cheaply first: a fresh install has none)."""
    from tools.vision import SETTING, look, vision_model
    from tools.vlm import check_available

    spec = vision_model(ctx)
    try:
        check_available(spec, ctx.models, SETTING)
    except ToolError as exc:
        notes.append(f"no caption: no vision-language model ({exc})")
        return ""
    text, _ = look(ctx, art, "brief")
    return shorten(text, 400)


def read_text(ctx: ToolContext, rgb: Any) -> str:
    """The text lines in an RGB image by the OCR tool's engine, in reading order."""
    from tools.ocr import engine_for, read_lines

    lines = read_lines(engine_for(ctx), rgb, OCR_CONFIDENCE)
    return shorten(" ".join(line["text"] for line in lines), OCR_CHARS)


# --- speech --------------------------------------------------------------------------------


def speech(ctx: ToolContext, art: Artifact) -> str:
    """What is said in an audio file or a video's soundtrack (its first ``SPEECH_SECONDS``),
    by the transcribe tool's recognizer and language choice; "" when there is no speech."""
    from tools import asr

    samples = asr.load_samples(art, ctx)[: SPEECH_SECONDS * asr.SAMPLE_RATE]
    rec = asr.load_recognizer(ctx, ctx.settings.audio.recognizer)
    asides: list[str] = []  # the recognizer's remarks (language assumed, ...): not failures
    choice = asr.choose_model(ctx, rec, None, samples, asides)
    if choice is None:
        return ""
    ctx.check_cancelled()
    found = asr.recognize(ctx, choice.rec, samples, choice.language, asides)
    text = shorten(" ".join(seg["text"] for seg in found if seg["text"]), SPEECH_CHARS)
    return f"speech: {text}" if text else ""


def tagger_installed(ctx: ToolContext) -> bool:
    """Whether the audio tagger (CLAP, ``tools.audio.audio_tagger``) can load, checked
    without loading it; not installed is no failure, just no tags."""
    from tools.audio_scene import SETTING
    from tools.hf import check_cached, model_source

    spec = ctx.settings.audio.audio_tagger
    try:
        check_cached(spec, model_source(spec, ctx.models, SETTING), setting=SETTING)
    except ToolError:
        return False
    return True


def sound_tags(ctx: ToolContext, art: Artifact) -> str:
    """What a clip sounds like ("sounds like: rain, thunder"), by the CLAP audio tagger: the
    words that carry a recording over to pictures (audio to image), as ImageBind's joint
    space would."""
    from tools.audio_io import decode_audio
    from tools.audio_scene import tag_sound

    data, rate = decode_audio(art, ctx.settings)
    return "sounds like: " + ", ".join(label for label, _ in tag_sound(ctx, data, rate))


def soundtrack(ctx: ToolContext, art: Artifact) -> str:
    """The speech in a video's soundtrack; "" for a silent video."""
    from tools import video_io

    info = video_io.probe(art, ctx.settings)
    return speech(ctx, art) if info.has_audio else ""
