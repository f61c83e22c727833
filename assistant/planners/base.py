"""The planner interface every backend implements, and the template responder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.plan import Plan, PlanError, PlannerUnavailable
from tools.artifact import Artifact
from tools.errors import ToolError


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
    check: Callable[[Plan], None] | None = None
    """Raises ``PlanError`` if a plan cannot run (tools, arguments, references, cycles), so
    a planner can repair its answer before handing it over."""


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
    """Stands in when no planner model can run: it says why and how to go on."""

    name = "none"

    def __init__(self, reason: str = ""):
        self.reason = reason or "no planner model is installed"

    def plan(self, request: PlanRequest) -> Plan:
        raise PlannerUnavailable(
            f"{self.reason}; so free-form requests cannot be planned. Run a written plan with "
            "`anymodal run --plan plan.json` (see the README), or configure a planner"
        )


def model_file(name: str, models: Any) -> Path:
    """A model given as a path, or a catalog name resolved (and verified) by the manager."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    return Path(models.path(name))


def make_planner(
    config: Any,
    models: Any,
    script: list[dict[str, Any]] | None = None,
    given: Planner | None = None,
) -> Planner:
    """The planner for a run: a scripted one when plans were given (answering through
    ``given`` if there is one), else ``given``, else the configured one.

    'auto' is llama.cpp on its catalog model when that model is installed. A backend that
    cannot start gives a ``NoPlanner`` that explains why, so the run still ends with a reply.
    """
    from assistant.planners.scripted import ScriptedPlanner

    if script:
        return ScriptedPlanner([Plan.parse(p) for p in script], responder=given)
    if given is not None:
        return given
    if config.planner == "scripted":
        raise PlanError("planner = 'scripted' needs a plan: pass --plan FILE or plan=...")
    try:
        return configured_planner(config, models)
    except ToolError as exc:
        return NoPlanner(f"the {config.planner} planner cannot start: {exc}")


def configured_planner(config: Any, models: Any) -> Any:
    """The language-model planner the config names ('scripted' and 'auto' mean llama.cpp).

    Raises ``ToolError`` when it cannot start (model missing, extra not installed).
    """
    kind = config.planner
    if kind == "openai":
        from assistant.planners.openai import openai_planner

        return openai_planner(config)
    if kind == "transformers":
        from assistant.planners.vlm import transformers_planner

        return transformers_planner(config, models)
    return _llama_planner(config, models)


def _llama_planner(config: Any, models: Any) -> Planner:
    from assistant.planners.llamacpp import LlamaCppBackend
    from assistant.planners.llm import LLMPlanner
    from assistant.planners.shortlist import EMBEDDER, Shortlist
    from memory.embed import MiniLMEmbedder

    c = config.llama
    path = model_file(c.model, models)
    mmproj = model_file(c.mmproj, models) if c.mmproj else None
    backend = models.load(
        f"llama.cpp:{path}",
        lambda: LlamaCppBackend(
            path,
            mmproj=mmproj,
            n_ctx=c.n_ctx,
            threads=c.threads,
            temperature=c.temperature,
            prefix_cache=c.prefix_cache,
        ),
        size_bytes=path.stat().st_size,
    )

    def embedder() -> Any:
        return models.load(EMBEDDER, lambda: MiniLMEmbedder(models.path(EMBEDDER)))

    return LLMPlanner(
        backend, max_tokens=c.max_tokens, shortlist=Shortlist(embedder, config.shortlist_size)
    )
