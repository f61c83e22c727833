"""A real anymodal server on 127.0.0.1 for the server tests: uvicorn in a thread, a free port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from assistant.config import ServeSettings
from assistant.server import bind, create_app, make_server

TOKEN = "test-token-0123456789abcdef"


@dataclass
class Served:
    url: str
    """The root, e.g. ``http://127.0.0.1:40123`` (the API is under /v1)."""
    token: str
    assistant: Any
    app: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, token: bool = True, **kw: Any) -> httpx.Client:
        """An HTTP client for the server, with the token unless ``token=False``; it ignores
        proxy variables, so nothing leaves the machine."""
        headers = self.headers if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, trust_env=False, **kw)


@contextmanager
def serving(assistant: Any, token: str = TOKEN, **settings: Any) -> Iterator[Served]:
    """Serve ``assistant`` until the block ends; ``settings`` are ``ServeSettings`` fields."""
    config = ServeSettings(**settings)
    app = create_app(assistant, config, token)
    server = make_server(app, config, log_level="warning")
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}", token, assistant, app)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def read_sse(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse Server-Sent Events from text lines: ``{"event", "id", "data"}`` (data as text)."""
    event: dict[str, Any] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield {**event, "data": "\n".join(data)}
            event, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            else:
                event[field] = value


def wait_for(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``check()`` until it is truthy (a deadline, not a timed assert)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def store_snapshot(home: Path) -> dict[str, int]:
    """Every file under the data folder's sessions, with its size: to show nothing changed."""
    root = home / "data" / "sessions"
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def gate_plan(tmp_path: Path, name: str) -> dict[str, Any]:
    """A plan held at its first step until ``<name>.go`` appears in ``tmp_path`` (the step
    writes ``<name>`` when it starts), then a step that logs ``name`` to ``<name>.log``."""
    gate = {"marker": str(tmp_path / name), "release": str(tmp_path / f"{name}.go")}
    count = {"label": name, "log": str(tmp_path / f"{name}.log"), "after": "$s1"}
    return {
        "steps": [
            {"id": "s1", "tool": "gate", "args": gate},
            {"id": "s2", "tool": "count", "args": count},
        ]
    }
