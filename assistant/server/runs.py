"""The run queue: runs execute in threads, their events reach asyncio followers.

``Assistant.stream`` is a blocking generator, so each admitted run gets a thread that drives
it and hands every event to the event loop, where it is kept (a late follower replays from the
start, or from ``Last-Event-ID``) and followers are woken. At most ``max_running`` run at once;
up to ``max_queued`` more wait for a slot; beyond that ``submit`` raises ``QueueFull`` (429).
A session has at most one run in flight, so ``submit`` refuses a second with ``SessionBusy``
before anything is stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from assistant.api import Assistant, AttachmentError, SessionBusy, SessionNotFound
from assistant.events import Event, RunResult
from assistant.plan import PlanError
from assistant.sessions import new_session_id

log = logging.getLogger(__name__)

Job = Callable[[], Iterator[Event]]
"""What a run does, called in its thread: ``lambda: assistant.stream(...)``."""

KEEPALIVE_S = 15.0
"""A follower with nothing new for this long gets ``None`` (an SSE comment keeps proxies and
idle timeouts from closing the stream)."""


class QueueFull(Exception):
    def __init__(self, active: int, retry_after: int):
        super().__init__(
            f"the server is busy: {active} runs are running or queued, the most it takes "
            f"(serve.max_running + serve.max_queued); try again in {retry_after} s"
        )
        self.retry_after = retry_after


def artifact_url(session: str, artifact_id: str) -> str:
    return f"/v1/sessions/{session}/artifacts/{artifact_id}"


def with_urls(value: Any, session: str) -> Any:
    """A copy of JSON data where every artifact dict also has its download ``url``."""
    if isinstance(value, list):
        return [with_urls(v, session) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: with_urls(v, session) for k, v in value.items()}
    if {"id", "modality", "mime", "path"} <= value.keys() and isinstance(value["id"], str):
        out["url"] = artifact_url(session, value["id"])
    return out


def event_json(event: Any) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    return with_urls(data, data.get("session") or "")


class Run:
    """One turn (or resume) of one session, and every event it has produced so far."""

    def __init__(self, session: str, kind: str):
        self.id = uuid.uuid4().hex
        self.session = session
        self.kind = kind
        """'turn' for a new request, 'resume' for an answered approval."""
        self.status = "queued"
        """queued, running, then the result's ok / failed / interrupted, or error, cancelled."""
        self.events: list[dict[str, Any]] = []
        self.result: RunResult | None = None
        self.error: dict[str, Any] | None = None
        self.created = time.time()
        self.finished: float | None = None
        self.followers = 0
        self.cancel_requested = False
        self._tick = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.finished is not None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.id,
            "session": self.session,
            "kind": self.kind,
            "status": self.status,
            "events": len(self.events),
            "links": {
                "self": f"/v1/runs/{self.id}",
                "events": f"/v1/runs/{self.id}/events",
                "cancel": f"/v1/runs/{self.id}/cancel",
                "session": f"/v1/sessions/{self.session}",
            },
        }
        if self.result is not None:
            out["result"] = with_urls(self.result.model_dump(mode="json"), self.session)
        if self.error is not None:
            out["error"] = self.error
        return out

    # Called on the event loop only.
    def _push(self, data: dict[str, Any]) -> None:
        self.events.append(data)
        if data.get("type") == "final":
            self.result = RunResult.model_validate(data["result"])
        self._wake()

    def _finish(self, status: str) -> None:
        self.status = status
        self.finished = time.time()
        self._wake()

    def _wake(self) -> None:
        self._tick.set()
        self._tick = asyncio.Event()

    async def follow(self, start: int = 0) -> AsyncIterator[tuple[int, dict[str, Any]] | None]:
        """Every event from index ``start`` on, as ``(index, event)``, until the run is over;
        ``None`` after ``KEEPALIVE_S`` without news."""
        i = start
        while True:
            tick = self._tick
            while i < len(self.events):
                yield i, self.events[i]
                i += 1
            if self.done:
                return
            try:
                await asyncio.wait_for(tick.wait(), KEEPALIVE_S)
            except TimeoutError:
                yield None


