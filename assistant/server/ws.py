"""The WebSocket chat: one connection, one session, any number of turns.

Protocol (JSON text messages). The server opens with ``{"type": "session", "session": ID}``.
The client sends

- ``{"type": "run", "prompt": ..., "plan": ..., "artifacts": [ids], "attachments":
  [{"name": ..., "data": base64 or data: URL}]}``: a turn; the server answers
  ``{"type": "run", "run": ..., ...}`` then every event of the turn, the last being ``final``
  (or ``error``);
- ``{"type": "cancel"}``: stop the running turn;
- ``{"type": "approve", "approve": true|false}``: answer a turn that ended waiting for approval.

Problems come back as ``{"type": "error", "error": {"status", "code", "message"}}`` and leave
the connection open. Closing the connection cancels a running turn
(``serve.cancel_on_disconnect``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from assistant.api import SessionBusy
from assistant.plan import PlanError
from assistant.server.context import ServerState, describe_validation, parse_json, server_state
from assistant.server.runs import QueueFull, Run
from assistant.server.security import ApiError, check_session_id, error_body
from assistant.server.turns import TurnInput, make_turn
from assistant.sessions import new_session_id

router = APIRouter(prefix="/v1")


def _error(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, ApiError):
        body = exc.body()
    elif isinstance(exc, SessionBusy):
        body = error_body(409, "session_busy", str(exc))
    elif isinstance(exc, QueueFull):
        body = error_body(429, "queue_full", str(exc))
    elif isinstance(exc, PlanError):
        body = error_body(400, "bad_plan", str(exc))
    elif isinstance(exc, ValidationError):
        body = error_body(422, "invalid_request", describe_validation(exc.errors()))
    else:
        raise exc
    return {"type": "error", **body}


class _Chat:
    def __init__(self, ws: WebSocket, state: ServerState, session: str):
        self.ws, self.state, self.session = ws, state, session
        self.run: Run | None = None
        self.forwarder: asyncio.Task[None] | None = None

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.pop("type", None)
        runs = self.state.runs
        if kind == "run":
            turn = TurnInput.model_validate(message)
            if runs.busy(self.session):
                raise SessionBusy(self.session)
            job = await run_in_threadpool(make_turn, self.state.assistant, turn, self.session, [])
            self._start(runs.submit(job, self.session))
        elif kind == "cancel":
            cancelled = self.run is not None and runs.cancel(self.run)
            await self.ws.send_json({"type": "cancelled", "cancelled": cancelled})
        elif kind == "approve":
            answer = message.get("approve")
            if not isinstance(answer, bool):
                raise ApiError(422, "invalid_request", "approve needs 'approve': true or false")
            if self.run is None or self.run.status != "interrupted":
                raise ApiError(409, "not_waiting", "no turn of this chat waits for approval")
            self._start(
                runs.submit(
                    lambda sid: self.state.assistant.stream_resume(sid, approve=answer),
                    self.session,
                    kind="resume",
                )
            )
        else:
            raise ApiError(
                400, "unknown_type", f"unknown message type {kind!r}: use run, cancel or approve"
            )

    def _start(self, run: Run) -> None:
        self.run = run
        self.forwarder = asyncio.create_task(self._forward(run))

    async def _forward(self, run: Run) -> None:
        await self.ws.send_json({"type": "run", **run.summary()})
        async for item in run.follow():
            if item is not None:
                await self.ws.send_json(item[1])

    async def close(self) -> None:
        run = self.run
        if run is not None and not run.done and self.state.settings.cancel_on_disconnect:
            self.state.runs.cancel(run)
        if self.forwarder is not None:
            self.forwarder.cancel()
            with contextlib.suppress(BaseException):
                await self.forwarder


@router.websocket("/chat")
async def chat(ws: WebSocket, session: str | None = None) -> None:
    """``/v1/chat?session=ID`` continues (or starts) that session; without it, a new one."""
    state = server_state(ws)
    await ws.accept()
    try:
        sid = check_session_id(session) if session else new_session_id()
    except ApiError as exc:
        await ws.send_json({"type": "error", **exc.body()})
        await ws.close(1008)
        return
    await ws.send_json({"type": "session", "session": sid})
    chat = _Chat(ws, state, sid)
    try:
        while True:
            text = await ws.receive_text()
            try:
                message = parse_json(text, "the message")
                if not isinstance(message, dict):
                    raise ApiError(400, "invalid_json", "a message must be a JSON object")
                await chat.handle(message)
            except (ApiError, SessionBusy, QueueFull, PlanError, ValidationError) as exc:
                await ws.send_json(_error(exc))
    except WebSocketDisconnect:
        pass
    finally:
        await chat.close()
