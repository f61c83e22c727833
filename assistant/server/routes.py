"""The REST routes under /v1: runs and their events, sessions, artifacts, approvals."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import FileResponse, JSONResponse

from assistant.api import SessionBusy, SessionNotFound
from assistant.server.context import ServerState, parse_json, read_json, server_state
from assistant.server.runs import Run, with_urls
from assistant.server.security import ApiError, check_artifact_id, check_session_id
from assistant.server.sse import run_events
from assistant.server.turns import RunRequest, Upload, make_turn
from tools.artifact import sniff_mime

router = APIRouter(prefix="/v1")


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    """True runs the steps that were waiting; false refuses them (the turn ends, failed)."""
    stream: bool = False


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str


def _wants_stream(request: Request, asked: bool) -> bool:
    return asked or "text/event-stream" in request.headers.get("accept", "")


def _started(state: ServerState, request: Request, run: Run, stream: bool) -> Response:
    if _wants_stream(request, stream):
        return run_events(state, run, head=True)
    return JSONResponse(run.summary(), status_code=202)


async def _read_form(request: Request) -> tuple[RunRequest, list[Upload]]:
    """A multipart run: fields prompt, session, plan (JSON text), artifacts (repeatable or
    comma-separated), stream; every file part is an attachment, in order."""
    form = await request.form(max_files=256, max_fields=64, max_part_size=8 * 2**20)
    fields: dict[str, Any] = {"artifacts": []}
    uploads = []
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                uploads.append(Upload(value.filename or key, await value.read()))
            elif key == "artifacts":
                fields["artifacts"] += [a.strip() for a in value.split(",") if a.strip()]
            elif key == "plan":
                fields["plan"] = parse_json(value, "the plan field")
            elif key == "stream":
                fields["stream"] = value.lower() in ("1", "true", "yes", "on")
            else:
                fields[key] = value  # unknown names fail validation below, by name
    finally:
        await form.close()
    return RunRequest.model_validate(fields), uploads


# --- runs ------------------------------------------------------------------------------------


@router.post("/runs", status_code=202)
async def start_run(request: Request, stream: bool = False) -> Response:
    """Start a turn: JSON (``RunRequest``) or multipart with files. 202 with links to the
    run and its events, or (``stream``, or ``Accept: text/event-stream``) the events."""
    state = server_state(request)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        req, uploads = await _read_form(request)
    elif ctype.startswith("application/json") or not ctype:
        req, uploads = await read_json(request, RunRequest), []
    else:
        raise ApiError(
            415, "unsupported_media_type", "send the run as application/json or multipart/form-data"
        )
    if req.session is not None and state.runs.busy(check_session_id(req.session)):
        raise SessionBusy(req.session)  # before the files are even decoded
    job = await run_in_threadpool(make_turn, state.assistant, req, req.session, uploads)
    run = state.runs.submit(job, req.session)
    return _started(state, request, run, req.stream or stream)


def _run(request: Request, run_id: str) -> Run:
    run = server_state(request).runs.get(run_id)
    if run is None:
        raise ApiError(
            404,
            "run_not_found",
            f"no run {run_id[:64]!r} (finished runs are kept "
            "for a while; the session keeps the result)",
        )
    return run


@router.get("/runs/{run_id}")
async def get_run(request: Request, run_id: str) -> dict[str, Any]:
    return _run(request, run_id).summary()


@router.get("/runs/{run_id}/events")
async def run_events_route(request: Request, run_id: str) -> Response:
    """The run's events as SSE, from the start or after ``Last-Event-ID``."""
    run = _run(request, run_id)
    last = request.headers.get("last-event-id", "")
    start = int(last) + 1 if last.isdigit() else 0
    return run_events(server_state(request), run, start)


@router.post("/runs/{run_id}/cancel")
async def cancel_run(request: Request, run_id: str) -> dict[str, Any]:
    run = _run(request, run_id)
    return {"run": run.id, "cancelled": server_state(request).runs.cancel(run)}


# --- sessions --------------------------------------------------------------------------------


async def _known(state: ServerState, session: str) -> Any:
    info = await run_in_threadpool(state.assistant.sessions.get, check_session_id(session))
    if info is None:
        raise SessionNotFound(session)
    return info


