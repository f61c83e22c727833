"""How the main screen looks (pytest-textual-snapshot): a text reply, an image artifact, an
audio artifact and a running plan, each from a real run of model-free tools.

Snapshots are SVG files in ``__snapshots__/``; after a deliberate change of the look, look at
the report and accept with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
Times and the session id are frozen so the pictures do not change from run to run.
"""

from __future__ import annotations

import shutil
import time
import types
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from assistant import Assistant
from assistant.config import Config
from tests.tui.pilot import finished, make_assistant, one_step, send, until
from tools import ToolContext, ToolResult
from tools.base import Tool
from tui.app import AnymodalApp
from tui.chat import AssistantMessage

SIZE = (110, 34)


class HoldArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 20.0


class Hold(Tool):
    """Reports 40% once, then waits (checking for cancellation): a plan caught mid-step."""

    name = "hold"
    description = "Wait part way through (a model run caught mid-way)."
    inputs = HoldArgs

    def run(self, args: HoldArgs, ctx: ToolContext) -> ToolResult:
        ctx.report(0.4, "denoising step 4 of 10")
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            ctx.check_cancelled()
            time.sleep(0.02)
        return ToolResult(summary="held")


@pytest.fixture(autouse=True)
def frozen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fixed elapsed times (step timings and the plan panel's clock), session id and paths:
    files are named relative to the working folder, and the store is under ``~``."""
    monkeypatch.setattr(
        "assistant.execute.time", types.SimpleNamespace(perf_counter=lambda: 0.0, **_real())
    )
    monkeypatch.setattr("tui.plan.time", types.SimpleNamespace(monotonic=lambda: 100.0))
    session = "20261121-090000-a1b2c3"
    monkeypatch.setattr("assistant.api.new_session_id", lambda: session)
    monkeypatch.setattr("assistant.sessions.new_session_id", lambda: session)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)


def _real() -> dict[str, Any]:
    return {"monotonic": time.monotonic, "sleep": time.sleep, "time": time.time}


def _app(*plans: Any, assistant: Assistant | None = None) -> AnymodalApp:
    config = Config(tui={"images": "halfcell"})  # the same picture in every terminal
    assistant = assistant or make_assistant(config=config)
    assistant.registry.add(Hold())
    return AnymodalApp(assistant, plans=list(plans))


def _copy(src: Path) -> str:
    """A copy in the working folder, to name in a message by its bare file name."""
    shutil.copyfile(src, src.name)
    return src.name


def test_a_text_reply(snap_compare):
    app = _app(
        {"steps": [], "reply": "Paris is the capital of **France**.\n\n```python\nprint('hi')\n```"}
    )

    async def run_before(pilot: Any) -> None:
        pilot.app.composer.cursor_blink = False  # the cursor is always drawn
        await send(pilot, "what is the capital of France?")
        await finished(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_an_image_artifact(snap_compare, media):
    photo = _copy(media / "11135.jpg")
    app = _app(one_step("resize_image", image="$a1", width=48))

    async def run_before(pilot: Any) -> None:
        pilot.app.composer.cursor_blink = False  # the cursor is always drawn
        await send(pilot, f"make {photo} 48 pixels wide")
        await finished(pilot)
        await until(pilot, lambda: bool(pilot.app.query(AssistantMessage).last().artifacts))

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_an_audio_artifact(snap_compare, media):
    speech = _copy(media / "1284-1180-0003.flac")
    app = _app(one_step("trim_audio", audio="$a1", start=0.5, end=3.0))

    async def run_before(pilot: Any) -> None:
        pilot.app.composer.cursor_blink = False  # the cursor is always drawn
        await send(pilot, f"keep 0.5 to 3 seconds of {speech}")
        await finished(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_a_running_plan(snap_compare, media):
    photo = _copy(media / "11135.jpg")
    plan = {
        "steps": [
            {"id": "s1", "tool": "rotate_image", "args": {"image": "$a1", "degrees": 90}},
            {"id": "s2", "tool": "hold", "args": {}},
            {"id": "s3", "tool": "resize_image", "args": {"image": "$s1", "width": 32}},
        ]
    }
    app = _app(plan)

    async def run_before(pilot: Any) -> None:
        pilot.app.composer.cursor_blink = False  # the cursor is always drawn
        await send(pilot, f"turn {photo} and wait")
        row = lambda: pilot.app.plan_panel.row("s2")  # noqa: E731
        await until(pilot, lambda: row() is not None and row().fraction == 0.4)
        await until(pilot, lambda: pilot.app.plan_panel.row("s1").status == "done")
        await pilot.pause(0.3)  # the batched progress reaches the screen

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)  # the exit cancels
    assert app.assistant.running() == [] or not _wait_idle(app.assistant)


def _wait_idle(assistant: Assistant, seconds: float = 10.0) -> bool:
    """True when turns are still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while assistant.running() and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(assistant.running())
