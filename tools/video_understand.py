"""describe_video and ask_video: a video made into a timestamped timeline a planner can read.

A video is too long to show a language model whole, so it becomes its timeline
(tools/timeline.py): a few keyframes captioned by the vision-language model and the soundtrack's
speech, merged by time under a one-line header. With a language model (``ctx.llm``)
describe_video adds a summary and ask_video answers from the timeline; without one, ask_video
puts the question to the vision-language model on the keyframes nearest the times the question
names, and quotes the speech that shares its words.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tools import timeline
from tools.artifact import Modality, slug
from tools.base import Tool, ToolContext, ToolResult, VideoInput
from tools.errors import ToolError
from tools.models import manager_of
from tools.timeline import Frame, Timeline, plural, shorten, stem_of, with_notes
from tools.vision import look

ASK_FRAMES = 3
"""Keyframes the vision-language model is asked about when there is no language model."""
MATCH_LINES = 6
"""Speech lines quoted as evidence when there is no language model."""

TIME_MENTION = re.compile(
    r"\b(?:(\d{1,2}):)?(\d{1,2}):(\d{2})(?:\.\d+)?\b"
    r"|\b(\d+(?:\.\d+)?)\s*(s|secs?|seconds?|mins?|minutes?)\b",
    re.IGNORECASE,
)
"""Times a question may name: 1:02:03, 0:30, 00:30.5, 12 s, 12 seconds, 2 min."""
_STOP = (
    "the and for are was were what when where which who whom whose why how does did this that "
    "these those there their they them with from into about video clip say says said"
)
STOP_WORDS = frozenset(_STOP.split())
"""Words a question shares with any speech; they make no match."""


LLM = Callable[[list[dict[str, Any]], Callable[[str], None] | None], str]


def ask_llm(llm: LLM, system: str, user: str, on_token: Callable[[str], None] | None) -> str:
    """The language model's reply to one system and one user message."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    return llm(messages, on_token).strip()


def prompt(name: str) -> str:
    """A system prompt from ``prompts/`` (package data), without the file's final newline."""
    from prompts import render

    return render(name).strip()


# --- the tools -------------------------------------------------------------------------------


def _budget_field() -> Any:
    return Field(
        None, ge=1, le=256, description="most keyframes to look at (default: tools.video.keyframes)"
    )


class DescribeVideoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    detail: Literal["brief", "detailed"] = Field(
        "brief", description="a one-line summary or a scene-by-scene account"
    )
    max_frames: int | None = _budget_field()


class DescribeVideo(Tool):
    name = "describe_video"
    description = "Describe what happens in a video."
    inputs = DescribeVideoArgs
    outputs = (Modality.TEXT,)

    def run(self, args: DescribeVideoArgs, ctx: ToolContext) -> ToolResult:
        tl = timeline.build_timeline(ctx, args.video, detail=args.detail, budget=args.max_frames)
        ctx.report(0.95, "writing the timeline")
        notes = list(tl.notes)
        text = timeline.render(tl, notes)
        summary = ""
        if ctx.llm is not None:
            ctx.report(0.96, "summarising")
            summary = ask_llm(ctx.llm, prompt("describe_video_summary.j2"), text, None)
            if summary:
                first, rest = text.split("\n", 1)
                text = f"{first}\nSummary: {summary}\n{rest}"
        text = with_notes(text, notes)
        data = timeline.data_of(tl, notes) | {"detail": args.detail, "summary": summary or None}
        meta = {"source": args.video.id, "source_step": ctx.step_id, "models": data["models"]}
        art = ctx.store.add_text(text, name=f"{stem_of(args.video)}-description.txt", metadata=meta)
        ctx.report(1.0, "done")
        speech = "transcribed" if tl.speech.status == "speech" else tl.speech.status
        return ToolResult(
            artifacts=[art, *(f.image for f in tl.frames)],
            data=data,
            summary=f"described {args.video.label()} ({tl.info.duration:.1f} s): "
            f"{plural(len(tl.frames), 'keyframe')}, "
            f"{plural(len(tl.scene_changes), 'scene change')}, speech: {speech}",
        )


def mentioned_times(text: str) -> list[float]:
    """Seconds of the times ``text`` names: '1:02:03', '0:30', '12 s', '2 minutes'."""
    out = []
    for m in TIME_MENTION.finditer(text):
        if m.group(3) is not None:
            out.append(int(m.group(1) or 0) * 3600.0 + int(m.group(2)) * 60.0 + int(m.group(3)))
        else:
            out.append(float(m.group(4)) * (60.0 if m.group(5).lower().startswith("m") else 1.0))
    return out


