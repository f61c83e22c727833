"""Driving the chat app in tests: an Assistant with test tools, scripted plans, waiting."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from assistant import Assistant
from assistant.planners.base import NoPlanner
from tools import Modality, Registry, Tool, ToolContext, ToolResult
from tui.app import AnymodalApp

SIZE = (120, 40)


class SlowArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 30.0


class Slow(Tool):
    """Sleeps in small steps checking for cancellation, reporting progress now and then
    (as a model run does: a report per denoising step, not per millisecond)."""

    name = "slow"
    description = "Wait a while (a stand-in for a long model run)."
    inputs = SlowArgs

    def run(self, args: SlowArgs, ctx: ToolContext) -> ToolResult:
        start = reported = time.monotonic()
        ctx.report(0.01, "starting")
        while (spent := time.monotonic() - start) < args.seconds:
            ctx.check_cancelled()
            if time.monotonic() - reported > 0.25:
                ctx.report(spent / args.seconds, f"{spent:.1f}s")
                reported = time.monotonic()
            time.sleep(0.01)
        return ToolResult(summary="waited")


class StampArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class Stamp(Tool):
    """Writes a text artifact, but only once the user has approved it."""

    name = "stamp"
    description = "Write a text file (asks first)."
    inputs = StampArgs
    outputs = (Modality.TEXT,)
    needs_approval = True

    def run(self, args: StampArgs, ctx: ToolContext) -> ToolResult:
        art = ctx.store.add_text(args.text, name="stamp.txt")
        return ToolResult(artifacts=[art], summary="stamped")


def make_assistant(**overrides: Any) -> Assistant:
    """The built-in tools, the test plugins, Slow and Stamp; no planner model (a message
    without a scripted plan gets the 'no planner' reply at once)."""
    registry = Registry.discover(["tests.plugin_tools"])
    registry.add(Slow())
    registry.add(Stamp())
    overrides.setdefault("planner", NoPlanner("no planner model in this test"))
    return Assistant(registry=registry, **overrides)


def one_step(tool: str, **args: Any) -> dict[str, Any]:
    return {"steps": [{"id": "s1", "tool": tool, "args": args}]}


async def until(pilot: Any, check: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check.__doc__ or check}")
        await pilot.pause(0.02)


async def send(pilot: Any, text: str) -> None:
    app = pilot.app
    app.composer.load_text(text)
    await pilot.press("enter")


async def finished(pilot: Any) -> None:
    app = pilot.app
    await until(pilot, lambda: not app.running)
    await app.workers.wait_for_complete()
    await pilot.pause()


def notes(app: AnymodalApp) -> list[str]:
    return [n.message for n in app._notifications]
