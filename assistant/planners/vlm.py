"""The transformers planner backend: a vision-language model (LLaVA, LLaVA-NeXT, Idefics3,
Qwen2.5-VL) that plans from the request and the attached images.

Loading, chat messages and generation live in ``tools.vlm``, shared with the vision tools: the
model loads through the model manager under ``tools.vlm.model_key``, so one copy serves both.
Decoding is not constrained here: the plan comes back as plain text, which ``LLMPlanner``
parses leniently and repairs; tool calls are not offered (the planner asks for JSON instead).
"""

from __future__ import annotations

import threading
from typing import Any

from assistant.planners.llm import LLMPlanner, Reply, TokenFn
from tools.errors import ToolError
from tools.vlm import (
    LoadedVLM,
    chat_inputs,
    chat_messages,
    check_available,
    generate,
    load_vlm,
    shared_vlm,
)

__all__ = [
    "LoadedVLM",
    "TransformersBackend",
    "chat_messages",
    "check_available",
    "load_vlm",
    "transformers_planner",
]

SETTING = "transformers.model"
"""The config key that names the planner's model, for error messages."""


class TransformersBackend:
    """A vision-language model run by transformers, loaded on the first chat.

    Args:
        model: A Hub id (``llava-hf/llava-1.5-7b-hf``) or a local folder.
        models: The model manager; when given, the model is loaded and cached through it.
        device: 'auto' (cuda, then mps, then cpu) or a torch device name.
        dtype: 'auto' (float16 on a GPU, float32 on a CPU) or a torch dtype name.
        max_new_tokens: The longest answer when a chat does not say.
    """

    name = "transformers"
    sees_images = True

    def __init__(
        self,
        model: str,
        *,
        models: Any = None,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 512,
    ):
        self.model = model
        self.models = models
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self._own: LoadedVLM | None = None
        self._lock = threading.Lock()

    def load(self) -> LoadedVLM:
        """The loaded model: through the manager when there is one (shared with the vision
        tools; it may evict it), else kept here."""
        if self.models is not None:
            return shared_vlm(
                self.model, self.models, device=self.device, dtype=self.dtype, setting=SETTING
            )
        with self._lock:
            if self._own is None:
                self._own = load_vlm(self.model, self.device, self.dtype, setting=SETTING)
            return self._own

    def inputs(self, vlm: LoadedVLM, messages: list[dict[str, Any]]) -> Any:
        """Token ids, attention mask and pixel values for ``messages``, on the model's device."""
        return chat_inputs(vlm, chat_messages(messages), self.model)

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        schema: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        on_token: TokenFn | None = None,
    ) -> Reply:
        """Greedy answer to ``messages``. ``schema`` and ``tools`` are ignored: decoding is not
        constrained here, and the planner asks for JSON text instead of tool calls."""
        vlm = self.load()
        batch = self.inputs(vlm, messages)
        text = generate(
            vlm, batch, max_new_tokens=max_tokens or self.max_new_tokens, on_token=on_token
        )
        return Reply(text=text)


def transformers_planner(config: Any, models: Any) -> LLMPlanner:
    """The planner on ``config.transformers.model``, on the configured device and precision.

    A model that surely cannot load raises ``ToolError`` here (``make_planner`` then explains
    it in a ``NoPlanner``); the weights themselves load on the first plan."""
    c = config.transformers
    if not c.model:
        raise ToolError(
            "no transformers model is configured: set transformers.model to a Hub id or folder "
            "(e.g. 'llava-hf/llava-1.5-7b-hf')"
        )
    check_available(c.model, models, SETTING)
    backend = TransformersBackend(
        c.model,
        models=models,
        device=config.device,
        dtype=config.dtype,
        max_new_tokens=c.max_new_tokens,
    )
    return LLMPlanner(backend, native_tools=False, max_tokens=c.max_new_tokens)
