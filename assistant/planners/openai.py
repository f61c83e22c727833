"""The OpenAI-compatible backend: any server that speaks ``POST /chat/completions``.

Ollama (``http://127.0.0.1:11434/v1``), vLLM, llama.cpp's ``llama-server``, LM Studio and
hosted APIs all answer the same request through plain httpx (no ``openai`` package). Plans
come back as native tool calls (``tools`` with ``tool_choice: "auto"``) or, with
``native_tools`` off, as JSON text under ``response_format: json_schema``. Final answers are
streamed as Server-Sent Events. Every failure is a ``ToolError`` that names the server and
says what to check.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from assistant.planners.llm import LLMPlanner, Reply, TokenFn
from tools.errors import ToolError

MAX_TOKENS = 1024
"""Longest plan or reply the endpoint may write (``[openai]`` has no setting for it yet)."""

MAX_IMAGE_SIDE = 2048
"""Larger images are scaled down before they are sent; vision encoders shrink them anyway."""

PROBE_TIMEOUT = 10.0
"""Seconds the start-up check (``GET /models``) and a connection may take at most."""

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


# --- messages --------------------------------------------------------------------------------


def image_data_url(path: str | Path) -> str:
    """A ``data:`` URL for an image: PNG and JPEG as they are, others (or large ones) as PNG."""
    from PIL import Image

    try:
        raw = Path(path).read_bytes()
        with Image.open(io.BytesIO(raw)) as img:
            if img.format in ("PNG", "JPEG") and max(img.size) <= MAX_IMAGE_SIDE:
                mime = Image.MIME[img.format]
            else:
                img.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE))
                out = io.BytesIO()
                img.convert("RGBA" if "A" in img.getbands() else "RGB").save(out, format="PNG")
                raw, mime = out.getvalue(), "image/png"
    except (OSError, ValueError) as exc:
        raise ToolError(f"cannot read the image {path} to show it to the planner: {exc}") from None
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our messages in OpenAI's shape: image parts become ``image_url`` parts with a data URL,
    and content made only of text parts becomes one string (which every server accepts)."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            parts: list[dict[str, Any]] = [_openai_part(p) for p in content]
            if all(p.get("type") == "text" for p in parts):
                content = "\n".join(str(p["text"]) for p in parts)
            else:
                content = parts
        out.append({**m, "content": content})
    return out


def _openai_part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image":
        return {"type": "image_url", "image_url": {"url": image_data_url(part["path"])}}
    return part


# --- the backend -----------------------------------------------------------------------------


class OpenAIBackend:
    """A chat model behind an OpenAI-compatible HTTP endpoint.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:11434/v1`` (``/chat/completions`` is
            appended).
        model: the model name the endpoint knows, e.g. ``qwen2.5:7b``.
        api_key: sent as a bearer token when given.
        timeout: seconds to wait for an answer (for a stream: between two pieces).
    """

    name = "openai"
    sees_images = True

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"OpenAIBackend({self.base_url!r}, {self.model!r})"

    def _client(self, timeout: float) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, PROBE_TIMEOUT))
        )

    def request_body(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        stream: bool = False,
    ) -> dict[str, Any]:
        """The JSON body of one ``/chat/completions`` request."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(messages),
            "max_tokens": max_tokens or MAX_TOKENS,
            "temperature": 0,
        }
        if tools:
            body["tools"] = tools
            body["tool_choice"] = "auto"
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "plan", "schema": schema},
            }
        if stream:
            body["stream"] = True
        return body

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        on_token: TokenFn | None = None,
    ) -> Reply:
        """Answer ``messages``; with ``on_token`` the text is streamed piece by piece (native
        tool calls are read only from answers that are not streamed)."""
        body = self.request_body(
            messages, schema=schema, tools=tools, max_tokens=max_tokens, stream=bool(on_token)
        )
        url = f"{self.base_url}/chat/completions"
        try:
            with self._client(self.timeout) as client:
                if on_token is None:
                    response = client.post(url, json=body)
                    self._raise_for_status(response)
                    return self._reply(response)
                with client.stream("POST", url, json=body) as response:
                    if response.is_error:
                        response.read()
                        self._raise_for_status(response)
                    return self._streamed(response, on_token)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, self.timeout) from None

    def check(self) -> None:
        """Fail early, with a clear message, when the server cannot be reached or refuses the
        key (``GET /models``). Other answers pass: not every server lists its models."""
        timeout = min(self.timeout, PROBE_TIMEOUT)
        try:
            with self._client(timeout) as client:
                response = client.get(f"{self.base_url}/models")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, timeout) from None
        if response.status_code in (401, 403):
            self._raise_for_status(response)

    # --- reading answers ---------------------------------------------------------------------

    def _reply(self, response: httpx.Response) -> Reply:
        try:
            data = response.json()
        except ValueError:
            raise self._shape_error(f"an answer that is not JSON: {_clip(response.text)}") from None
        self._raise_on_error_body(data)
        try:
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
            calls = [
                {
                    "name": c["function"]["name"],
                    "arguments": c["function"].get("arguments") or {},
                }
                for c in message.get("tool_calls") or []
            ]
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._shape_error(
                f"an answer without choices[0].message: {_clip(data)}"
            ) from None
        if not isinstance(text, str):
            raise self._shape_error(f"message content that is not text: {_clip(text)}")
        return Reply(text=_THINK.sub("", text), tool_calls=calls)

    def _streamed(self, response: httpx.Response, on_token: TokenFn) -> Reply:
        """Read a Server-Sent Events stream; a server that ignored ``stream`` still works."""
        if "text/event-stream" not in response.headers.get("content-type", ""):
            response.read()
            reply = self._reply(response)
            if reply.text:
                on_token(reply.text)
            return reply
        pieces: list[str] = []
        for payload in _sse_data(response.iter_lines()):
            try:
                chunk = json.loads(payload)
            except json.JSONDecodeError:
                what = f"a streamed piece that is not JSON: {_clip(payload)}"
                raise self._shape_error(what) from None
            self._raise_on_error_body(chunk)
            try:
                choices = chunk.get("choices") or []
                piece = (choices[0].get("delta") or {}).get("content") if choices else None
            except (AttributeError, TypeError):
                raise self._shape_error(f"a stream chunk without choices: {_clip(chunk)}") from None
            if piece:
                pieces.append(piece)
                on_token(piece)
        return Reply(text="".join(pieces))

    # --- errors ------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"the OpenAI-compatible server at {self.base_url}"

    def _transport_error(self, exc: httpx.HTTPError, timeout: float) -> ToolError:
        where = self._where()
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return ToolError(
                f"cannot reach {where} ({exc}); is the server running (for Ollama: "
                "`ollama serve`) and is openai.base_url right?"
            )
        if isinstance(exc, httpx.TimeoutException):
            return ToolError(
                f"{where} did not answer within {timeout:g}s; the model may still be "
                "loading or be too slow: try again, raise openai.timeout, or use a smaller model"
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            return ToolError(
                f"openai.base_url {self.base_url!r} is not an http(s) URL; "
                "use one like http://127.0.0.1:11434/v1"
            )
        return ToolError(f"{where} broke off the answer ({type(exc).__name__}: {exc}); try again")

    def _shape_error(self, what: str) -> ToolError:
        return ToolError(
            f"{self._where()} sent {what}; is it an OpenAI-compatible endpoint? "
            "openai.base_url usually ends in /v1"
        )

    def _raise_on_error_body(self, data: Any) -> None:
        """Some servers answer 200 with ``{"error": ...}``, or send one inside a stream."""
        if isinstance(data, dict) and data.get("error"):
            err = data["error"]
            said = err.get("message", err) if isinstance(err, dict) else err
            raise ToolError(
                f"{self._where()} reported an error: {_clip(said)}; "
                f"check the model name {self.model!r} and the server's log"
            )

    def _raise_for_status(self, response: httpx.Response) -> None:
        if not response.is_error:
            return
        code = response.status_code
        said = _error_message(response)
        if code in (401, 403):
            hint = "check openai.api_key (the bearer token) for this server"
        elif code == 404:
            hint = (
                f"check the model name {self.model!r} (for Ollama: `ollama pull {self.model}`) "
                "and that openai.base_url ends in /v1"
            )
        elif code == 429:
            hint = "the server is rate-limiting or out of quota; wait and try again"
        elif code >= 500:
            hint = "the server failed; its log says why (is the model loaded, is memory enough?)"
        else:
            hint = (
                f"check the model name {self.model!r}; a text-only model cannot take images, "
                "and a server without tool calls needs openai.native_tools = false"
            )
        raise ToolError(f"{self._where()} answered HTTP {code}: {said}; {hint}")


def _error_message(response: httpx.Response) -> str:
    """The server's own words: ``{"error": {"message": ...}}``, ``{"error": ...}``,
    ``{"detail": ...}``, or the body as text."""
    try:
        data = response.json()
    except ValueError:
        return _clip(response.text.strip()) or response.reason_phrase
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err:
            return _clip(err)
    return _clip(data)


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of a Server-Sent Events stream, up to ``data: [DONE]``.

    Comments (``: keep-alive``), ``event:``/``id:`` fields and blank lines are skipped.
    """
    for line in lines:
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        if payload:
            yield payload


def _clip(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


# --- the planner -----------------------------------------------------------------------------


def openai_planner(config: Any) -> LLMPlanner:
    """The planner on the ``[openai]`` endpoint of ``config``.

    Raises ``ToolError`` when the server cannot be reached or refuses the key, so
    ``make_planner`` can answer with why instead of failing mid-run.
    """
    c = config.openai
    backend = OpenAIBackend(c.base_url, c.model, api_key=c.api_key, timeout=c.timeout)
    backend.check()
    return LLMPlanner(backend, native_tools=c.native_tools, max_tokens=MAX_TOKENS)