class RunManager:
    """Admits, queues, runs and cancels runs; keeps finished ones for late followers."""

    def __init__(
        self,
        assistant: Assistant,
        max_running: int = 4,
        max_queued: int = 32,
        retry_after: int = 2,
        keep_finished: int = 512,
    ):
        self.assistant = assistant
        self.max_running, self.max_queued = max_running, max_queued
        self.retry_after = retry_after
        self.keep_finished = keep_finished
        self.runs: OrderedDict[str, Run] = OrderedDict()
        self._active: dict[str, Run] = {}  # by session: queued or running
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._threads: set[threading.Thread] = set()

    def get(self, run_id: str) -> Run | None:
        return self.runs.get(run_id)

    def active(self, session: str) -> Run | None:
        """The run queued or running in ``session``, if any."""
        return self._active.get(session)

    def busy(self, session: str) -> bool:
        return session in self._active or session in self.assistant.running()

    def submit(
        self,
        job: Callable[[str], Iterator[Event]],
        session: str | None = None,
        *,
        kind: str = "turn",
    ) -> Run:
        """Queue ``job(session)``; call on the event loop. Raises ``SessionBusy`` or
        ``QueueFull`` and then has done nothing."""
        session = session or new_session_id()
        if self.busy(session):
            raise SessionBusy(session)
        if len(self._active) >= self.max_running + self.max_queued:
            raise QueueFull(len(self._active), self.retry_after)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_running)
        run = Run(session, kind)
        self.runs[run.id] = run
        self._active[session] = run
        work = self._execute(run, self._slots, lambda: job(session))
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    def cancel(self, run: Run) -> bool:
        """Stop a run: a queued one never starts, a running one is told to stop (its steps
        are cancelled, the rest skipped). Returns whether it was still going."""
        if run.done:
            return False
        run.cancel_requested = True
        if run.status == "running":
            self.assistant.cancel(run.session)
        return True

    async def _execute(self, run: Run, slots: asyncio.Semaphore, job: Job) -> None:
        try:
            async with slots:
                if run.cancel_requested:
                    error = {"code": "cancelled", "message": "cancelled before it started"}
                    self._on_event(run, {"type": "error", "session": run.session, "error": error})
                    return
                run.status = "running"
                await self._in_thread(run, job)
        finally:
            if not run.done:  # the thread ended without a final event or an error
                self._on_event(run, _ended_early(run))
            self._prune()

    def _on_event(self, run: Run, data: dict[str, Any]) -> None:
        """Keep an event; the last one (final or error) frees the session at once, so a client
        that saw it can start the next turn without a 409."""
        run._push(data)
        kind = data.get("type")
        if kind not in ("final", "error"):
            return
        if self._active.get(run.session) is run:
            del self._active[run.session]
        if kind == "error":
            run.error = data["error"]
            run._finish("cancelled" if run.error["code"] == "cancelled" else "error")
        else:
            run._finish(run.result.status if run.result else "error")

    async def _in_thread(self, run: Run, job: Job) -> None:
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        assistant = self.assistant

        def push(data: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(self._on_event, run, data)

        def pump() -> None:
            delivered = False  # the cancel reached the Assistant (its turn had registered)
            try:
                # The Assistant frees the session before its last events (Final) go out, so
                # a client that saw the final event may start the next turn at once.
                for event in job():
                    push(event_json(event))
                    if run.cancel_requested and not delivered:
                        delivered = assistant.cancel(run.session)
            except Exception as exc:
                error = _error_of(exc)
                if error["code"] == "internal":
                    log.exception("run %s in session %s failed", run.id, run.session)
                push({"type": "error", "session": run.session, "error": error})
            finally:
                loop.call_soon_threadsafe(_resolve, ended)
                self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=pump, name=f"anymodal-run-{run.id[:8]}", daemon=True)
        self._threads.add(thread)
        thread.start()
        await ended

    def _prune(self) -> None:
        finished = [r for r in self.runs.values() if r.done]
        for run in finished[: max(0, len(finished) - self.keep_finished)]:
            self.runs.pop(run.id, None)

    def cancel_all(self) -> None:
        for run in list(self._active.values()):
            self.cancel(run)

    def shutdown(self, wait: float = 10.0) -> None:
        """Cancel every run and give their threads ``wait`` seconds to end."""
        self.cancel_all()
        deadline = time.monotonic() + wait
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _ended_early(run: Run) -> dict[str, Any]:
    error = {"code": "internal", "message": "the run ended without a final event"}
    return {"type": "error", "session": run.session, "error": error}


def _error_of(exc: Exception) -> dict[str, Any]:
    """An exception from a run as the error event's ``{code, message}``."""
    if isinstance(exc, SessionBusy):
        return {"code": "session_busy", "message": str(exc)}
    if isinstance(exc, SessionNotFound):
        return {"code": "session_not_found", "message": str(exc)}
    if isinstance(exc, AttachmentError):
        return {"code": "bad_attachment", "message": str(exc)}
    if isinstance(exc, PlanError):
        return {"code": "bad_plan", "message": str(exc)}
    return {"code": "internal", "message": f"the run failed: {type(exc).__name__}: {exc}"}
