"""Server-Sent Events for a run: replay from an index, follow live, cancel on disconnect."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from assistant.server.context import ServerState
from assistant.server.runs import Run


def sse(data: Any, event: str | None = None, id: int | None = None) -> str:
    head = (f"id: {id}\n" if id is not None else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {json.dumps(data)}\n\n"


class EventStream(StreamingResponse):
    """A ``text/event-stream`` response that calls ``on_close`` however it ends: finished,
    or the client went away (then the body iterator is cancelled mid-stream)."""

    media_type = "text/event-stream"

    def __init__(self, content: AsyncIterator[str], on_close: Callable[[], None]):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(content, headers=headers)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


def follow(state: ServerState, run: Run) -> Callable[[], None]:
    """Count a follower of ``run``; the returned callback uncounts it and, if it was the last
    and the run is not over, cancels the run (``serve.cancel_on_disconnect``)."""
    run.followers += 1

    def gone() -> None:
        run.followers -= 1
        if state.settings.cancel_on_disconnect and not run.done and run.followers == 0:
            state.runs.cancel(run)

    return gone


def run_events(state: ServerState, run: Run, start: int = 0, *, head: bool = False) -> EventStream:
    """The run's events as SSE (``id`` is the event's index, ``event`` its type), from
    ``start``; with ``head``, first a ``run`` event carrying the run and session ids."""

    async def chunks() -> AsyncIterator[str]:
        if head:
            yield sse(run.summary(), "run")
        async for item in run.follow(start):
            if item is None:
                yield ": keepalive\n\n"
            else:
                yield sse(item[1], item[1].get("type"), item[0])

    return EventStream(chunks(), follow(state, run))
