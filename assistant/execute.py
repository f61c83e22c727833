"""Running a plan's steps: ``schedule`` sends every step whose inputs are ready to
``run_step`` (one LangGraph task each, run concurrently, each checkpointed when it ends), and
``run_step`` runs one tool in a worker thread with a timeout."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from typing import Any, Literal

from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime
from langgraph.types import Send

from assistant.events import StepFailed, StepFinished, StepProgress, StepStarted, Token
from assistant.plan import Plan
from assistant.state import RunContext, State, StepTask, artifacts_of, tool_context
from tools.artifact import Artifact
from tools.base import Tool, ToolContext, ToolResult
from tools.errors import ToolError

log = logging.getLogger(__name__)


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

    refs = {k: artifacts_of(v) for k, v in payload["refs"].items()}
    ctx = tool_context(rc, sid, refs, progress)
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
