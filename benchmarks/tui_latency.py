"""The terminal UI's responsiveness: time from launch to ready, and key-to-screen latency while
a tool runs (issue 9's figures).

- launch: importing ``tui.app`` in a fresh process (the cold start a user waits for, before
  the first frame), and, in this process, from constructing the app to the composer having
  focus in Textual's headless driver (mounting, CSS, first layout);
- keys: while a tool busy-waits in the graph's worker thread (holding the GIL in Python code,
  the worst case for a UI in the same process), each key is pressed through Textual's Pilot and
  timed until the app has handled it and the composer shows it; also the event loop's stalls
  (how late a 10 ms timer fires) over the same stretch.

Headless figures: a real terminal adds its own drawing time. Writes
benchmarks/results/tui_latency.json.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

from pydantic import BaseModel, ConfigDict
from results_io import write_results
from textual import events

from assistant import Assistant
from assistant.planners.base import NoPlanner
from tools import Registry, Tool, ToolContext, ToolResult
from tui.app import AnymodalApp

ROUNDS = 5
KEYS = 60
SIZE = (120, 40)


class SpinArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 60.0


class Spin(Tool):
    """Busy Python work in the worker thread, reporting progress 20 times a second."""

    name = "spin"
    description = "Keep a CPU busy in Python for a while."
    inputs = SpinArgs

    def run(self, args: SpinArgs, ctx: ToolContext) -> ToolResult:
        start = last = time.monotonic()
        while (spent := time.monotonic() - start) < args.seconds:
            ctx.check_cancelled()
            sum(i * i for i in range(2000))  # pure Python: holds the GIL in short slices
            if spent - (last - start) > 0.05:
                ctx.report(spent / args.seconds, f"{spent:.1f}s")
                last = time.monotonic()
        return ToolResult(summary="spun")


def _assistant() -> Assistant:
    registry = Registry.discover()
    registry.add(Spin())
    return Assistant(registry=registry, planner=NoPlanner("benchmark"))


def cold_import_s() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import tui.app"], check=True, capture_output=True)
    return time.perf_counter() - t0


async def mount_to_ready_s() -> float:
    t0 = time.perf_counter()
    app = AnymodalApp(_assistant())
    async with app.run_test(size=SIZE) as pilot:
        while app.focused is not app.composer:
            await pilot.pause(0.001)
        return time.perf_counter() - t0


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def keys_while_a_tool_runs() -> dict[str, Any]:
    plan = {"steps": [{"id": "s1", "tool": "spin", "args": {"seconds": 120}}]}
    app = AnymodalApp(_assistant(), plans=[plan])
    stalls: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        app.composer.load_text("spin")
        await pilot.press("enter")
        while (row := app.plan_panel.row("s1")) is None or row.fraction <= 0:
            await pilot.pause(0.02)

        async def watch() -> None:
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                stalls.append(time.perf_counter() - t - 0.01)

        watcher = asyncio.create_task(watch())
        times = [await _key(app, "abcdefghij"[i % 10]) for i in range(KEYS)]
        watcher.cancel()
        await pilot.press("escape")
        while app.running:
            await pilot.pause(0.02)
    return {"keys": KEYS, "key_to_screen": _percentiles(times), "loop_stall": _percentiles(stalls)}


async def _key(app: AnymodalApp, key: str) -> float:
    """Seconds from posting ``key`` to the app until the composer holds it and the screen has
    been redrawn. (Pilot's ``press`` waits for the app to fall idle, which a UI showing live
    progress never quite does, so it would time the progress, not the key.)"""
    before = app.composer.text
    t0 = time.perf_counter()
    app.post_message(events.Key(key, key))
    while app.composer.text == before:
        await asyncio.sleep(0.0005)
    await app.screen.wait_for_refresh()  # the frame that shows it
    elapsed = time.perf_counter() - t0
    if not app.composer.text.endswith(key):
        raise RuntimeError(f"key {key!r} did not reach the composer")
    return elapsed


async def idle_keys() -> dict[str, Any]:
    app = AnymodalApp(_assistant())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        times = [await _key(app, "abcdefghij"[i % 10]) for i in range(KEYS)]
    return {"keys": KEYS, "key_to_screen": _percentiles(times)}


def main() -> None:
    cold = [cold_import_s() for _ in range(ROUNDS)]
    ready = [asyncio.run(mount_to_ready_s()) for _ in range(ROUNDS)]
    figures = {
        "driver": "Textual headless (App.run_test); a real terminal adds its drawing time",
        "launch": {
            "cold_import_tui_app_s": round(statistics.median(cold), 3),
            "mount_to_ready_s": round(statistics.median(ready), 3),
            "rounds": ROUNDS,
        },
        "idle": asyncio.run(idle_keys()),
        "while_a_tool_runs": asyncio.run(keys_while_a_tool_runs()),
        "target_key_ms": 100,
    }
    write_results("tui_latency", figures)


if __name__ == "__main__":
    main()
