"""What the graph carries: the checkpointed state, its reducers, and the live run context."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.config import get_stream_writer

from assistant.planners.base import Planner
from tools.artifact import Artifact, ArtifactStore
from tools.base import ToolContext
from tools.models import ModelManager
from tools.registry import Registry
from tools.settings import ToolSettings

RESET = "__reset__"


def merge_results(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Step results accumulate; ``{RESET: True}`` starts a fresh plan's record."""
    if new.get(RESET):
        return {k: v for k, v in new.items() if k != RESET}
    return {**(old or {}), **new}


def add_messages(old: list[Any] | None, new: list[Any]) -> list[Any]:
    return [*(old or []), *new]


class State(TypedDict, total=False):
    prompt: str
    attachments: list[dict[str, Any]]
    """This turn's attachments (artifact dicts with cheap facts in their metadata)."""
    messages: Annotated[list[dict[str, Any]], add_messages]
    """The session's conversation: ``{role, content, artifacts}``, never shortened."""
    script: list[dict[str, Any]] | None
    """Plans given up front (``--plan``); kept so a resumed run can re-plan the same way."""
    plan: dict[str, Any] | None
    """The plan being run (or the last one that ran, if re-planning failed)."""
    stop: bool
    """True once planning gave up: go straight to the reply."""
    plan_error: str | None
    """Why the latest planning attempt produced nothing runnable, if it did not."""
    attempt: int
    failures: list[dict[str, Any]]
    results: Annotated[dict[str, dict[str, Any]], merge_results]
    approved: bool | None
    final: dict[str, Any] | None


class StepTask(TypedDict):
    """What ``schedule`` sends to one ``run_step`` task."""

    step: dict[str, Any]
    refs: dict[str, list[dict[str, Any]]]
    """Attachments and the outputs of the steps this one depends on."""


@dataclass
class RunContext:
    """The live objects a run uses; never checkpointed."""

    session: str
    registry: Registry
    planner: Planner
    store: ArtifactStore
    workspace: Path
    settings: ToolSettings
    step_timeout: float
    max_replans: int
    approve: str
    models: ModelManager
    config: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)
    allowed_roots: tuple[Path, ...] = ()
    llm: Any = None
    memory: Any = None
    """``llm(messages, on_token) -> text`` for text tools; loads the model on first use."""


def emit(event: Any) -> None:
    get_stream_writer()(event)


def artifacts_of(items: list[dict[str, Any]]) -> list[Artifact]:
    return [Artifact.model_validate(a) for a in items]


def tool_context(
    rc: RunContext,
    step_id: str = "",
    refs: dict[str, list[Artifact]] | None = None,
    progress: Any = None,
) -> ToolContext:
    ctx = ToolContext(
        store=rc.store,
        workspace=rc.workspace,
        settings=rc.settings,
        models=rc.models,
        config=rc.config,
        step_id=step_id,
        refs=refs or {},
        allowed_roots=rc.allowed_roots,
        llm=rc.llm,
        memory=rc.memory,
        session=rc.session,
    )
    if progress is not None:
        ctx.progress_fn = progress
    return ctx
