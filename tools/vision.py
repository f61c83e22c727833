"""Vision-language tools: caption_image and ask_image, on a transformers vision-language model.

The model is ``tools.image.vision_language``, else the transformers planner's model
(``transformers.model``), else ``DEFAULT_MODEL``. It loads through the model manager under the
planner's key (``tools.vlm.model_key``), so a planner and these tools on the same model share
one copy. Models with a chat template (LLaVA, LLaVA-NeXT, Idefics3, ...) get the image and the
prompt as a chat; Florence-2, BLIP and BLIP-2, which have none, get their own plain prompts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from tools.artifact import Artifact, Modality, slug
from tools.base import REF_PATTERN, ImageInput, TextLike, Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.image_io import open_image
from tools.vlm import (
    WORKING_PROCESSORS,
    LoadedVLM,
    chat_inputs,
    generate,
    load_vlm,
    plain_inputs,
    shared_vlm,
)

DEFAULT_MODEL = "llava-interleave-qwen-0.5b"
"""A catalog entry: ``anymodal models pull llava-interleave-qwen-0.5b``."""
"""The vision-language model when neither tools.image.vision_language nor transformers.model
names one."""

SETTING = "tools.image.vision_language"
"""The config key that names the model, for error messages."""

CAPTION_TOKENS = {"brief": 60, "detailed": 400}
"""The longest caption, by detail."""

ANSWER_TOKENS = 300
"""The longest answer to a question."""

PLAIN_PROMPTS: dict[str, dict[str, str | None]] = {
    "florence2": {"brief": "<CAPTION>", "detailed": "<MORE_DETAILED_CAPTION>"},
    "blip": {"brief": None, "detailed": None},
    "blip-2": {
        "brief": None,
        "detailed": "Question: Describe this image in detail. Answer:",
        "ask": "Question: {question} Answer:",
    },
}
"""Prompts of the model families whose processors have no chat template, by task (None: the
model captions unprompted; a task that is missing is one the family cannot do)."""

FAMILY_NAMES = {"florence2": "Florence-2", "blip": "BLIP", "blip-2": "BLIP-2"}

Task = Literal["brief", "detailed", "ask"]


def vision_model(ctx: ToolContext) -> str:
    """The configured vision-language model: tools.image.vision_language, else the
    transformers planner's model, else ``DEFAULT_MODEL``."""
    planner_model = getattr(getattr(ctx.config, "transformers", None), "model", None)
    return ctx.settings.image.vision_language or planner_model or DEFAULT_MODEL


def load_vision_model(ctx: ToolContext, spec: str) -> LoadedVLM:
    """``spec`` through the model manager (shared with the transformers planner), or loaded
    directly when the context has no manager."""
    if ctx.models is not None:
        return shared_vlm(
            spec, ctx.models, device=ctx.models.device, dtype=ctx.models.dtype, setting=SETTING
        )
    return load_vlm(spec, setting=SETTING)


def _plain_prompt(vlm: LoadedVLM, spec: str, task: Task, question: str) -> str | None:
    family = str(getattr(vlm.model.config, "model_type", "") or "")
    prompts = PLAIN_PROMPTS.get(family)
    if prompts is None:
        raise ToolError(
            f"the processor of {spec!r} ({family or 'unknown family'}) has no chat template, "
            "so there is no way to give it the image and the prompt; set "
            f"{SETTING} to a chat vision-language model ({WORKING_PROCESSORS}, e.g. "
            f"{DEFAULT_MODEL!r}), or to Florence-2, BLIP or BLIP-2"
        )
    if task not in prompts:
        raise ToolError(
            f"{spec!r} is a {FAMILY_NAMES.get(family, family)} model: it writes captions "
            "(caption_image) but does not answer questions; for ask_image, set "
            f"{SETTING} to a chat vision-language model such as {DEFAULT_MODEL!r}"
        )
    prompt = prompts[task]
    return prompt.format(question=question) if prompt is not None else None


def model_inputs(vlm: LoadedVLM, spec: str, image: Any, task: Task, question: str = "") -> Any:
    """The image and the task's prompt as model inputs: a one-turn chat through the chat
    template, or the family's plain prompt (Florence-2 and BLIP are prompted their own way,
    whatever template they ship)."""
    from prompts import render

    family = getattr(vlm.model.config, "model_type", "")
    if family in PLAIN_PROMPTS or not vlm.has_chat_template:
        return plain_inputs(vlm, image, _plain_prompt(vlm, spec, task, question), spec)
    if task == "ask":
        text = render("ask_image.j2", question=question)
    else:
        text = render("caption_image.j2", detail=task)
    chat = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": text.strip()}],
        }
    ]
    return chat_inputs(vlm, chat, spec)


