"""The memory's tools for the planner: search_memory (any-to-any recall) and remember."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema

from tools.artifact import Artifact, Modality
from tools.base import REF_PATTERN, AnyInput, Tool, ToolContext, ToolResult, resolve_reference
from tools.errors import ToolError

QUERY_MODALITIES = (Modality.TEXT, Modality.IMAGE, Modality.AUDIO, Modality.VIDEO)


def _query(value: Any, info: ValidationInfo) -> Any:
    """Words stay words; a reference becomes the artifact it names (a text artifact's
    words are used as words)."""
    if isinstance(value, Artifact):
        art = value
    elif isinstance(value, str) and REF_PATTERN.match(value.strip()):
        art = resolve_reference(value.strip(), info)
    else:
        return value
    if art.metadata.get("placeholder"):
        return art
    if art.modality not in QUERY_MODALITIES:
        raise ValueError(
            f"{art.label()} is {art.modality.value}; search by text, image, audio or video"
        )
    return art.read_text() if art.modality is Modality.TEXT else art


if TYPE_CHECKING:
    Query = str | Artifact
else:
    Query = Annotated[
        Any,
        BeforeValidator(_query),
        WithJsonSchema(
            {
                "type": "string",
                "description": "what to look for: words, or an example (literal text, or a "
                "text/image/audio/video artifact: '$a1' for the first attachment, '$s1' for "
                "step s1's output)",
                "x-modality": [m.value for m in QUERY_MODALITIES],
            }
        ),
    ]


def _memory(ctx: ToolContext) -> Any:
    if ctx.memory is None:
        raise ToolError(
            "the memory is not available here; it needs the memory extra "
            "(pip install 'anymodal[memory]') and runs inside the assistant"
        )
    return ctx.memory


class SearchMemoryArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Query
    modality: Literal["text", "image", "audio", "video", "mesh"] | None = Field(
        None, description="only return this kind"
    )
    limit: int = Field(5, ge=1, le=50, description="how many matches to return")


class SearchMemory(Tool):
    name = "search_memory"
    description = (
        "Search past artifacts across modalities (text, image, audio, video, mesh) by words or "
        "by an example, and return the best matches ($s1, $s1.2, ...)."
    )
    inputs = SearchMemoryArgs
    outputs = ()

    def run(self, args: SearchMemoryArgs, ctx: ToolContext) -> ToolResult:
        memory = _memory(ctx)
        memory.flush()  # what earlier runs made is findable
        wanted = Modality(args.modality) if args.modality else None
        hits = memory.search(args.query, wanted, args.limit)
        what = args.query if isinstance(args.query, str) else args.query.label()
        if not hits:
            return ToolResult(
                data={"hits": [], "query": what},
                summary=f"nothing in the memory matches {what!r}"
                + (f" among {args.modality} artifacts" if args.modality else ""),
            )
        arts = [memory.artifact(h) for h in hits]
        listing = ", ".join(f"{h.name or h.id[:12]} ({h.modality.value})" for h in hits)
        return ToolResult(
            artifacts=arts,
            data={"hits": [h.to_json() for h in hits], "query": what},
            summary=f"found {len(hits)} in the memory for {what!r}: {listing}",
        )


class RememberArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    artifacts: list[AnyInput] = Field(min_length=1, max_length=256, description="what to keep")
    note: str = Field("", description="words to file them under")


class Remember(Tool):
    name = "remember"
    description = "Keep artifacts in long-term memory so later sessions can find them by meaning."
    inputs = RememberArgs
    outputs = ()

    def run(self, args: RememberArgs, ctx: ToolContext) -> ToolResult:
        memory = _memory(ctx)
        arts: list[Artifact] = list(args.artifacts)
        ids = memory.add(arts, session=ctx.session, note=args.note)
        names = ", ".join(a.label() for a in arts)
        return ToolResult(
            data={"items": ids, "note": args.note},
            summary=f"kept {len(arts)} artifact(s) in the memory: {names}"
            + (f" (filed under {args.note!r})" if args.note else ""),
        )


search_memory = SearchMemory()
remember = Remember()
