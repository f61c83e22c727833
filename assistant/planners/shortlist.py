"""Choosing the tools a planner sees when many are registered: the most similar to the
request by sentence embedding (MiniLM offline pack), plus every tool the user names."""

from __future__ import annotations

import re
from typing import Any

from assistant.planners.base import PlanRequest
from tools.artifact import Modality

EMBEDDER = "all-minilm-l6-v2"
"""The sentence embedder (``memory.embed.MiniLMEmbedder``), shared with the memory's text
space under this catalog name."""


def named_tools(prompt: str, names: list[str]) -> set[str]:
    """Tools the request names outright: ``resize_image`` or "resize image"."""
    text = prompt.lower()
    return {
        n
        for n in names
        if re.search(rf"\b{re.escape(n)}\b", text)
        or re.search(rf"\b{re.escape(n.replace('_', ' '))}\b", text)
    }


class Shortlist:
    """Callable for ``LLMPlanner(shortlist=...)``: the tools the planner sees.

    While the tools are few (``size`` or fewer) all are shown, so the prompt prefix that lists
    them stays the same and stays in the model's cache (measured: a long uncached tool list
    costs seconds per request on a CPU). With more, only the ``size`` most similar to the
    request plus any the user names are shown, in registry order so that prompts sharing
    tools share a prefix.
    """

    def __init__(self, embedder: Any, size: int):
        self._embedder = embedder  # a callable returning the embedder: loaded on first need
        self.size = size
        self._cache: dict[tuple[str, ...], Any] = {}

    def rank(self, request: PlanRequest) -> list[int]:
        """Indexes of ``request.tools``, most relevant first."""
        tools = request.tools
        key = tuple(t["name"] for t in tools)
        if key not in self._cache:
            self._cache[key] = self._embedder().embed(
                [f"{t['name'].replace('_', ' ')}: {t['description']}" for t in tools]
            )
        query = self._embedder().embed([request.prompt])[0]
        scores = (self._cache[key] @ query).tolist()
        # Tools that take the attached modalities get a nudge: they are usually wanted.
        attached = {a.modality.value for a in request.attachments if a.modality != Modality.FILE}
        for i, t in enumerate(tools):
            if attached & set(t.get("input_modalities", [])):
                scores[i] += 0.05
        return sorted(range(len(tools)), key=lambda i: -scores[i])

    def __call__(self, request: PlanRequest) -> list[dict[str, Any]]:
        tools = request.tools
        if len(tools) <= self.size:
            return tools
        ranked = self.rank(request)
        named = named_tools(request.prompt, [t["name"] for t in tools])
        keep = set(ranked[: self.size]) | {i for i, t in enumerate(tools) if t["name"] in named}
        return [t for i, t in enumerate(tools) if i in keep]
