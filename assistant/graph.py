"""The LangGraph state machine: ingest -> plan -> [approve] -> execute -> check -> respond.

Execution is a loop of ``schedule`` and ``run_step``: ``schedule`` sends every step whose
inputs are ready to ``run_step`` (one LangGraph task each, run concurrently), so each finished
step is checkpointed on its own and a resumed session never redoes it.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send, interrupt

from assistant.events import (
    PlanReady,
    PlanRejected,
    StepFailed,
    StepFinished,
    StepProgress,
    StepStarted,
    Token,
)
from assistant.plan import (
    Plan,
    PlanError,
    PlannerUnavailable,
    PlansUsedUp,
    references,
    validate_plan,
)
from assistant.planners.base import Planner, PlanRequest, RespondRequest
from tools.artifact import Artifact, ArtifactStore
from tools.base import Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.models import ModelManager
from tools.registry import Registry
from tools.settings import ToolSettings

log = logging.getLogger(__name__)

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
    """``llm(messages, on_token) -> text`` for text tools; loads the model on first use."""


def _emit(event: Any) -> None:
    get_stream_writer()(event)


def _artifacts(items: list[dict[str, Any]]) -> list[Artifact]:
    return [Artifact.model_validate(a) for a in items]


def _tool_context(
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
    )
    if progress is not None:
        ctx.progress_fn = progress
    return ctx


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
    attachments = _artifacts(state.get("attachments") or [])
    refs = {f"a{i}": [a] for i, a in enumerate(attachments, 1)}
    ctx = _tool_context(rc, refs=refs)
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
        _emit(PlanRejected(session=rc.session, error=str(exc), attempt=attempt))
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
    _emit(PlanReady(session=rc.session, plan=dumped, attempt=attempt))
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


def _blocked_by(step_refs: list[str], results: dict[str, Any]) -> str | None:
    for name in step_refs:
        r = results.get(name)
        if r is not None and r["status"] != "ok":
            return name
    return None


def schedule(state: State, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Mark steps that can no longer run (a dependency failed, or the run was cancelled)."""
    plan_ = Plan.model_validate(state["plan"])
    results = state.get("results") or {}
    deps = plan_.dependencies()
    marks: dict[str, Any] = {}
    changed = True
    while changed:  # skipping one step may block the steps after it
        changed = False
        for step in plan_.steps:
            if step.id in results or step.id in marks:
                continue
            if runtime.context.cancel.is_set():
                error = "cancelled before it started"
            elif blocker := _blocked_by(sorted(deps[step.id]), {**results, **marks}):
                error = f"skipped: it needs the output of {blocker}, which did not finish"
            else:
                continue
            marks[step.id] = {
                "tool": step.tool,
                "status": "skipped",
                "error": error,
                "artifacts": [],
                "data": {},
                "summary": "",
            }
            changed = True
    return {"results": marks} if marks else {}


def dispatch(state: State) -> list[Send] | Literal["check"]:
    plan_ = Plan.model_validate(state["plan"])
    results = state.get("results") or {}
    deps = plan_.dependencies()
    attachments = state.get("attachments") or []
    sends = []
    for step in plan_.steps:
        if step.id in results or any(d not in results for d in deps[step.id]):
            continue
        refs = {f"a{i}": [a] for i, a in enumerate(attachments, 1)}
        refs.update({d: results[d]["artifacts"] for d in deps[step.id]})
        task: StepTask = {"step": step.model_dump(), "refs": refs}
        sends.append(Send("run_step", task))
    return sends or "check"


