"""The LangGraph state machine: ingest -> plan -> [approve] -> execute -> check -> respond.

Execution (assistant/execute.py) is a loop of ``schedule`` and ``run_step``: ``schedule``
sends every step whose inputs are ready to ``run_step`` (one LangGraph task each, run
concurrently), so each finished step is checkpointed on its own and a resumed session never
redoes it.
"""

from __future__ import annotations

import logging
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from assistant.events import PlanReady, PlanRejected, Token
from assistant.execute import dispatch, run_step, schedule
from assistant.plan import Plan, PlanError, PlannerUnavailable, PlansUsedUp, validate_plan
from assistant.planners.base import PlanRequest, RespondRequest
from assistant.state import (
    RESET,
    RunContext,
    State,
    StepTask,
    artifacts_of,
    emit,
    tool_context,
)
from tools.artifact import Artifact
from tools.errors import ToolError

log = logging.getLogger(__name__)

# --- nodes -----------------------------------------------------------------------------------


def ingest(state: State, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Record the user's turn and start a fresh plan record."""
    atts = state.get("attachments") or []
    message = {"role": "user", "content": state.get("prompt", ""), "artifacts": atts}
    return {
        "messages": [message],
        "plan": None,
        "plan_error": None,
        "stop": False,
        "attempt": 0,
        "failures": [],
        "results": {RESET: True},
        "approved": None,
        "final": None,
    }


def plan(state: State, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    rc = runtime.context
    attempt = state.get("attempt", 0) + 1
    attachments = artifacts_of(state.get("attachments") or [])
    refs = {f"a{i}": [a] for i, a in enumerate(attachments, 1)}
    ctx = tool_context(rc, refs=refs)
    request = PlanRequest(
        prompt=state.get("prompt", ""),
        attachments=attachments,
        tools=rc.registry.specs(),
        history=(state.get("messages") or [])[:-1],
        attempt=attempt,
        failures=state.get("failures") or [],
        previous_plan=state.get("plan"),
        check=lambda p: validate_plan(p, rc.registry, attachments, ctx),
    )
    try:
        try:
            new_plan = rc.planner.plan(request)
        except (ToolError, OSError, RuntimeError, ValueError) as exc:
            if isinstance(exc, PlanError):
                raise
            log.exception("planner %s failed", rc.planner.name)
            raise PlannerUnavailable(f"the planner ({rc.planner.name}) failed: {exc}") from exc
        validate_plan(new_plan, rc.registry, attachments, ctx)
    except PlanError as exc:
        emit(PlanRejected(session=rc.session, error=str(exc), attempt=attempt))
        if isinstance(exc, PlansUsedUp):
            # Nothing new to try: stop, keeping the earlier attempt's record as the story.
            return {"attempt": attempt, "stop": True}
        failure = {"step": None, "tool": None, "error": str(exc)}
        return {
            "plan_error": str(exc),
            "attempt": attempt,
            "stop": isinstance(exc, PlannerUnavailable),
            "failures": [*(state.get("failures") or []), failure],
        }
    dumped = new_plan.model_dump()
    emit(PlanReady(session=rc.session, plan=dumped, attempt=attempt))
    return {"plan": dumped, "plan_error": None, "attempt": attempt, "results": {RESET: True}}


def _needs_approval(plan_: Plan, rc: RunContext) -> list[dict[str, Any]]:
    if rc.approve == "never":
        return []
    marked = [
        s for s in plan_.steps if rc.approve == "always" or rc.registry.get(s.tool).needs_approval
    ]
    return [s.model_dump() for s in marked]


def approve(state: State, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Pause for a human yes/no; resumed with ``Command(resume=True|False)``."""
    steps = _needs_approval(Plan.model_validate(state["plan"]), runtime.context)
    answer = interrupt({"steps": steps})
    ok = answer is True or (isinstance(answer, dict) and bool(answer.get("approved")))
    return {"approved": ok}


def check(state: State, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Collect failures of this attempt for the planner to see."""
    results = state.get("results") or {}
    new = [
        {"step": sid, "tool": r["tool"], "error": r["error"]}
        for sid, r in results.items()
        if r["status"] == "failed"
    ]
    return {"failures": [*(state.get("failures") or []), *new]} if new else {}


TEXT_EXCERPT_CHARS = 600
"""How much of a step's text output (a transcript, a caption, OCR) the responder sees, so it
can quote results instead of guessing them."""


def _text_excerpt(arts: list[Artifact]) -> str | None:
    for art in arts:
        if art.modality.value == "text":
            try:
                text = art.read_text().strip()
            except (OSError, UnicodeDecodeError):
                return None
            cut = len(text) > TEXT_EXCERPT_CHARS
            return text[:TEXT_EXCERPT_CHARS] + (" [...]" if cut else "")
    return None


def respond(state: State, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    rc = runtime.context
    plan_ = Plan.model_validate(state["plan"]) if state.get("plan") else None
    results = state.get("results") or {}
    steps = []
    artifacts: list[Artifact] = []
    for step in plan_.steps if plan_ else []:
        r = results.get(
            step.id,
            {"status": "not run", "error": None, "summary": "", "artifacts": [], "tool": step.tool},
        )
        arts = artifacts_of(r["artifacts"])
        artifacts += arts
        steps.append(
            {
                "id": step.id,
                "tool": step.tool,
                "status": r["status"],
                "summary": r.get("summary", ""),
                "error": r.get("error"),
                "artifacts": arts,
                "text": _text_excerpt(arts),
            }
        )
    plan_error = state.get("plan_error")
    ok = plan_ is not None and not plan_error and all(s["status"] == "ok" for s in steps)
    failures = list(state.get("failures") or [])
    if state.get("approved") is False:
        ok = False
        refused = ", ".join(f"{s['id']} ({s['tool']})" for s in steps)
        plan_error = f"you did not approve running {refused}, so nothing ran"
        steps = []
    request = RespondRequest(
        prompt=state.get("prompt", ""),
        status="ok" if ok else "failed",
        steps=steps,
        artifacts=artifacts,
        failures=failures,
        plan_error=plan_error,
        plan_reply=plan_.reply if plan_ else None,
    )
    chunks = []
    for token in rc.planner.respond(request):
        chunks.append(token)
        emit(Token(session=rc.session, text=token))
    text = "".join(chunks)
    dumped = [a.model_dump(mode="json") for a in artifacts]
    final = {
        "status": request.status,
        "text": text,
        "artifacts": dumped,
        "steps": dict(results),
    }
    return {
        "final": final,
        "messages": [{"role": "assistant", "content": text, "artifacts": dumped}],
    }


# --- edges -----------------------------------------------------------------------------------


def after_plan(state: State, *, runtime: Runtime[RunContext]) -> str:
    rc = runtime.context
    if state.get("stop"):
        return "respond"
    if state.get("plan_error") is not None:
        return "plan" if state["attempt"] <= rc.max_replans else "respond"
    plan_ = Plan.model_validate(state["plan"])
    if not plan_.steps:
        return "respond"
    return "approve" if _needs_approval(plan_, rc) else "schedule"


def after_approve(state: State) -> str:
    return "schedule" if state.get("approved") else "respond"


def after_check(state: State, *, runtime: Runtime[RunContext]) -> str:
    rc = runtime.context
    failed = any(r["status"] == "failed" for r in (state.get("results") or {}).values())
    if failed and not rc.cancel.is_set() and state["attempt"] <= rc.max_replans:
        return "plan"
    return "respond"


def build_graph(checkpointer: Any = None) -> Any:
    g = StateGraph(State, context_schema=RunContext)
    g.add_node("ingest", ingest)
    g.add_node("plan", plan)
    g.add_node("approve", approve)
    g.add_node("schedule", schedule)
    # A Send target takes its own input, which the overloads do not model.
    g.add_node("run_step", run_step, input_schema=StepTask)  # type: ignore[call-overload]
    g.add_node("check", check)
    g.add_node("respond", respond)
    g.add_edge(START, "ingest")
    g.add_edge("ingest", "plan")
    g.add_conditional_edges("plan", after_plan, ["plan", "approve", "schedule", "respond"])
    g.add_conditional_edges("approve", after_approve, ["schedule", "respond"])
    g.add_conditional_edges("schedule", dispatch, ["run_step", "check"])
    g.add_edge("run_step", "schedule")
    g.add_conditional_edges("check", after_check, ["plan", "respond"])
    g.add_edge("respond", END)
    return g.compile(checkpointer=checkpointer)


__all__ = ["RunContext", "State", "build_graph"]
