"""The model manager: named models resolved to verified files, loaded lazily, kept under a
memory budget (least recently used out first), on an automatically chosen device and dtype.

Tools ask for a model by name: ``ctx.models.load("all-minilm-l6-v2", lambda path: ...)``.
Where the files come from (a local path, an offline pack, the Hub) is ``tools.model_files``;
which models exist is ``tools.catalog``.
"""

from __future__ import annotations

import gc
import inspect
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.catalog import Catalog, CatalogError, UnknownModel
from tools.errors import ToolError
from tools.model_files import (
    MB,
    ChecksumMismatch,
    FileCheck,
    ModelFiles,
    ModelNotInstalled,
    ModelStatus,
    Progress,
    Resolved,
    human_size,
)

__all__ = [
    "CatalogError",
    "ChecksumMismatch",
    "FileCheck",
    "ModelManager",
    "ModelNotInstalled",
    "ModelStatus",
    "ModelTooLarge",
    "Resolved",
    "UnknownModel",
]


class ModelTooLarge(ToolError):
    """A model larger than the whole memory budget."""

    def __init__(self, name: str, size: int, budget: int):
        self.name, self.size, self.budget = name, size, budget
        super().__init__(
            f"model '{name}' needs {human_size(size)} but the whole model memory budget is "
            f"{human_size(budget)}; raise model_budget_mb in config.toml to at least "
            f"{-(-size // MB)} (or ANYMODAL_MODEL_BUDGET_MB), or use a smaller model"
        )


@dataclass
class _Loaded:
    value: Any
    size: int


def _wants_path(loader: Callable[..., Any]) -> bool:
    """Whether ``loader`` takes the resolved path (one positional parameter) or nothing."""
    try:
        params = inspect.signature(loader).parameters.values()
    except (TypeError, ValueError):
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(
        p.kind is inspect.Parameter.VAR_POSITIONAL or (p.kind in kinds and p.default is p.empty)
        for p in params
    )


def _default_cache_dir() -> Path:
    # The rule of assistant.paths.cache_dir (tools cannot import assistant); callers pass theirs.
    if home := os.environ.get("ANYMODAL_HOME"):
        return Path(home).expanduser() / "cache"
    import platformdirs

    return Path(platformdirs.user_cache_dir("anymodal"))


