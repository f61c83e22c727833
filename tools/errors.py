"""Errors a tool raises for failures the user or the planner can act on."""

from __future__ import annotations

import importlib
from types import ModuleType


class ToolError(Exception):
    """A failure with a message that says what was wrong and what to do about it."""


class MissingExtra(ToolError):
    """An optional dependency is not installed; the message names the pip line."""

    def __init__(self, module: str, extra: str):
        self.module = module
        self.extra = extra
        super().__init__(
            f"this needs the Python package '{module}', which is not installed; "
            f"install it with: pip install 'anymodal[{extra}]'"
        )


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise ``MissingExtra`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(module.split(".")[0], extra) from exc
