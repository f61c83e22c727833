"""Which language model plans: the ones the catalog offers, and switching between them.

The TUI's ``/model`` and ``Assistant.use_model`` use this. A switch changes the config in
memory only (config.toml is the place for a lasting choice); the next turn builds its
planner from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

TASK_BACKEND = {"llm": "llama", "image-text-to-text": "transformers"}
"""Catalog tasks whose models can plan, and the backend that runs each."""


@dataclass(frozen=True)
class PlannerModel:
    name: str
    backend: str
    installed: bool
    in_use: bool
    description: str = ""


def current(config: Any) -> tuple[str, str]:
    """``(backend, model)`` that plans now ('auto' and 'scripted' mean llama.cpp)."""
    backend = config.planner if config.planner in ("transformers", "openai") else "llama"
    model = getattr(config, backend).model
    return backend, str(model or "(none set)")


def planner_models(config: Any, models: Any) -> list[PlannerModel]:
    """The catalog's planning models, with whether each is installed and which is in use."""
    backend_now, model_now = current(config)
    rows = []
    for entry in models.catalog.entries():
        backend = TASK_BACKEND.get(entry.task)
        if backend is None:
            continue
        rows.append(
            PlannerModel(
                name=entry.name,
                backend=backend,
                installed=models.status(entry.name).installed,
                in_use=(backend, entry.name) == (backend_now, model_now),
                description=entry.description,
            )
        )
    return rows


def use_model(config: Any, models: Any, name: str) -> str:
    """Plan with ``name`` from the next turn: a catalog model (llama.cpp for GGUF language
    models, transformers for vision-language ones), a .gguf file, or ``openai:MODEL`` for the
    configured OpenAI-compatible endpoint. Returns what is in use now, in words.

    Raises ``ValueError`` naming what was wrong (unknown name, not installed).
    """
    name = name.strip()
    if name.startswith("openai:") and name[len("openai:") :]:
        config.planner, config.openai.model = "openai", name[len("openai:") :]
        return f"planning with {config.openai.model} at {config.openai.base_url}"
    if name.endswith(".gguf"):
        if not Path(name).expanduser().is_file():
            raise ValueError(f"no GGUF file at {name}")
        config.planner, config.llama.model = "llama", str(Path(name).expanduser())
        return f"planning with llama.cpp on {name}"
    choices = {m.name: m for m in planner_models(config, models)}
    if name not in choices:
        known = ", ".join(sorted(choices)) or "none in the catalog"
        raise ValueError(
            f"{name!r} is not a planning model; choose one of: {known}, a .gguf file, "
            "or openai:MODEL for the configured OpenAI-compatible endpoint"
        )
    chosen = choices[name]
    if not chosen.installed:
        raise ValueError(f"{name} is not installed; run `anymodal models pull {name}` first")
    config.planner = chosen.backend
    getattr(config, chosen.backend).model = name
    return f"planning with {name} ({chosen.backend})"