def look(ctx: ToolContext, image: Artifact, task: Task, question: str = "") -> tuple[str, str]:
    """Run the vision-language model on ``image`` for ``task``; returns (text, model).

    The image is decoded first (a bad one fails before any model loads); the answer streams
    through ``ctx.token_fn`` when it is set, and cancelling stops generation at the next token.
    """
    with open_image(image, ctx.settings) as decoded:
        rgb = decoded.convert("RGB")
    spec = vision_model(ctx)
    ctx.report(0.0, f"loading {spec}")
    vlm = load_vision_model(ctx, spec)
    ctx.check_cancelled()
    batch = model_inputs(vlm, spec, rgb, task, question)
    ctx.report(0.1, "looking at the image")
    on_token = None
    if ctx.token_fn is not None:
        token_fn = ctx.token_fn

        def on_token(piece: str) -> None:
            ctx.check_cancelled()
            token_fn(piece)

    tokens = ANSWER_TOKENS if task == "ask" else CAPTION_TOKENS[task]
    text = generate(
        vlm,
        batch,
        max_new_tokens=tokens,
        on_token=on_token,
        should_stop=lambda: ctx.cancelled,
    ).strip()
    ctx.check_cancelled()
    if not text:
        raise ToolError(
            f"the model {spec!r} gave no answer; try again with other words, or set {SETTING} "
            "to another vision-language model"
        )
    ctx.report(1.0, "done")
    return text, spec


def _summary(kind: str, text: str) -> str:
    first = text.splitlines()[0]
    return f"{kind}: {first[:80]}{'...' if len(first) > 80 else ''}"


def _stem(image: Artifact) -> str:
    return Path(image.name).stem or "image"


def _brief(value: Any) -> Any:
    return "brief" if value == "short" else value


class CaptionArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    detail: Annotated[Literal["brief", "detailed"], BeforeValidator(_brief)] = Field(
        "brief", description="a one-sentence caption, or a full description"
    )


class CaptionImage(Tool):
    name = "caption_image"
    description = (
        "Describe what an image shows with a vision-language model: one sentence, or in "
        "detail. Returns the text."
    )
    inputs = CaptionArgs
    outputs = (Modality.TEXT,)

    def run(self, args: CaptionArgs, ctx: ToolContext) -> ToolResult:
        text, model = look(ctx, args.image, args.detail)
        art = ctx.store.add_text(
            text,
            name=f"{_stem(args.image)}-caption.txt",
            metadata={
                "source_step": ctx.step_id,
                "source": args.image.id,
                "model": model,
                "detail": args.detail,
            },
        )
        return ToolResult(
            artifacts=[art],
            data={"caption": text, "model": model},
            summary=_summary("caption", text),
        )


class AskImageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    question: TextLike = Field(
        description="the question about the image, e.g. 'How many people are there?' "
        "(literal text, or '$s1' for the text a step produced)"
    )

    @field_validator("question", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # Sees the raw value: a literal question, or a reference whose text comes later.
        if isinstance(value, str) and not REF_PATTERN.match(value) and not value.strip():
            raise ValueError("the question is empty; ask something about the image")
        return value


class AskImage(Tool):
    name = "ask_image"
    description = (
        "Answer a question about an image with a vision-language model (count things, read "
        "a chart or a sign, judge a scene). Returns the answer as text."
    )
    inputs = AskImageArgs
    outputs = (Modality.TEXT,)

    def run(self, args: AskImageArgs, ctx: ToolContext) -> ToolResult:
        question = args.question.strip()
        if not question:
            raise ToolError("ask_image: the question is empty; ask something about the image")
        text, model = look(ctx, args.image, "ask", question)
        art = ctx.store.add_text(
            text,
            name=f"{_stem(args.image)}-answer-{slug(question, 'question')}.txt",
            metadata={
                "source_step": ctx.step_id,
                "source": args.image.id,
                "model": model,
                "question": question,
            },
        )
        return ToolResult(
            artifacts=[art],
            data={"answer": text, "question": question, "model": model},
            summary=_summary("answer", text),
        )


caption_image = CaptionImage()
ask_image = AskImage()
