"""The one typed event stream every surface consumes (CLI, TUI, HTTP, robot loops)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from tools.artifact import Artifact


class _Event(BaseModel):
    session: str = ""


class PlanReady(_Event):
    type: Literal["plan_ready"] = "plan_ready"
    plan: dict[str, Any]
    attempt: int = 1
    """1 for the first plan, 2 and up for re-plans after a failure."""


class PlanRejected(_Event):
    type: Literal["plan_rejected"] = "plan_rejected"
    error: str
    attempt: int = 1


class StepStarted(_Event):
    type: Literal["step_started"] = "step_started"
    step: str
    tool: str


class StepProgress(_Event):
    type: Literal["step_progress"] = "step_progress"
    step: str
    fraction: float
    message: str = ""
    preview: Artifact | None = None


class StepFinished(_Event):
    type: Literal["step_finished"] = "step_finished"
    step: str
    tool: str
    artifacts: list[Artifact] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)
    summary: str = ""
    seconds: float = 0.0


class StepFailed(_Event):
    type: Literal["step_failed"] = "step_failed"
    step: str
    tool: str
    error: str
    seconds: float = 0.0


class ApprovalRequired(_Event):
    type: Literal["approval_required"] = "approval_required"
    steps: list[dict[str, Any]]
    """The steps waiting for a yes: ``{id, tool, args}``."""


class Token(_Event):
    type: Literal["token"] = "token"
    text: str
    step: str | None = None
    """The step writing this text (a text tool), or None for the final answer."""


class RunResult(BaseModel):
    """What a run ends with: the reply, the artifacts, and how each step went."""

    session: str
    status: Literal["ok", "failed", "interrupted"]
    text: str
    artifacts: list[Artifact] = Field(default_factory=list)
    steps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Step id -> ``{tool, status, summary, error, data, artifacts}``."""
    plan: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict[str, Any]:
        """The ``anymodal run --json`` shape."""
        return {
            "session": self.session,
            "status": self.status,
            "text": self.text,
            "artifacts": [
                {
                    "id": a.id,
                    "modality": a.modality.value,
                    "path": a.path,
                    "mime": a.mime,
                    "metadata": a.metadata,
                }
                for a in self.artifacts
            ],
        }


class Final(_Event):
    type: Literal["final"] = "final"
    result: RunResult


Event = Annotated[
    PlanReady
    | PlanRejected
    | StepStarted
    | StepProgress
    | StepFinished
    | StepFailed
    | ApprovalRequired
    | Token
    | Final,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
