"""The llama.cpp backend (GGUF models through xllamacpp): the embedded default planner.

Plans are decoded under a grammar made from the plan's JSON schema, written compactly (no
whitespace tokens), so they always parse. The fixed prompt prefix (instructions and tools)
stays in the KV cache between requests (llama.cpp's prompt cache), so a second request only
reads its own new tokens.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import threading
from pathlib import Path
from typing import Any

from assistant.planners.llm import Reply, TokenFn
from tools.errors import ToolError, require


def compact_grammar(schema: dict[str, Any]) -> str:
    """A llguidance grammar for ``schema`` that allows no optional whitespace."""
    xlc = require("xllamacpp", "llm")
    guided = {**schema, "x-guidance": {"whitespace_flexible": False, "lenient": True}}
    return str(xlc.json_schema_to_grammar(guided))


def _image_part(path: str) -> dict[str, Any]:
    mime = mimetypes.guess_type(path)[0] or "image/png"
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


class LlamaCppBackend:
    """One GGUF model served in-process by llama.cpp."""

    name = "llama.cpp"

    def __init__(
        self,
        model_path: Path,
        *,
        mmproj: Path | None = None,
        n_ctx: int = 8192,
        threads: int = 0,
        temperature: float = 0.0,
        prefix_cache: bool = True,
    ):
        self.model_path = Path(model_path)
        self.mmproj = Path(mmproj) if mmproj else None
        self.sees_images = self.mmproj is not None
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        self.temperature = temperature
        self.prefix_cache = prefix_cache
        self._server: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """Start the in-process llama.cpp server (once)."""
        with self._lock:
            if self._server is None:
                xlc = require("xllamacpp", "llm")
                if not self.model_path.is_file():
                    raise ToolError(f"the planner model {self.model_path} does not exist")
                p = xlc.CommonParams()
                p.model.path = str(self.model_path)
                if self.mmproj is not None:
                    p.mmproj.path = str(self.mmproj)
                p.n_ctx = self.n_ctx
                p.n_parallel = 1
                p.cpuparams.n_threads = self.threads
                p.cpuparams_batch.n_threads = self.threads
                p.warmup = False
                p.verbosity = -1
                p.cache_prompt = self.prefix_cache
                self._server = xlc.Server(p)
            return self._server

    def _messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for m in messages:
            content = m["content"]
            if isinstance(content, list):
                parts = []
                for part in content:
                    if part.get("type") == "image":
                        if self.sees_images:
                            parts.append(_image_part(part["path"]))
                    else:
                        parts.append(part)
                text_only = all(p.get("type") == "text" for p in parts)
                content = "\n".join(p["text"] for p in parts) if text_only else parts
            out.append({"role": m["role"], "content": content})
        return out

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        on_token: TokenFn | None = None,
    ) -> Reply:
        server = self.load()
        request: dict[str, Any] = {
            "messages": self._messages(messages),
            "max_tokens": max_tokens or 512,
            "temperature": self.temperature,
            "cache_prompt": self.prefix_cache,
        }
        if schema is not None:
            request["grammar"] = compact_grammar(schema)
        if tools:
            request["tools"] = tools
        if on_token is None:
            out = server.handle_chat_completions(request)
            _raise_on_error(out)
            message = out["choices"][0]["message"]
            calls = [
                {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
                for c in message.get("tool_calls") or []
            ]
            return Reply(text=message.get("content") or "", tool_calls=calls)
        chunks: list[str] = []

        def take(chunk: Any) -> None:
            if isinstance(chunk, str):
                chunk = json.loads(chunk)
            _raise_on_error(chunk)
            for choice in chunk.get("choices", []):
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    chunks.append(piece)
                    on_token(piece)

        server.handle_chat_completions({**request, "stream": True}, take)
        return Reply(text="".join(chunks))


def _raise_on_error(out: Any) -> None:
    if isinstance(out, dict) and "error" in out:
        err = out["error"]
        raise ToolError(f"llama.cpp: {err.get('message', err) if isinstance(err, dict) else err}")
