"""The model manager hook tools load models through: lazy, cached, one load per name."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class ModelManager:
    """Loads each named model once, on first use, even when several steps ask at once.

    The catalog, sha256 verification, device choice and memory budget build on this.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def load(self, name: str, loader: Callable[[], Any]) -> Any:
        """Return the model called ``name``, calling ``loader()`` the first time only."""
        if name in self._loaded:
            return self._loaded[name]
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._loaded:
                self._loaded[name] = loader()
            return self._loaded[name]

    def loaded(self) -> list[str]:
        return list(self._loaded)

    def unload(self, name: str) -> None:
        self._loaded.pop(name, None)
