"""``POST /v1/chat/completions`` and ``GET /v1/models`` in OpenAI's shape, so OpenAI clients
(and tools built on them) can talk to anymodal.

In: the last user message is the request: its text parts become the prompt, its ``image_url``
parts (``data:`` URLs only: we are offline) the attachments. Earlier messages are not replayed:
a session keeps its own history. The session is the ``session`` field, else the
``X-Anymodal-Session`` header, else one derived from ``user``, else a new one per request.
An extra ``plan`` field runs that plan (no planner model needed).

Out: the reply text with links to the artifacts (``![name](url)``) appended, and an extra
``anymodal`` field: ``{session, run, status, artifacts: [{id, modality, mime, name, url,
metadata}]}``. ``stream: true`` answers ``chat.completion.chunk`` events ending with
``data: [DONE]``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from assistant.server.context import ServerState, read_json, server_state
from assistant.server.runs import Run
from assistant.server.security import ApiError, check_session_id
from assistant.server.sse import EventStream, follow, sse
from assistant.server.turns import TurnInput, Upload, decode_file, make_turn
from tools.artifact import extension_for

router = APIRouter(prefix="/v1")

MODEL = "anymodal"
_STARTED = int(time.time())


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields we read; OpenAI's others (temperature, max_tokens ...) are accepted and
    ignored: the planner and tools decide."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    user: str | None = None
    session: str | None = None
    """anymodal's: continue this session."""
    plan: Any = None
    """anymodal's: run this plan instead of asking the planner."""


def _parts(req: ChatRequest) -> tuple[str, list[Upload]]:
    """The prompt and image files of the last user message."""
    last = next((m for m in reversed(req.messages) if m.role == "user"), None)
    if last is None:
        raise ApiError(400, "no_user_message", "messages has no 'user' message to answer")
    if isinstance(last.content, str) or last.content is None:
        return last.content or "", []
    texts: list[str] = []
    files: list[Upload] = []
    for i, part in enumerate(last.content):
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url":
            spec = part.get("image_url")
            url = spec.get("url") if isinstance(spec, dict) else spec
            if not isinstance(url, str):
                raise ApiError(400, "bad_image_url", f"content part {i}: image_url.url is missing")
            data = decode_file(url, f"content part {i} (image_url)")
            mime = url[5 : url.find(";")] if url.startswith("data:") else ""
            files.append(Upload(f"image-{len(files) + 1}{extension_for(mime)}", data))
        else:
            raise ApiError(
                400,
                "unsupported_content",
                f"content part {i} has type {kind!r}; anymodal takes 'text' and 'image_url'",
            )
    return "\n".join(t for t in texts if t), files


def _session(request: Request, req: ChatRequest) -> str | None:
    given = req.session or request.headers.get("x-anymodal-session")
    if given:
        return check_session_id(given)
    if req.user:
        return "user-" + hashlib.sha256(req.user.encode()).hexdigest()[:16]
    return None


def _artifacts(run: Run, base: str) -> list[dict[str, Any]]:
    result = run.result
    return [
        {
            "id": a.id,
            "modality": a.modality.value,
            "mime": a.mime,
            "name": a.name,
            "url": f"{base}/v1/sessions/{run.session}/artifacts/{a.id}",
            "metadata": a.metadata,
        }
        for a in (result.artifacts if result else [])
    ]


def _links(artifacts: list[dict[str, Any]]) -> str:
    lines = [
        f"{'!' if a['modality'] == 'image' else ''}[{a['name'] or a['modality']}]({a['url']})"
        for a in artifacts
    ]
    return "\n\n" + "\n".join(lines) if lines else ""


def _extra(run: Run, artifacts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"session": run.session, "run": run.id, "status": run.status, "artifacts": artifacts}


def _run_error(run: Run) -> ApiError:
    error = run.error or {"code": "internal", "message": "the run failed"}
    status = {"bad_attachment": 400, "bad_plan": 400, "session_busy": 409}.get(error["code"], 500)
    return ApiError(status, error["code"], error["message"])


@router.get("/models")
async def list_models(request: Request) -> Any:
    """The one chat model, ``anymodal``, in OpenAI's list shape; ``catalog`` adds the models
    anymodal's tools and planners can use, and whether each is installed."""
    manager = server_state(request).assistant.models

    def catalog() -> list[dict[str, Any]]:
        rows = []
        for entry in manager.catalog.entries():
            rows.append(
                {
                    "name": entry.name,
                    "task": entry.task,
                    "installed": manager.status(entry.name).installed,
                }
            )
        return rows

    model = {"id": MODEL, "object": "model", "created": _STARTED, "owned_by": "anymodal"}
    return {"object": "list", "data": [model], "catalog": await run_in_threadpool(catalog)}


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    state = server_state(request)
    req = await read_json(request, ChatRequest)
    if req.model != MODEL:
        raise ApiError(
            404, "model_not_found", f"model {req.model!r} is not served here; use {MODEL!r}"
        )
    prompt, files = _parts(req)
    session = _session(request, req)
    turn = TurnInput(prompt=prompt, plan=req.plan)
    job = await run_in_threadpool(make_turn, state.assistant, turn, session, files)
    run = state.runs.submit(job, session)
    base = str(request.base_url).rstrip("/")
    if req.stream:
        return _stream(state, run, base)
    async for _ in run.follow():
        pass
    if run.result is None:
        raise _run_error(run)
    artifacts = _artifacts(run, base)
    return JSONResponse(
        {
            "id": f"chatcmpl-{run.id}",
            "object": "chat.completion",
            "created": int(run.created),
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": run.result.text + _links(artifacts),
                    },
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "anymodal": _extra(run, artifacts),
        }
    )


def _stream(state: ServerState, run: Run, base: str) -> EventStream:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return sse(
            {
                "id": f"chatcmpl-{run.id}",
                "object": "chat.completion.chunk",
                "created": int(run.created),
                "model": MODEL,
                "choices": [choice],
                **extra,
            }
        )

    async def chunks() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        streamed = False
        async for item in run.follow():
            if item is None:
                yield ": keepalive\n\n"
            elif item[1]["type"] == "token" and item[1].get("step") is None:
                streamed = True
                yield chunk({"content": item[1]["text"]})
        if run.result is None:
            yield sse(_run_error(run).body())
        else:
            if not streamed and run.result.text:  # e.g. a turn that waits for approval
                yield chunk({"content": run.result.text})
            artifacts = _artifacts(run, base)
            if artifacts:
                yield chunk({"content": _links(artifacts)})
            yield chunk({}, "stop", anymodal=_extra(run, artifacts))
        yield "data: [DONE]\n\n"

    return EventStream(chunks(), follow(state, run))