def _info(state: ServerState, info: Any) -> dict[str, Any]:
    active = state.runs.active(info.id)
    return {**info.__dict__, "run": active.id if active else None}


@router.get("/sessions")
async def list_sessions(request: Request, limit: int = Query(50, ge=1, le=1000)) -> Any:
    state = server_state(request)
    rows = await run_in_threadpool(state.assistant.list_sessions, limit)
    return {"sessions": [_info(state, r) for r in rows]}


@router.get("/sessions/{session}")
async def get_session(request: Request, session: str) -> Any:
    state = server_state(request)
    info = await _known(state, session)
    messages = await run_in_threadpool(state.assistant.messages, session)
    return {"session": _info(state, info), "messages": with_urls(messages, session)}


@router.patch("/sessions/{session}")
async def rename_session(request: Request, session: str) -> Any:
    state = server_state(request)
    body = await read_json(request, Rename)
    await _known(state, session)
    try:
        await run_in_threadpool(state.assistant.rename, session, body.title)
    except ValueError as exc:
        raise ApiError(422, "invalid_title", str(exc)) from None
    return _info(state, await _known(state, session))


@router.delete("/sessions/{session}", status_code=204)
async def delete_session(request: Request, session: str) -> Response:
    state = server_state(request)
    await _known(state, session)
    if state.runs.busy(session):
        raise SessionBusy(session)
    await run_in_threadpool(state.assistant.delete, session)
    return Response(status_code=204)


@router.get("/sessions/{session}/export")
async def export_session(request: Request, session: str) -> Response:
    """A zip of the session's Markdown and JSON export with its artifacts."""
    state = server_state(request)
    await _known(state, session)
    tmp = Path(tempfile.mkdtemp(prefix="anymodal-export-"))

    def build() -> Path:
        folder = tmp / session
        state.assistant.export(session, folder)
        target = tmp / f"{session}.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(tmp).as_posix())
        return target

    try:
        target = await run_in_threadpool(build)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type="application/zip",
        filename=target.name,
        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True),
    )


@router.post("/sessions/{session}/cancel")
async def cancel_session(request: Request, session: str) -> Any:
    state = server_state(request)
    await _known(state, session)
    run = state.runs.active(session)
    cancelled = state.runs.cancel(run) if run else state.assistant.cancel(session)
    return {"session": session, "cancelled": cancelled}


@router.post("/sessions/{session}/approve", status_code=202)
async def approve(request: Request, session: str, stream: bool = False) -> Response:
    """Answer a turn waiting for approval: it resumes (steps run) or ends (refused)."""
    state = server_state(request)
    body = await read_json(request, Approval)
    info = await _known(state, session)
    if state.runs.busy(session):
        raise SessionBusy(session)
    if info.status != "waiting":
        raise ApiError(
            409,
            "not_waiting",
            f"session {session} is not waiting for approval (it is {info.status})",
        )
    answer = body.approve
    run = state.runs.submit(
        lambda sid: state.assistant.stream_resume(sid, approve=answer), session, kind="resume"
    )
    return _started(state, request, run, body.stream or stream)


@router.get("/sessions/{session}/artifacts/{artifact_id}")
async def get_artifact(request: Request, session: str, artifact_id: str) -> Response:
    """An artifact's file, with its content type; only ever a file inside the session's store."""
    state = server_state(request)
    check_artifact_id(artifact_id)
    await _known(state, session)
    store = state.assistant.store(session)
    path = await run_in_threadpool(store.get, artifact_id)
    if path is None or not path.is_file() or not store.contains(path):
        raise ApiError(404, "artifact_not_found", f"no artifact {artifact_id} in session {session}")
    with path.open("rb") as fh:
        mime = sniff_mime(fh.read(8192), path.name)
    return FileResponse(
        path, media_type=mime, filename=path.name, content_disposition_type="inline"
    )


# --- catalog ---------------------------------------------------------------------------------


@router.get("/tools")
async def list_tools(request: Request) -> Any:
    """Every tool: name, description, input JSON schema, input and output modalities."""
    registry = server_state(request).assistant.registry
    return {"tools": registry.specs(), "load_errors": registry.load_errors}
