"""One turn on screen: what a sent message's events do to the plan panel and the reply.

The app's thread worker feeds a ``Turn``: progress goes into a buffer (a tool may report
hundreds of times a second; the screen needs ten updates), every other event is shown on the
UI thread through ``show``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from assistant.events import (
    ApprovalRequired,
    Event,
    Final,
    PlanReady,
    PlanRejected,
    StepFailed,
    StepFinished,
    StepProgress,
    StepStarted,
    Token,
)
from tui.chat import AssistantMessage, Attachment
from tui.plan import PlanPanel


class Turn:
    """A sent message and the state its run shares between the worker and the UI."""

    def __init__(
        self,
        prompt: str,
        attachments: list[Attachment],
        view: AssistantMessage,
        panel: PlanPanel,
        *,
        config: Any,
        notify: Callable[..., None],
    ) -> None:
        self.prompt = prompt
        self.attachments = attachments
        self.view = view
        self.panel = panel
        self.config = config
        self.notify = notify
        self.cancelled = False
        """Esc was pressed: the run is stopping."""
        self.awaiting_approval = False
        """An approval was asked for; the interrupted ``Final`` that follows is not shown."""
        self._progress: dict[str, StepProgress] = {}
        self._lock = threading.Lock()

    # --- progress: buffered by the worker, shown by a timer ----------------------------------

    def buffer(self, event: StepProgress) -> None:
        """Keep the latest progress of a step (called on the worker thread)."""
        with self._lock:
            self._progress[event.step] = event

    def show_progress(self) -> None:
        with self._lock:
            latest, self._progress = self._progress, {}
        for event in latest.values():
            self.panel.progress(event.step, event.fraction, event.message)

    def _drop_progress(self, step: str) -> None:
        with self._lock:
            self._progress.pop(step, None)

    # --- everything else, on the UI thread ---------------------------------------------------

    async def show(self, event: Event) -> None:
        view, panel = self.view, self.panel
        if isinstance(event, StepFinished | StepFailed):
            self._drop_progress(event.step)  # a late report must not undo the end
        if isinstance(event, Token):
            await view.add_token(event.text, event.step)
        elif isinstance(event, StepStarted):
            panel.started(event.step)
        elif isinstance(event, StepFinished):
            panel.finished(event.step, event.summary, event.seconds)
            await view.end_draft(event.step)
            await view.add_artifacts(event.artifacts, self.config)
        elif isinstance(event, StepFailed):
            panel.failed(event.step, event.error, event.seconds)
            line = f"{event.step} ({event.tool}) failed: {event.error}"
            await view.note(line, error=True)
            if not self.cancelled:
                self.notify(line, title="step failed", severity="error")
        elif isinstance(event, PlanReady):
            await panel.show_plan(event.plan, event.attempt)
            if event.attempt > 1:
                await view.note(f"re-planning (attempt {event.attempt})")
        elif isinstance(event, PlanRejected):
            await view.note(f"plan rejected: {event.error}", error=True)
        elif isinstance(event, ApprovalRequired):
            self.awaiting_approval = True
            names = ", ".join(f"{s['id']} ({s['tool']})" for s in event.steps)
            await view.note(f"waiting for your approval to run {names}")
        elif isinstance(event, Final):
            await self._final(event)

    async def _final(self, event: Final) -> None:
        result = event.result
        if result.status == "interrupted" and self.awaiting_approval:
            return  # the app asks next; this text only tells CLI users how to answer
        self.panel.settle(result.steps)
        await self.view.add_artifacts(result.artifacts, self.config)
        await self.view.finish(result.text)

    async def answered(self, yes: bool) -> None:
        self.awaiting_approval = False
        await self.view.note("approved; running" if yes else "refused; nothing was run")

    async def cancel(self) -> None:
        self.cancelled = True
        await self.view.note("cancelled; your message is back in the input")

    async def error(self, message: str) -> None:
        await self.view.note(message, error=True)
        self.notify(message, title="error", severity="error")