def words_of(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if len(w) > 2} - STOP_WORDS


def nearest(frames: list[Frame], times: list[float]) -> list[Frame]:
    """The frame nearest each time, each once, in time order."""
    picked = {id(f): f for f in (min(frames, key=lambda f: abs(f.time - t)) for t in times)}
    return sorted(picked.values(), key=lambda f: f.time)


def frames_for(question: str, frames: list[Frame], duration: float) -> list[Frame]:
    """The keyframes nearest the times the question names (within the video), else up to
    ``ASK_FRAMES`` spread over it, the middle one among them."""
    times = [t for t in mentioned_times(question) if 0 <= t <= duration + 1.0]
    if not times:
        times = [duration * q for q in (1 / 6, 1 / 2, 5 / 6)]
    return nearest(frames, times)[:ASK_FRAMES]


class AskVideoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    video: VideoInput
    question: str = Field(min_length=1, description="the question")
    max_frames: int | None = _budget_field()

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the question is empty; ask something about the video")
        return value.strip()


class AskVideo(Tool):
    name = "ask_video"
    description = "Answer a question about a video."
    inputs = AskVideoArgs
    outputs = (Modality.TEXT,)

    def run(self, args: AskVideoArgs, ctx: ToolContext) -> ToolResult:
        question, llm = args.question, ctx.llm
        tl = timeline.build_timeline(
            ctx, args.video, detail="brief", budget=args.max_frames, captions=llm is not None
        )
        notes = list(tl.notes)
        if llm is not None:
            ctx.report(0.95, "answering")
            user = f"{with_notes(timeline.render(tl, notes), notes)}\n\nQuestion: {question}"
            text = ask_llm(llm, prompt("ask_video_system.j2"), user, ctx.token_fn)
            if not text:
                raise ToolError("the language model gave no answer; ask the question again")
            used = nearest(tl.frames, mentioned_times(f"{question} {text}")) or tl.frames
            speech, by = tl.speech.segments, "language model"
        else:
            used, speech, text, model = self.look_and_quote(ctx, tl, question, notes)
            by = f"vision-language model {model}"
            tl.vision_model = model
        text = with_notes(text, notes)
        evidence = {
            "frames": [{"time": round(f.time, 3), "image": f.image.id} for f in used],
            "speech": [{"start": s["start"], "end": s["end"]} for s in speech],
        }
        data = timeline.data_of(tl, notes) | {"question": question, "answered_by": by}
        data |= {"answer": text, "evidence": evidence}
        meta = {"source": args.video.id, "source_step": ctx.step_id, "question": question}
        name = f"{stem_of(args.video)}-answer-{slug(question, 'question')}.txt"
        art = ctx.store.add_text(text, name=name, metadata=meta)
        ctx.report(1.0, "done")
        first = text.splitlines()[0]
        return ToolResult(
            artifacts=[art, *(f.image for f in used)],
            data=data,
            summary=f"answer: {first[:80]}{'...' if len(first) > 80 else ''}",
        )

    @staticmethod
    def look_and_quote(
        ctx: ToolContext, tl: Timeline, question: str, notes: list[str]
    ) -> tuple[list[Frame], list[dict[str, Any]], str, str]:
        """Without a language model: the vision-language model's answer on the frames the
        question points at, and the speech that shares its words. Returns the frames, the
        speech segments, the text and the model."""
        used = frames_for(question, tl.frames, tl.info.duration)
        work = dataclasses.replace(ctx, models=manager_of(ctx))
        lines, model = [], ""
        for i, frame in enumerate(used):
            ctx.check_cancelled()
            lo, hi = 0.6 + 0.35 * i / len(used), 0.6 + 0.35 * (i + 1) / len(used)
            part = work.phase(lo, hi, stream=False)
            reply, model = look(part, frame.image, "ask", question)
            lines.append(f"{tl.span(frame.time)} frame: {shorten(reply, 600)}")
        asked = words_of(question)
        speech = [s for s in tl.speech.segments if asked & words_of(s["text"])][:MATCH_LINES]
        if speech:
            lines += ["", "Speech that shares words with the question:"]
            lines += [f"{tl.span(s['start'], s['end'])} speech: {s['text']}" for s in speech]
        notes.append(
            f"answered by the vision-language model {model} looking at {len(used)} keyframe(s); "
            "no language model is configured to weigh the whole video"
        )
        return used, speech, "\n".join(lines), model


describe_video = DescribeVideo()
ask_video = AskVideo()
