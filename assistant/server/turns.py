"""A turn's inputs as clients send them (JSON, multipart, WebSocket messages, OpenAI content
parts), checked before anything is queued or stored, then made into a job for the run queue."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from assistant.api import Assistant, _script
from assistant.events import Event
from assistant.server.security import ApiError, check_artifact_id, check_session_id


class InlineFile(BaseModel):
    """A file sent inside JSON: base64 bytes, or a ``data:`` URL."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    """The file's name (kept as the artifact's name; its folders are dropped)."""
    data: str
    """The bytes in base64, or a ``data:<mime>;base64,...`` URL."""


class TurnInput(BaseModel):
    """One request: words, files and an optional plan (run without a planner model)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = ""
    plan: Any = None
    """A plan (``{"steps": [...]}`` or a list of steps), or a list of plans, one per attempt."""
    artifacts: list[str] = Field(default_factory=list)
    """Ids of artifacts already in this session's store: ``$a1``, ``$a2`` ... first."""
    attachments: list[InlineFile] = Field(default_factory=list)
    """Files sent inline; they follow ``artifacts`` in the ``$aN`` numbering."""


class RunRequest(TurnInput):
    """``POST /v1/runs`` as JSON."""

    session: str | None = None
    """Continue this session (made if new); none starts a new one."""
    stream: bool = False
    """Answer with the events as Server-Sent Events instead of 202 and links."""


@dataclass
class Upload:
    name: str
    data: bytes


_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[^,;]*)*),(.*)$", re.DOTALL)


def decode_file(text: str, what: str) -> bytes:
    """Bytes from base64 or a base64 ``data:`` URL; a remote URL is refused (we are offline)."""
    text = text.strip()
    if re.match(r"^(https?|ftp)://", text, re.IGNORECASE):
        raise ApiError(
            400,
            "remote_url_refused",
            f"{what} is a remote URL ({text[:60]}); anymodal runs offline and does not fetch "
            "it: send the file inline as a data: URL (data:image/png;base64,...)",
        )
    if text.startswith("data:"):
        m = _DATA_URL.match(text)
        if m is None or ";base64" not in m.group(2):
            raise ApiError(
                400, "bad_data_url", f"{what} is not a base64 data: URL (data:<mime>;base64,...)"
            )
        text = m.group(3)
    elif ":" in text[:12]:
        raise ApiError(400, "bad_data_url", f"{what}: only data: URLs and base64 are accepted")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_base64", f"{what} is not valid base64") from None
    if not data:
        raise ApiError(400, "empty_file", f"{what} is empty (0 bytes); nothing to work on")
    return data


def check_plan(plan: Any) -> list[dict[str, Any]] | None:
    """The plan normalised to dicts; a malformed one is a 400 before anything runs."""
    if plan is None:
        return None
    return _script(plan)  # PlanError -> 400 (the app's handler)


def artifact_paths(assistant: Assistant, session: str | None, ids: list[str]) -> list[Path]:
    """Files of existing artifacts of ``session``; never a path outside its store."""
    if not ids:
        return []
    if session is None:
        raise ApiError(
            400, "session_required", "artifact ids name files of a session: give its `session`"
        )
    store = assistant.store(session)
    out = []
    for artifact in ids:
        path = store.get(check_artifact_id(artifact))
        if path is None or not store.contains(path):
            raise ApiError(
                404, "artifact_not_found", f"no artifact {artifact} in session {session}"
            )
        out.append(path)
    return out


def make_turn(
    assistant: Assistant,
    turn: TurnInput,
    session: str | None,
    uploads: Sequence[Upload] = (),
) -> Callable[[str], Iterator[Event]]:
    """Check a turn (plan shape, artifact ids, files) and return the job the run queue calls
    in the run's thread; the files are stored there, once the run has its slot."""
    if session is not None:
        check_session_id(session)
    plan = check_plan(turn.plan)
    existing = artifact_paths(assistant, session, turn.artifacts)
    files = [*uploads]
    for i, inline in enumerate(turn.attachments, 1):
        files.append(Upload(inline.name, decode_file(inline.data, f"attachment {i}")))
    for f in files:
        if not f.data:
            raise ApiError(
                400, "empty_file", f"file {f.name or '(unnamed)'} is empty; nothing to work on"
            )
    if not turn.prompt.strip() and plan is None:
        raise ApiError(400, "empty_request", "give a prompt, a plan, or both")
    prompt = turn.prompt

    def job(sid: str) -> Iterator[Event]:
        store = assistant.store(sid)
        stored = [store.add_bytes(f.data, name=Path(f.name).name) for f in files]
        return assistant.stream(prompt, [*existing, *stored], session=sid, plan=plan)

    return job