class ModelManager:
    """Resolves, verifies and loads named models; one load per model even when threads race.

    Args:
        cache_dir: Where packs are assembled and downloads go (``<cache_dir>/models/<name>/``);
            unset, anymodal's cache folder.
        models: Extra catalog entries by name (the config's ``models``), merged over the
            built-in ones.
        budget_bytes: Memory loaded models may use together; None means no limit.
        device: 'auto' (cuda, then mps, then cpu) or a torch device name.
        dtype: 'auto' (float16 on a GPU, float32 on a CPU) or a torch dtype name.
        hub_endpoint: A Hugging Face Hub mirror; unset, huggingface_hub's default.
    """

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        *,
        models: dict[str, dict[str, Any]] | None = None,
        budget_bytes: int | None = None,
        device: str = "auto",
        dtype: str = "auto",
        hub_endpoint: str | None = None,
    ) -> None:
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._extra = dict(models or {})
        self._catalog: Catalog | None = None
        self.budget_bytes = budget_bytes
        self._device = device
        self._dtype = dtype
        self.hub_endpoint = hub_endpoint
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._files: ModelFiles | None = None
        self._guard = threading.Lock()

    # --- catalog and files --------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        if self._cache_dir is None:
            self._cache_dir = _default_cache_dir()
        return self._cache_dir

    @property
    def catalog(self) -> Catalog:
        """Built-in entries plus the user's, read on first use."""
        with self._guard:
            if self._catalog is None:
                self._catalog = Catalog.load(self._extra)
            return self._catalog

    @property
    def files(self) -> ModelFiles:
        """The on-disk side: resolving, assembling, downloading, verifying."""
        cache_dir = self.cache_dir
        with self._guard:
            if self._files is None:
                self._files = ModelFiles(cache_dir, self.hub_endpoint)
            return self._files

    def folder(self, name: str) -> Path:
        """The cache folder a model is assembled or downloaded into."""
        return self.files.folder(name)

    def resolve(self, name: str, progress: Progress | None = None) -> Resolved:
        """The model's verified files from the first source that works; never downloads.

        Raises:
            UnknownModel, ModelNotInstalled, ChecksumMismatch.
        """
        return self.files.resolve(self.catalog.get(name), progress)

    def path(self, name: str) -> Path:
        """The file (or folder) to load; raises ``ModelNotInstalled`` when there is none."""
        return self.resolve(name).path

    def pull(self, name: str, progress: Progress | None = None) -> Resolved:
        """Make the model available, downloading it from the Hub when no local source works."""
        return self.files.pull(self.catalog.get(name), progress)

    def status(self, name: str) -> ModelStatus:
        """Installed or not, where, from which source; cheap (nothing hashed or assembled)."""
        return self.files.status(self.catalog.get(name))

    def verify(self, name: str) -> list[FileCheck]:
        """Hash every file of an installed model afresh; one ``FileCheck`` per file."""
        return self.files.verify(self.catalog.get(name))

    # --- loading ------------------------------------------------------------------------------

    def load(
        self,
        name: str,
        loader: Callable[..., Any],
        *,
        size_bytes: int | Callable[[], int | None] | None = None,
    ) -> Any:
        """Return the model called ``name``, calling ``loader`` the first time only.

        For a catalog name the files are resolved and verified first, and a loader that takes
        one argument receives the resolved path; a loader without arguments is called as is
        (any name works then). Loading one model a second time while another thread is
        loading it waits for that load.

        Args:
            name: A catalog name, or any key for a model the loader builds itself.
            loader: ``() -> model`` or ``(path) -> model``.
            size_bytes: Memory the model takes, or a function giving it (called only when the
                model is really loaded, e.g. to add up weight files); unset, the catalog's
                size (else 0).

        Raises:
            ModelTooLarge: The model alone exceeds the budget.
            UnknownModel, ModelNotInstalled, ChecksumMismatch: From resolving its files.
        """
        if (hit := self._hit(name)) is not None:
            return hit.value
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if (hit := self._hit(name)) is not None:
                return hit.value
            entry = self.catalog.get(name) if name in self.catalog else None
            if callable(size_bytes):
                size_bytes = size_bytes()
            size = size_bytes if size_bytes is not None else (entry and entry.total_size) or 0
            if self.budget_bytes is not None and size > self.budget_bytes:
                raise ModelTooLarge(name, size, self.budget_bytes)
            wants_path = _wants_path(loader)
            if entry is None and wants_path:
                self.catalog.get(name)  # raises UnknownModel: there is no path to give
            path = self.resolve(name).path if entry is not None else None
            self._evict(size, keep=name)
            value = loader(path) if wants_path else loader()
            with self._guard:
                self._loaded[name] = _Loaded(value, size)
            self._evict(0, keep=name)
            return value

    def _hit(self, name: str) -> _Loaded | None:
        with self._guard:
            hit = self._loaded.get(name)
            if hit is not None:
                self._loaded.move_to_end(name)
            return hit

    def _evict(self, need: int, keep: str) -> None:
        """Drop least recently used models until ``need`` more bytes fit in the budget."""
        if self.budget_bytes is None:
            return
        dropped = []
        with self._guard:
            for other in list(self._loaded):
                if sum(m.size for m in self._loaded.values()) + need <= self.budget_bytes:
                    break
                if other != keep:
                    dropped.append(self._loaded.pop(other))
        if dropped:
            dropped.clear()
            _free_memory()

    def loaded(self) -> list[str]:
        """Names of the loaded models, least recently used first."""
        with self._guard:
            return list(self._loaded)

    def unload(self, name: str) -> None:
        with self._guard:
            self._loaded.pop(name, None)

    @property
    def used_bytes(self) -> int:
        with self._guard:
            return sum(m.size for m in self._loaded.values())

    # --- device and precision -----------------------------------------------------------------

    @property
    def device(self) -> str:
        """'cuda', 'mps' or 'cpu' (or what was asked for); imports torch only for 'auto'."""
        if self._device == "auto":
            self._device = pick_device("auto")
        return self._device

    @property
    def dtype(self) -> str:
        """Precision name: float16 on a GPU, float32 on a CPU, unless set."""
        return pick_dtype(self._dtype, self.device)

    @property
    def torch_dtype(self) -> Any:
        """``dtype`` as a ``torch.dtype``."""
        import torch

        return getattr(torch, self.dtype)


_defaults: dict[Path, ModelManager] = {}
_defaults_lock = threading.Lock()


def manager_of(ctx: Any) -> ModelManager:
    """``ctx.models``, else a default manager per cache folder kept for the process, so that
    tools called directly from Python (no assistant, no manager) still resolve catalog names
    and load each model once."""
    if ctx.models is not None:
        return ctx.models
    fresh = ModelManager()
    with _defaults_lock:
        return _defaults.setdefault(fresh.cache_dir.resolve(), fresh)


def pick_device(setting: str = "auto") -> str:
    """``setting`` as given, or for 'auto' the first of cuda, mps, cpu that is available."""
    if setting != "auto":
        return setting
    try:
        import torch
    except ImportError:
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    return "mps" if mps is not None and mps.is_available() else "cpu"


def pick_dtype(setting: str, device: str) -> str:
    """Precision name: ``setting``, or for 'auto' float16 on a GPU and float32 on a CPU."""
    if setting != "auto":
        return setting
    return "float16" if device.split(":")[0] in ("cuda", "mps") else "float32"


def _free_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
