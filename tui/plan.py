"""The plan panel: one row per step, fed by the run's events (started, progress, finished).

Rows are keyed by step id; a re-plan (``PlanReady`` with a higher attempt) replaces them all.
Elapsed seconds tick from a single panel timer rather than one timer per row.
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, ProgressBar, Static

STATUSES = ("waiting", "running", "done", "failed", "skipped", "cancelled")
"""What a row can show; each is also a CSS class on the row."""


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "..."


class StepRow(Vertical):
    """One step: id, tool, status, a progress bar, elapsed seconds, then a detail line."""

    def __init__(self, step: dict[str, Any]) -> None:
        self.step_id = str(step["id"])
        super().__init__(classes="step waiting", id=f"step-{self.step_id}")
        self.tool = str(step.get("tool", ""))
        self.status = "waiting"
        self.started: float | None = None
        self.seconds: float | None = None
        """Final elapsed time (from the event) once the step has ended."""
        self.detail = ""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="step-head"):
            yield Label(self.step_id, classes="step-id")
            yield Label(self.tool, classes="step-tool")
            yield Label(self.status, classes="step-status")
            yield ProgressBar(total=1.0, show_eta=False, show_percentage=False, classes="step-bar")
            yield Label("", classes="step-time")
        yield Static("", classes="step-detail", markup=False)

    def set_status(self, status: str) -> None:
        self.remove_class(self.status)
        self.status = status
        self.add_class(status)
        self.query_one(".step-status", Label).update(status)

    def set_detail(self, text: str) -> None:
        self.detail = _one_line(text)
        self.query_one(".step-detail", Static).update(self.detail)

    def set_fraction(self, fraction: float) -> None:
        self.query_one(ProgressBar).update(progress=max(0.0, min(1.0, fraction)))

    @property
    def fraction(self) -> float:
        return float(self.query_one(ProgressBar).progress)

    def tick(self) -> None:
        """Show the elapsed seconds: live while running, the measured time once ended."""
        if self.seconds is not None:
            shown = self.seconds
        elif self.started is not None:
            shown = time.monotonic() - self.started
        else:
            return
        self.query_one(".step-time", Label).update(f"{shown:.1f}s")


class PlanPanel(VerticalScroll):
    """The current plan's steps; empty (and hidden by CSS) until a plan arrives."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.border_title = "plan"
        self.attempt = 0
        self.planning_since: float | None = None

    def on_mount(self) -> None:
        self.set_interval(0.5, self._tick)

    def _tick(self) -> None:
        for row in self.query(StepRow):
            if row.status == "running":
                row.tick()
        if self.planning_since is not None:
            seconds = time.monotonic() - self.planning_since
            for note in self.query("#planning").results(Static):
                note.update(f"the planner is choosing tools… {seconds:.0f}s")

    async def planning(self) -> None:
        """Say the planner is at work until the plan arrives: with a model on a CPU that takes
        seconds (more on first use, while it loads)."""
        await self.remove_children()
        self.attempt = 0
        self.border_title = "planning"
        self.planning_since = time.monotonic()
        await self.mount(Static("the planner is choosing tools…", id="planning"))
        self.add_class("active")

    def rows(self) -> dict[str, StepRow]:
        return {row.step_id: row for row in self.query(StepRow)}

    def row(self, step: str) -> StepRow | None:
        return self.rows().get(step)

    async def show_plan(self, plan: dict[str, Any], attempt: int = 1) -> None:
        """Replace the rows with ``plan``'s steps (a re-plan says which attempt it is)."""
        self.planning_since = None
        await self.remove_children()
        self.attempt = attempt
        self.border_title = "plan" if attempt <= 1 else f"plan (attempt {attempt})"
        steps = plan.get("steps") or []
        await self.mount_all([StepRow(step) for step in steps])
        self.set_class(bool(steps), "active")  # a plain answer needs no plan beside it

    async def clear(self) -> None:
        self.planning_since = None
        await self.remove_children()
        self.attempt = 0
        self.border_title = "plan"
        self.remove_class("active")

    def started(self, step: str) -> None:
        if (row := self.row(step)) is not None:
            row.started = time.monotonic()
            row.set_status("running")
            row.tick()

    def progress(self, step: str, fraction: float, message: str = "") -> None:
        if (row := self.row(step)) is not None:
            row.set_fraction(fraction)
            if message:
                row.set_detail(message)

    def finished(self, step: str, summary: str, seconds: float) -> None:
        if (row := self.row(step)) is not None:
            row.seconds = seconds
            row.set_fraction(1.0)
            row.set_status("done")
            row.set_detail(summary)
            row.tick()

    def failed(self, step: str, error: str, seconds: float) -> None:
        if (row := self.row(step)) is not None:
            row.seconds = seconds
            row.set_status("cancelled" if error.strip() == "cancelled" else "failed")
            row.set_detail(error)
            row.tick()

    def settle(self, steps: dict[str, dict[str, Any]]) -> None:
        """At the end of a run, mark the rows no event ended (skipped, never run) from the
        result's per-step records; a run that ended before any plan says so."""
        if self.planning_since is not None:
            self.planning_since = None
            self.border_title = "plan: none was made"
            for note in self.query("#planning").results(Static):
                note.update("no plan: see the reply")
        for sid, row in self.rows().items():
            if row.status not in ("waiting", "running"):
                continue
            record = steps.get(sid) or {}
            status = str(record.get("status") or "skipped")
            error = str(record.get("error") or "")
            if status == "ok":
                row.set_fraction(1.0)
                row.set_status("done")
                row.set_detail(str(record.get("summary") or ""))
            else:
                row.set_status("cancelled" if "cancel" in error else "skipped")
                row.set_detail(error or "did not run")
