"""The app factory, its error handlers, and running it on uvicorn.

``create_app(assistant, settings, token)`` builds the FastAPI app; more routers (a robot's
``/act``) are passed as ``routers=`` or added later with ``app.include_router``: the token
middleware covers them, and they reach the assistant and the run queue through
``assistant.server.context.server_state(request)``.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse

from assistant.api import Assistant, AttachmentError, SessionBusy, SessionNotFound
from assistant.config import ServeSettings
from assistant.plan import PlanError
from assistant.server import openai_compat, robot_routes, routes, ws
from assistant.server.context import ServerState, describe_validation
from assistant.server.runs import QueueFull, RunManager
from assistant.server.security import (
    ApiError,
    BodyLimit,
    TokenAuth,
    check_token_strength,
    error_body,
)

log = logging.getLogger(__name__)

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def _version() -> str:
    try:
        return version("anymodal")
    except PackageNotFoundError:
        return "0+unknown"


def _error(status: int, code: str, message: str, headers: Any = None) -> JSONResponse:
    return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.code, exc.message, exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            what = "no such endpoint" if exc.status_code == 404 else "method not allowed"
            message = f"{what}: {request.method} {request.url.path} (see /v1/openapi.json)"
        return _error(exc.status_code, code, message, exc.headers)

    async def validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError | RequestValidationError)
        return _error(422, "invalid_request", describe_validation(exc.errors()))

    async def busy(_: Request, exc: Exception) -> JSONResponse:
        return _error(409, "session_busy", str(exc))

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return _error(404, "session_not_found", str(exc))

    async def bad_input(_: Request, exc: Exception) -> JSONResponse:
        code = "bad_plan" if isinstance(exc, PlanError) else "bad_attachment"
        return _error(400, code, str(exc))

    async def queue_full(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, QueueFull)
        headers = {"Retry-After": str(exc.retry_after)}
        return _error(429, "queue_full", str(exc), headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ValidationError, validation)
    app.add_exception_handler(SessionBusy, busy)
    app.add_exception_handler(SessionNotFound, not_found)
    app.add_exception_handler(PlanError, bad_input)
    app.add_exception_handler(AttachmentError, bad_input)
    app.add_exception_handler(QueueFull, queue_full)


def create_app(
    assistant: Assistant,
    settings: ServeSettings | None = None,
    token: str = "",
    *,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """The anymodal HTTP and WebSocket API; every route but ``/v1/health`` needs ``token``."""
    check_token_strength(token)
    settings = settings or assistant.config.serve
    runs = RunManager(assistant, settings.max_running, settings.max_queued, settings.retry_after)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await run_in_threadpool(runs.shutdown)

    app = FastAPI(
        title="anymodal",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/v1/openapi.json",
    )
    app.state.anymodal = ServerState(assistant, runs, settings)
    _install_handlers(app)

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        """Liveness, without a token."""
        return {"status": "ok", "version": app.version}

    for router in (routes.router, ws.router, openai_compat.router, robot_routes.router, *routers):
        app.include_router(router)
    # The last added is the outermost: CORS (preflights need no token), the token, the size.
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_upload_mb * 2**20))
    app.add_middleware(TokenAuth, token=token)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Anymodal-Session"],
        )
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before the server starts so port 0 can be reported."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def make_server(app: FastAPI, settings: ServeSettings, log_level: str = "info") -> Any:
    """A uvicorn server for ``app``; ``server.run(sockets=[bind(...)])`` serves until stopped
    (``server.should_exit = True``, or Ctrl+C in the main thread). Stopping cancels the runs
    first, so their event streams end and the connections close without waiting them out."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            app.state.anymodal.runs.cancel_all()
            await super().shutdown(sockets)

    config = uvicorn.Config(
        app,
        log_level=log_level,
        ws_max_size=int(settings.max_upload_mb * 2**20),
        timeout_graceful_shutdown=10,
    )
    return Server(config)
