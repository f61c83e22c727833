"""Renders the event stream in a terminal with rich: a progress bar per step, then the reply."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from assistant.events import (
    ApprovalRequired,
    Final,
    PlanReady,
    PlanRejected,
    RunResult,
    StepFailed,
    StepFinished,
    StepProgress,
    StepStarted,
)


def render_events(events: Iterable[Any], console: Any, show_plan: bool = True) -> RunResult:
    """Show progress for ``events`` on ``console`` and return the final result."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    result: RunResult | None = None
    progress = Progress(
        TextColumn("{task.fields[status]:>2}"),
        TextColumn("[bold]{task.fields[step]}[/] {task.description}"),
        BarColumn(bar_width=24),
        TimeElapsedColumn(),
        TextColumn("[dim]{task.fields[note]}"),
        console=console,
        transient=False,
    )
    tasks: dict[str, Any] = {}
    with progress:
        # A model planner can take seconds (more on first use, while it loads): say so.
        planning: Any = progress.add_task("planning", total=None, step="", status="..", note="")
        for ev in events:
            if planning is not None and isinstance(ev, PlanReady | PlanRejected | Final):
                progress.remove_task(planning)
                planning = None
            if isinstance(ev, PlanReady) and show_plan:
                again = f" (re-plan {ev.attempt - 1})" if ev.attempt > 1 else ""
                progress.console.print(
                    f"[cyan]plan{again}:[/] "
                    + " ".join(f"{s['id']}:{s['tool']}" for s in ev.plan["steps"])
                    or "reply only"
                )
            elif isinstance(ev, PlanRejected):
                progress.console.print(f"[yellow]plan rejected:[/] {ev.error}")
            elif isinstance(ev, StepStarted):
                tasks[ev.step] = progress.add_task(
                    ev.tool, total=1.0, step=ev.step, status="..", note=""
                )
            elif isinstance(ev, StepProgress) and ev.step in tasks:
                progress.update(tasks[ev.step], completed=ev.fraction, note=ev.message[:40])
            elif isinstance(ev, StepFinished) and ev.step in tasks:
                progress.update(
                    tasks[ev.step], completed=1.0, status="[green]ok", note=ev.summary[:60]
                )
                progress.stop_task(tasks[ev.step])
            elif isinstance(ev, StepFailed) and ev.step in tasks:
                progress.update(tasks[ev.step], status="[red]!!", note=ev.error[:60])
                progress.stop_task(tasks[ev.step])
            elif isinstance(ev, ApprovalRequired):
                progress.console.print(
                    "[yellow]approval needed for:[/] "
                    + ", ".join(f"{s['id']} ({s['tool']})" for s in ev.steps)
                )
            elif isinstance(ev, Final):
                result = ev.result
    if result is None:
        raise RuntimeError("the run ended without a result")
    return result
