"""``anymodal serve``: the HTTP and WebSocket API (FastAPI on uvicorn).

``create_app(assistant, settings, token)`` builds the app (see ``app.py``); the modules hold one
concern each: ``security`` (token, limits, ids), ``runs`` (the queue and the thread bridge),
``turns`` (request inputs), ``sse``, ``routes`` (REST), ``ws`` (WebSocket chat) and
``openai_compat`` (``/v1/chat/completions``). Importing this package needs the ``serve`` extra.
"""

from __future__ import annotations

from assistant.server.app import bind, create_app, make_server
from assistant.server.context import ServerState, server_state
from assistant.server.runs import QueueFull, Run, RunManager

__all__ = [
    "QueueFull",
    "Run",
    "RunManager",
    "ServerState",
    "bind",
    "create_app",
    "make_server",
    "server_state",
]
