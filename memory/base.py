"""The memory's core types: an item to index, an embedding space, a search hit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tools.artifact import Artifact, Modality


@dataclass
class Item:
    """One thing to embed: an artifact, or a text query."""

    modality: Modality
    artifact: Artifact | None = None
    text: str = ""
    """The text of a text item, or the derived text of an artifact (captions, OCR, transcript,
    name, prompt), joined."""


class Space(Protocol):
    """A named embedding space: which modalities it joins, and how to embed them.

    Vectors are float32, L2-normalised (so inner product is cosine similarity), shaped
    ``(len(items), dim)``. A space embeds only items of its modalities; ``Modality.TEXT``
    items are embedded from ``Item.text``.
    """

    name: str
    dim: int
    modalities: frozenset[Modality]

    def embed(self, items: list[Item]) -> Any: ...


@dataclass
class Hit:
    """One search result."""

    id: str
    """The artifact id."""
    path: str
    modality: Modality
    score: float
    """Cosine similarity in the space that found it (higher is closer)."""
    space: str = ""
    session: str | None = None
    name: str = ""
    text: str = ""
    """Derived text, for the reader and the planner."""
    created: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "modality": self.modality.value,
            "score": round(self.score, 6),
            "space": self.space,
            "session": self.session,
            "name": self.name,
        }
