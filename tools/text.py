"""Text tools backed by the configured language model: write_text and short wrappers."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Modality, slug
from tools.base import TextLike, Tool, ToolContext, ToolResult
from tools.errors import ToolError

MAX_INPUT_CHARS = 24_000
"""Text beyond this is refused rather than silently cut: small models have small contexts."""


def apply_language_model(
    ctx: ToolContext, instruction: str, texts: list[str], name: str
) -> ToolResult:
    """Ask the language model to apply ``instruction`` to ``texts``; store the answer."""
    from prompts import render

    if ctx.llm is None:
        raise ToolError(
            "no language model is configured for text tools; install the offline "
            "planner model (make setup) or set a planner in config.toml"
        )
    total = sum(len(t) for t in texts)
    if total > MAX_INPUT_CHARS:
        raise ToolError(
            f"the texts hold {total} characters; the limit is {MAX_INPUT_CHARS}. "
            "Split them (trim_audio before transcribing, say) or summarise in parts"
        )
    messages = [
        {"role": "system", "content": render("write_text_system.j2")},
        {
            "role": "user",
            "content": render("write_text_user.j2", instruction=instruction, texts=texts),
        },
    ]
    answer = ctx.llm(messages, ctx.token_fn).strip()
    if not answer:
        raise ToolError("the language model returned no text; try rephrasing the instruction")
    art = ctx.store.add_text(
        answer,
        name=f"{name}-{slug(instruction, 'text')}.txt",
        metadata={"instruction": instruction, "source_step": ctx.step_id},
    )
    first = answer.splitlines()[0]
    return ToolResult(
        artifacts=[art],
        data={"chars": len(answer)},
        summary=f"{name}: {first[:80]}{'...' if len(first) > 80 else ''}",
    )


class WriteTextArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instruction: str = Field(min_length=1, description="what to do with the texts")
    texts: list[TextLike] = Field(
        default_factory=list, max_length=32, description="the texts to work on"
    )


class WriteText(Tool):
    name = "write_text"
    description = (
        "Apply the language model to text: summarise, translate, paraphrase, simplify, expand, "
        "correct grammar, extract keywords, classify sentiment, suggest topics, or write a "
        "caption or a script."
    )
    inputs = WriteTextArgs
    outputs = (Modality.TEXT,)

    def run(self, args: WriteTextArgs, ctx: ToolContext) -> ToolResult:
        return apply_language_model(ctx, args.instruction, args.texts, "text")


class SummarizeArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: TextLike
    length: Literal["short", "medium", "long"] = Field("short", description="how long")


class SummarizeText(Tool):
    name = "summarize_text"
    description = "Summarise a text (a transcript, an article, OCR output)."
    inputs = SummarizeArgs
    outputs = (Modality.TEXT,)

    def run(self, args: SummarizeArgs, ctx: ToolContext) -> ToolResult:
        sentences = {
            "short": "in one or two sentences",
            "medium": "in one paragraph",
            "long": "in a few paragraphs",
        }[args.length]
        return apply_language_model(
            ctx, f"Summarise this text {sentences}.", [args.text], "summary"
        )


class TranslateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: TextLike
    language: str = Field(min_length=2, description="the language to translate into")


class TranslateText(Tool):
    name = "translate_text"
    description = "Translate a text into another language."
    inputs = TranslateArgs
    outputs = (Modality.TEXT,)

    def run(self, args: TranslateArgs, ctx: ToolContext) -> ToolResult:
        return apply_language_model(
            ctx,
            f"Translate this text into {args.language}. Answer with the translation only.",
            [args.text],
            "translation",
        )


write_text = WriteText()
summarize_text = SummarizeText()
translate_text = TranslateText()
