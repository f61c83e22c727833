"""anymodal's agent: the public API, the LangGraph graph, planners, config, CLI.

``from assistant import Assistant`` imports the graph machinery on first use only, so that
``anymodal --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.api import Assistant, AttachmentError
    from assistant.config import Config
    from assistant.events import RunResult
    from assistant.plan import Plan, PlanError

_LAZY = {
    "Assistant": "assistant.api",
    "AttachmentError": "assistant.api",
    "Config": "assistant.config",
    "RunResult": "assistant.events",
    "Plan": "assistant.plan",
    "PlanError": "assistant.plan",
}

__all__ = ["Assistant", "AttachmentError", "Config", "Plan", "PlanError", "RunResult"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assistant' has no attribute {name!r}")
