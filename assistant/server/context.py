"""What every route reaches through ``request.app.state``: the assistant, the run queue and
the server settings; and the one JSON body reader with clear errors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import HTTPConnection, Request

from assistant.api import Assistant
from assistant.config import ServeSettings
from assistant.server.runs import RunManager
from assistant.server.security import ApiError

M = TypeVar("M", bound=BaseModel)


@dataclass
class ServerState:
    """Kept as ``app.state.anymodal``; a router added later reads it the same way."""

    assistant: Assistant
    runs: RunManager
    settings: ServeSettings


def server_state(conn: HTTPConnection) -> ServerState:
    state: ServerState = conn.app.state.anymodal
    return state


def parse_json(raw: bytes | str, what: str = "the request body") -> Any:
    if not raw:
        raise ApiError(400, "invalid_json", f"{what} is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"{what} is not valid JSON: {exc}") from None


async def read_json(request: Request, model: type[M]) -> M:
    """The body as ``model``: 400 for JSON that does not parse, 422 (``ValidationError``,
    answered by the app's handler) for JSON of the wrong shape."""
    data = parse_json(await request.body())
    return model.model_validate(data)


def describe_validation(errors: Any) -> str:
    """Pydantic's errors as one line a person can act on: ``messages.0.role: Field required``."""
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)