def run_step(payload: StepTask, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Run one tool with a timeout; the result (or error) is the step's checkpointed record."""
    rc = runtime.context
    step = payload["step"]
    sid, tool_name = step["id"], step["tool"]
    writer = get_stream_writer()

    def progress(fraction: float, message: str, preview: Artifact | None) -> None:
        writer(
            StepProgress(
                session=rc.session, step=sid, fraction=fraction, message=message, preview=preview
            )
        )

    refs = {k: _artifacts(v) for k, v in payload["refs"].items()}
    ctx = _tool_context(rc, sid, refs, progress)
    ctx.token_fn = lambda text: writer(Token(session=rc.session, text=text, step=sid))
    tool = rc.registry.get(tool_name)
    timeout = tool.timeout or rc.step_timeout
    writer(StepStarted(session=rc.session, step=sid, tool=tool_name))
    start = time.perf_counter()
    result, error = _run_with_timeout(tool, step["args"], ctx, timeout, rc.cancel)
    seconds = round(time.perf_counter() - start, 4)
    if error is not None:
        writer(
            StepFailed(session=rc.session, step=sid, tool=tool_name, error=error, seconds=seconds)
        )
        record = {
            "tool": tool_name,
            "status": "failed",
            "error": error,
            "artifacts": [],
            "data": {},
            "summary": "",
            "seconds": seconds,
        }
    else:
        assert result is not None
        writer(
            StepFinished(
                session=rc.session,
                step=sid,
                tool=tool_name,
                artifacts=result.artifacts,
                data=result.data,
                summary=result.summary,
                seconds=seconds,
            )
        )
        record = {
            "tool": tool_name,
            "status": "ok",
            "error": None,
            "artifacts": [a.model_dump(mode="json") for a in result.artifacts],
            "data": result.data,
            "summary": result.summary,
            "seconds": seconds,
        }
    return {"results": {sid: record}}


def _run_with_timeout(
    tool: Tool, args: dict[str, Any], ctx: ToolContext, timeout: float, cancel: threading.Event
) -> tuple[ToolResult | None, str | None]:
    """Run in a worker thread; stop waiting at the timeout or on cancel and say so.

    The tool is told through ``ctx.cancel_event``; a tool that never checks it is left
    running in its (daemon) thread, but the run goes on without it.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = tool.run(tool.parse(args, ctx), ctx)
        except ToolError as exc:
            box["error"] = str(exc)
        except Exception as exc:
            log.exception("tool %s crashed", tool.name)
            box["error"] = f"{tool.name} crashed: {type(exc).__name__}: {exc}"
        finally:
            done.set()

    # The copied context carries LangGraph's run config, so the tool's progress and tokens
    # reach the event stream from its own thread.
    context = contextvars.copy_context()
    threading.Thread(
        target=context.run, args=(target,), name=f"step-{ctx.step_id}", daemon=True
    ).start()
    deadline = time.monotonic() + timeout
    while not done.wait(min(0.2, max(0.0, deadline - time.monotonic()))):
        if cancel.is_set():
            ctx.cancel_event.set()
            return None, "cancelled"
        if time.monotonic() >= deadline:
            ctx.cancel_event.set()
            return None, f"timed out after {timeout:g}s and was stopped"
    if "error" in box:
        return None, box["error"]
    result = box["result"]
    if not isinstance(result, ToolResult):
        return None, f"{tool.name} returned {type(result).__name__} instead of a ToolResult"
    return result, None


def check(state: State, *, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Collect failures of this attempt for the planner to see."""
    results = state.get("results") or {}
    new = [
        {"step": sid, "tool": r["tool"], "error": r["error"]}
        for sid, r in results.items()
        if r["status"] == "failed"
    ]
    return {"failures": [*(state.get("failures") or []), *new]} if new else {}


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
        arts = _artifacts(r["artifacts"])
        artifacts += arts
        steps.append(
            {
                "id": step.id,
                "tool": step.tool,
                "status": r["status"],
                "summary": r.get("summary", ""),
                "error": r.get("error"),
                "artifacts": arts,
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
        _emit(Token(session=rc.session, text=token))
    text = "".join(chunks)
    dumped = [a.model_dump(mode="json") for a in artifacts]
    final = {
        "status": request.status,
        "text": text,
        "artifacts": dumped,
        "steps": {sid: {k: v for k, v in r.items()} for sid, r in results.items()},
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


__all__ = ["RunContext", "State", "build_graph", "references"]
