"""The OpenAI-compatible planner against a real HTTP server on 127.0.0.1 that answers like
Ollama's ``/v1`` API: native tool calls, JSON-schema answers, Server-Sent Events streams."""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assistant import Assistant
from assistant.config import load_config
from assistant.events import PlanReady, PlanRejected, StepFinished, Token
from assistant.plan import PlanError, validate_plan
from assistant.planners.base import PlanRequest
from assistant.planners.llm import args_schema, plan_schema
from assistant.planners.openai import OpenAIBackend, openai_planner
from tests.conftest import check_event_order
from tools import ArtifactStore, Registry, ToolContext, ToolError, ToolSettings

MODEL = "qwen2.5:7b"
PROMPT = "make the first image 256 wide and put it beside the second"
PLAN = {
    "steps": [
        {"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 256}},
        {"id": "s2", "tool": "stitch_images", "args": {"images": ["$s1", "$a2"]}},
    ]
}
CALLS = [("resize_image", {"id": "s1", "image": "$a1", "width": 256}),
         ("stitch_images", {"id": "s2", "images": ["$s1", "$a2"]})]  # fmt: skip
SUMMARY = "I made the first image 256 pixels wide and put it beside the second one."

Answer = dict[str, Any]
"""What the fake model says: ``{"calls": [(name, args)]}``, ``{"content": text}``,
``{"status": code, "body": json}``, ``{"raw": bytes, "type": content type}``;
``"sleep"`` delays it."""
Brain = Callable[[dict[str, Any], int], Answer]
"""Decides the answer to a request body; the int counts earlier plan (non-stream) requests."""


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class QuietServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up early (the timeout test does that on purpose)."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeOllama:
    """A real HTTP server speaking Ollama's OpenAI-compatible API, recording every request."""

    def __init__(self, brain: Brain, api_key: str | None = None):
        self.brain = brain
        self.api_key = api_key
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.httpd = QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def chats(self) -> list[dict[str, Any]]:
        return [s.body for s in self.seen if s.path == "/v1/chat/completions"]

    @property
    def plan_requests(self) -> list[dict[str, Any]]:
        return [b for b in self.chats if not b.get("stream")]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send_json(self, code: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def authorised(self) -> bool:
                if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                    error = {"message": "invalid api key", "type": "invalid_request_error"}
                    self.send_json(401, {"error": error})
                    return False
                return True

            def do_GET(self) -> None:  # noqa: N802
                fake.seen.append(Seen("GET", self.path, dict(self.headers), {}))
                if self.authorised() and self.path == "/v1/models":
                    self.send_json(200, {"object": "list", "data": [{"id": MODEL}]})
                elif self.path != "/v1/models":
                    self.send_json(404, {"error": "404 page not found"})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    n = len(fake.plan_requests)
                    fake.seen.append(Seen("POST", self.path, dict(self.headers), body))
                if not self.authorised():
                    return
                answer = fake.brain(body, n)
                time.sleep(answer.get("sleep", 0))
                if "status" in answer:
                    self.send_json(answer["status"], answer["body"])
                elif "raw" in answer:
                    self.send_response(200)
                    self.send_header("Content-Type", answer.get("type", "text/html"))
                    self.send_header("Content-Length", str(len(answer["raw"])))
                    self.end_headers()
                    self.wfile.write(answer["raw"])
                elif body.get("stream"):
                    self.stream(answer.get("content", ""))
                else:
                    self.send_json(200, completion(answer))

            def stream(self, text: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for piece in re.findall(r"\S+\s*", text):
                    self.wfile.write(b"data: " + json.dumps(chunk(piece)).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: " + json.dumps(chunk("", "stop")).encode() + b"\n\n")
                self.wfile.write(b"data: [DONE]\n\n")

        return Handler


def completion(answer: Answer) -> dict[str, Any]:
    """A ``chat.completion`` as Ollama writes it (tool arguments as a JSON string)."""
    calls = [
        {
            "id": f"call_{i}",
            "index": i,
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(answer.get("calls", []))
    ]
    message: dict[str, Any] = {"role": "assistant", "content": answer.get("content", "")}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "system_fingerprint": "fp_ollama",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": {"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940},
    }


def chunk(piece: str, finish: str | None = None) -> dict[str, Any]:
    delta = {"role": "assistant", "content": piece}
    return {
        "id": "chatcmpl-2",
        "object": "chat.completion.chunk",
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def user_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content)


def summary(body: dict[str, Any]) -> Answer:
    """The responder: a short sentence, or the planning problem when there was one."""
    problem = re.search(r"^Planning problem: (.*)$", user_text(body), re.MULTILINE)
    return {"content": f"Nothing was done: {problem.group(1)}" if problem else SUMMARY}


def ollama(body: dict[str, Any], n: int) -> Answer:
    """A model that plans well: tool calls when offered tools, JSON text otherwise."""
    if body.get("stream"):
        return summary(body)
    if body.get("tools"):
        return {"calls": CALLS}
    return {"content": json.dumps(PLAN)}


@pytest.fixture
def serve() -> Iterator[Callable[..., FakeOllama]]:
    servers: list[FakeOllama] = []

    def start(brain: Brain = ollama, api_key: str | None = None) -> FakeOllama:
        servers.append(FakeOllama(brain, api_key))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def request_for(tmp_path: Path, images: tuple[Path, Path]) -> PlanRequest:
    """A plan request over the real registry, with both images attached and a real check."""
    registry = Registry.discover()
    store = ArtifactStore(tmp_path / "store")
    attachments = [store.add_file(p) for p in images]
    ctx = ToolContext(store=store, workspace=tmp_path / "w", settings=ToolSettings())
    ctx.refs.update({f"a{i}": [a] for i, a in enumerate(attachments, 1)})
    return PlanRequest(
        prompt=PROMPT,
        attachments=attachments,
        tools=registry.specs(),
        check=lambda p: validate_plan(p, registry, attachments, ctx),
    )


def planner_on(server: FakeOllama, **openai: Any) -> Any:
    return openai_planner(
        load_config(planner="openai", openai={"base_url": server.url, "model": MODEL, **openai})
    )


def assistant_on(server: FakeOllama, **overrides: Any) -> Assistant:
    openai = {"base_url": server.url, "model": MODEL, **overrides.pop("openai", {})}
    return Assistant(planner="openai", openai=openai, **overrides)


def refused_url() -> str:
    """A local URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# --- planning with native tool calls ---------------------------------------------------------


def test_native_tool_calls_become_the_plan(serve, request_for):
    server = serve(api_key="sk-local")
    plan = planner_on(server, api_key="sk-local").plan(request_for)

    assert plan.model_dump(exclude_none=True) == PLAN
    [probe, sent] = server.seen
    assert (probe.method, probe.path) == ("GET", "/v1/models")
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-local"
    body = sent.body
    assert (body["model"], body["temperature"], body["tool_choice"]) == (MODEL, 0, "auto")
    assert "stream" not in body and "response_format" not in body
    # The system prompt asks for an id per call; the user turn carries both images.
    system, user = body["messages"]
    assert system["role"] == "system" and '"id" argument' in system["content"]
    parts = user["content"]
    assert parts[0]["type"] == "text" and PROMPT in parts[0]["text"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert [u.split(",")[0] for u in urls] == ["data:image/png;base64", "data:image/jpeg;base64"]
    for url, art in zip(urls, request_for.attachments, strict=True):
        assert base64.b64decode(url.split(",", 1)[1]) == Path(art.path).read_bytes()
    # Every registered tool is offered with its argument schema.
    offered = {t["function"]["name"]: t for t in body["tools"]}
    assert set(offered) == {s["name"] for s in request_for.tools}
    for spec in request_for.tools:
        tool = offered[spec["name"]]
        assert tool["type"] == "function"
        assert tool["function"]["description"] == spec["description"]
        params = tool["function"]["parameters"]
        assert params["properties"].items() >= args_schema(spec)["properties"].items()
    resize = offered["resize_image"]["function"]["parameters"]
    assert resize["properties"]["image"]["type"] == "string"  # "$a1", "$s1"
    assert {"type": "integer", "minimum": 1, "maximum": 65536} in (
        resize["properties"]["width"]["anyOf"]
    )
    assert resize["required"] == ["image"]


def test_offered_tools_declare_the_id_argument(serve, request_for):
    server = serve()
    planner_on(server).plan(request_for)
    for tool in server.plan_requests[0]["tools"]:
        params = tool["function"]["parameters"]
        assert "id" in params["properties"] or params.get("additionalProperties") is not False


@pytest.mark.parametrize(
    ("first", "problem"),
    [
        (
            {"content": 'Sure! Here is the plan: {"steps": [{"id": "s1", "tool": "resize_image"'},
            "cut off",
        ),
        ({"calls": [("sharpen_image", {"id": "s1", "image": "$a1"})]}, "sharpen_image"),
    ],
    ids=["truncated-json-in-prose", "unknown-tool"],
)
def test_a_bad_first_answer_is_repaired(serve, request_for, first, problem):
    server = serve(lambda body, n: first if n == 0 else ollama(body, n))
    plan = planner_on(server).plan(request_for)

    assert plan.model_dump(exclude_none=True) == PLAN
    assert len(server.plan_requests) == 2
    retry = server.plan_requests[1]["messages"]
    assert [m["role"] for m in retry] == ["system", "user", "assistant", "user"]
    assert problem in retry[-1]["content"] and "That plan cannot run" in retry[-1]["content"]
    assert retry[2]["content"]  # what the model said goes back to it


def test_an_always_malformed_server_is_asked_three_times(serve, request_for):
    server = serve(lambda body, n: {"content": "I would resize it, then stitch."})
    with pytest.raises(PlanError, match=r"wrote no valid plan in 3 tries.*no complete JSON"):
        planner_on(server).plan(request_for)
    assert len(server.plan_requests) == 3


def test_without_native_tools_the_plan_is_json_under_a_schema(serve, request_for):
    server = serve()
    plan = planner_on(server, native_tools=False).plan(request_for)

    assert plan.model_dump(exclude_none=True) == PLAN
    body = server.plan_requests[0]
    assert "tools" not in body and "tool_choice" not in body
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "plan"
    assert fmt["json_schema"]["schema"] == plan_schema(
        request_for.tools, [a.modality.value for a in request_for.attachments]
    )


# --- streaming ---------------------------------------------------------------------------------


def test_streaming_calls_on_token_per_piece(serve):
    server = serve()
    pieces: list[str] = []
    backend = OpenAIBackend(server.url, MODEL)
    reply = backend.chat([{"role": "user", "content": "what did you do?"}], on_token=pieces.append)

    assert reply.text == SUMMARY
    assert len(pieces) == len(SUMMARY.split()) and "".join(pieces) == SUMMARY
    body = server.chats[0]
    assert body["stream"] is True and body["messages"][0]["content"] == "what did you do?"


def test_a_server_that_ignores_stream_still_answers(serve):
    server = serve(lambda body, n: {"status": 200, "body": completion({"content": "all at once"})})
    pieces: list[str] = []
    reply = OpenAIBackend(server.url, MODEL).chat(
        [{"role": "user", "content": "hi"}], on_token=pieces.append
    )
    assert reply.text == "all at once" and pieces == ["all at once"]


# --- the whole assistant ---------------------------------------------------------------------


def test_the_assistant_plans_runs_and_streams_through_the_endpoint(serve, images):
    server = serve()
    events = list(assistant_on(server).stream(PROMPT, list(images)))

    check_event_order(events, PLAN)
    result = events[-1].result
    assert result.ok, result.text
    [ready] = [e for e in events if isinstance(e, PlanReady)]
    assert ready.plan["steps"] == PLAN["steps"]
    finished = {e.step: e for e in events if isinstance(e, StepFinished)}
    with Image.open(finished["s2"].artifacts[0].path) as img:
        assert img.format == "PNG"
        assert img.size == (256 + 300, 200)  # 640x480 -> 256x192, beside 300x200
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert len(tokens) > 1 and "".join(tokens) == result.text
    assert result.text.startswith(SUMMARY)
    assert finished["s2"].artifacts[0].path in result.text  # the facts follow the reply
    assert [b.get("stream", False) for b in server.chats] == [False, True]
    assert "resize_image: ok" in user_text(server.chats[1])


def test_the_assistant_without_native_tools(serve, images):
    server = serve()
    result = assistant_on(server, openai={"native_tools": False}).run(PROMPT, list(images))
    assert result.ok, result.text
    with Image.open(result.artifacts[-1].path) as img:
        assert img.size == (556, 200)
    assert "response_format" in server.plan_requests[0]


def test_an_always_malformed_server_ends_in_a_clear_failed_reply(serve, images):
    server = serve(lambda body, n: summary(body) if body.get("stream") else {"content": "Hmm."})
    events = list(assistant_on(server, max_replans=0).stream(PROMPT, list(images)))

    result = events[-1].result
    assert result.status == "failed"
    assert len(server.plan_requests) == 3
    [rejected] = [e for e in events if isinstance(e, PlanRejected)]
    assert "wrote no valid plan in 3 tries" in rejected.error
    assert "wrote no valid plan in 3 tries" in result.text
    assert not [e for e in events if isinstance(e, StepFinished)]


# --- errors --------------------------------------------------------------------------------------


def test_a_refused_connection_names_the_url():
    url = refused_url()
    with pytest.raises(ToolError, match=re.escape(url) + r".*is the server running"):
        OpenAIBackend(url, MODEL).chat([{"role": "user", "content": "hi"}])


def test_the_assistant_reports_an_unreachable_server_instead_of_crashing(images):
    url = refused_url()
    result = Assistant(planner="openai", openai={"base_url": url, "model": MODEL}).run(
        PROMPT, list(images)
    )
    assert result.status == "failed"
    assert url in result.text and "is the server running" in result.text


def test_a_wrong_key_is_refused_before_planning(serve):
    server = serve(api_key="sk-right")
    with pytest.raises(ToolError, match=r"HTTP 401: invalid api key; check openai.api_key"):
        planner_on(server, api_key="sk-wrong")
    assert [s.path for s in server.seen] == ["/v1/models"]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            {"status": 404, "body": {"error": {"message": 'model "qwen2.5:7b" not found'}}},
            r'HTTP 404: model "qwen2.5:7b" not found; .*`ollama pull qwen2.5:7b`',
        ),
        (
            {"status": 400, "body": {"error": {"message": "does not support tools"}}},
            r"HTTP 400: does not support tools; .*native_tools = false",
        ),
        ({"status": 500, "body": {"detail": "CUDA out of memory"}}, r"500: CUDA out of memory"),
        ({"raw": b"<html>hello</html>"}, r"not JSON: <html>hello</html>; .*ends in /v1"),
        ({"status": 200, "body": {"object": "list"}}, r"without choices\[0\].message"),
        ({"sleep": 1.0, "content": "late"}, r"did not answer within 0.3s"),
    ],
    ids=["unknown-model", "no-tools", "server-error", "not-json", "wrong-shape", "timeout"],
)
def test_server_errors_say_what_to_check(serve, answer, message):
    server = serve(lambda body, n: answer)
    backend = OpenAIBackend(server.url, MODEL, timeout=0.3)
    with pytest.raises(ToolError, match=message) as info:
        backend.chat([{"role": "user", "content": "hi"}], tools=[])
    assert server.url in str(info.value)


def test_an_error_inside_a_stream_is_raised(serve):
    def brain(body: dict[str, Any], n: int) -> Answer:
        error = b'data: {"error": {"message": "model unloaded"}}\n\n'
        return {"raw": error, "type": "text/event-stream"}

    server = serve(brain)
    with pytest.raises(ToolError, match="reported an error: model unloaded"):
        OpenAIBackend(server.url, MODEL).chat([{"role": "user", "content": "hi"}], on_token=print)
