"""The planner interface every backend implements, and the template responder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from assistant.plan import Plan, PlanError, PlannerUnavailable
from tools.artifact import Artifact


@dataclass
class PlanRequest:
    """Everything a planner may read to plan one turn."""

    prompt: str
    attachments: list[Artifact]
    tools: list[dict[str, Any]]
    """Tool specs: name, description, input JSON schema, input and output modalities."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Earlier messages of the session: ``{role, content, artifacts}``."""
    attempt: int = 1
    """1 for a fresh plan; 2 and up when re-planning after a failure."""
    failures: list[dict[str, Any]] = field(default_factory=list)
    """What went wrong before: ``{step, tool, error}`` (step is None for a rejected plan)."""
    previous_plan: dict[str, Any] | None = None


@dataclass
class RespondRequest:
    """What the responder writes the final answer from."""

    prompt: str
    status: str
    """'ok' or 'failed'."""
    steps: list[dict[str, Any]]
    """In plan order: ``{id, tool, status, summary, error, artifacts}``."""
    artifacts: list[Artifact]
    failures: list[dict[str, Any]]
    plan_error: str | None = None
    """Why the last planning attempt failed, when it did."""
    plan_reply: str | None = None
    """Text the plan itself carried (a plan with no steps is a plain reply)."""


class Planner:
    """A backend that plans (``plan``) and answers (``respond``, streaming tokens).

    Backends without a language model keep the template responder below.
    """

    name = "base"

    def plan(self, request: PlanRequest) -> Plan:
        raise NotImplementedError

    def respond(self, request: RespondRequest) -> Iterator[str]:
        from prompts import render

        yield render("respond.md.j2", r=request).strip()


class NoPlanner(Planner):
    """Stands in when no planner model is installed: it says so and how to go on."""

    name = "none"

    def plan(self, request: PlanRequest) -> Plan:
        raise PlannerUnavailable(
            "no planner model is installed, so free-form requests cannot be planned yet; "
            "run a written plan with `anymodal run --plan plan.json` (see the README)"
        )


def make_planner(kind: str, script: list[dict[str, Any]] | None = None) -> Planner:
    """The planner for a run: a scripted one when plans were given, else by config."""
    from assistant.planners.scripted import ScriptedPlanner

    if script:
        return ScriptedPlanner([Plan.parse(p) for p in script])
    if kind == "scripted":
        raise PlanError("planner = 'scripted' needs a plan: pass --plan FILE or plan=...")
    return NoPlanner()
