"""What keeps the server to its owner: the bearer token, its file, body limits, id checks.

Every route but ``/v1/health`` needs ``Authorization: Bearer <token>`` (a WebSocket may give
``?token=`` instead, since browsers cannot set headers on one). The check is a middleware, not
a per-route dependency, so a router added later (``/act``) is covered without remembering to.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant import paths

SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""Session ids name folders, so they are plain: no separators, never '.' or '..'."""
ARTIFACT_ID = re.compile(r"^[0-9a-f]{12,64}$")
"""An artifact id is a sha256 in hex, or a unique prefix of 12 or more digits."""
MIN_TOKEN_CHARS = 16
PUBLIC_PATHS = frozenset({"/v1/health"})


class ApiError(HTTPException):
    """An error the client caused or must handle: answered as ``{"error": {...}}``.

    An ``HTTPException``, so FastAPI passes it through when it is raised while a body is read.
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(status, message, headers)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message)


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The one error shape; ``message`` and ``type`` are what OpenAI clients read."""
    return {"error": {"status": status, "code": code, "type": code, "message": message}}


def check_session_id(session: str) -> str:
    if not SESSION_ID.match(session) or ".." in session:
        raise ApiError(
            400,
            "invalid_session_id",
            f"{session[:80]!r} is not a session id: use 1 to 128 letters, digits, '_', '-' "
            "or '.', starting with a letter or digit",
        )
    return session


def check_artifact_id(artifact: str) -> str:
    if not ARTIFACT_ID.match(artifact):
        raise ApiError(
            400,
            "invalid_artifact_id",
            f"{artifact[:80]!r} is not an artifact id: give its sha256 in lower-case hex "
            "(or the first 12 or more digits)",
        )
    return artifact


# --- the token -------------------------------------------------------------------------------


def token_path(token_file: str | None = None) -> Path:
    return Path(token_file).expanduser() if token_file else paths.config_dir() / "server-token"


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token kept in ``path``, made (``secrets``, 256 bits) and stored 0600 if there is
    none. Returns ``(token, created)``; a file others can read is narrowed to 0600."""
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            if os.name == "posix" and path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
                print(f"narrowed {path} to owner-only (0600)", file=sys.stderr)
            return token, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return token, True


def check_token_strength(token: str) -> None:
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(
            f"the token is {len(token)} characters; use at least {MIN_TOKEN_CHARS} (a short "
            "one can be guessed), or leave --token out to use the generated one"
        )


def _given_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").partition(" ")
            return rest.strip() if scheme.lower() == "bearer" else None
    if scope["type"] == "websocket":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return (query.get("token") or [None])[0]
    return None


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: Any = ()) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


class TokenAuth:
    """Refuse any request without the right bearer token (compared in constant time)."""

    def __init__(self, app: ASGIApp, token: str, public: frozenset[str] = PUBLIC_PATHS):
        self.app, self.token, self.public = app, token.encode(), public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.public:
            await self.app(scope, receive, send)
            return
        given = _given_token(scope)
        if given is not None and secrets.compare_digest(given.encode(), self.token):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refused at the handshake (HTTP 403)
            await receive()
            await send({"type": "websocket.close", "code": 1008, "reason": "bad or no token"})
            return
        message = (
            "missing bearer token: send 'Authorization: Bearer <token>' (the token is in the "
            "file `anymodal serve` printed)"
            if given is None
            else "wrong bearer token"
        )
        await _send_json(
            send,
            401,
            error_body(401, "unauthorized", message),
            [(b"www-authenticate", b"Bearer")],
        )


DRAIN_BYTES = 32 * 2**20
"""How much of an oversized body is read and thrown away before answering 413, so an ordinary
client that is still sending reads the answer instead of a connection reset."""


class BodyLimit:
    """Answer 413 for a request body over ``max_bytes``: at once when Content-Length says so,
    else as soon as the bytes read pass it (the endpoint's read raises the error)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def _error(self, size: str) -> ApiError:
        mb = self.max_bytes / 2**20
        return ApiError(
            413,
            "request_too_large",
            f"the request body is {size}; the limit is {mb:g} MB (serve.max_upload_mb in "
            "config.toml, or ANYMODAL_SERVE__MAX_UPLOAD_MB)",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            err = self._error(f"{int(length) / 2**20:.2f} MB")
            if int(length) <= DRAIN_BYTES:
                await _drain(receive, DRAIN_BYTES)
            await _send_json(send, 413, err.body(), [(b"connection", b"close")])
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body", False):
                        await _drain(receive, DRAIN_BYTES)
                    raise self._error(f"over {self.max_bytes / 2**20:g} MB")
            return message

        await self.app(scope, limited, send)


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a request body, at most ``budget`` bytes."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return
