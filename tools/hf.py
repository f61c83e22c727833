"""Naming Hugging Face models (transformers, diffusers) the way a user does: a catalog name, a
local folder, or a Hub id; and errors that say which model failed and what to do about it.

Hub ids load through ``from_pretrained`` from the Hugging Face cache; with ``HF_HUB_OFFLINE=1``
a model that is not cached fails in about two seconds, so ``check_cached`` fails first, cheaply.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import ToolError, require

if TYPE_CHECKING:
    from tools.base import ToolContext

HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (library errors run long)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` forbids the Hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def model_source(spec: str, models: Any = None, setting: str = "the model setting") -> str:
    """What to hand ``from_pretrained``: a catalog model's folder, a local folder (absolute),
    or a Hub id.

    Args:
        spec: A catalog name, a folder, or a Hub id such as 'stabilityai/sd-turbo'.
        models: The model manager; with it, catalog names resolve to their verified folder.
        setting: The config key that names the model, for the error message.

    Raises:
        ToolError: ``spec`` looks like a path but no such folder exists.
        ModelNotInstalled: A catalog model with no installed source.
    """
    if models is not None and spec in models.catalog:
        return str(models.path(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if not HUB_ID.match(spec):
        raise ToolError(
            f"the model folder {spec} does not exist; set {setting} to a folder holding the "
            "model's files, to a catalog name (`anymodal models list`), or to a Hub id"
        )
    return spec


def not_found(spec: str, why: BaseException | str, setting: str = "the model setting") -> ToolError:
    """The error for a model that cannot be read: offline and not cached, or no such model."""
    where = (
        "HF_HUB_OFFLINE is set, so only models already in the Hugging Face cache load"
        if offline()
        else "it could not be read or downloaded (HF_HUB_OFFLINE is not set)"
    )
    reason = why if isinstance(why, str) else first_line(why)
    return ToolError(
        f"cannot load the model {spec!r}: {where} ({reason}). Download it where the Hub can "
        f"be reached (`hf download {spec}`), or set {setting} to a local folder"
    )


def check_cached(
    spec: str, source: str, marker: str = "config.json", setting: str = "the model setting"
) -> None:
    """Fail now when ``source`` is a Hub id that surely cannot load: offline and its
    ``marker`` file (config.json; model_index.json for diffusers) is not in the cache."""
    if Path(source).is_dir() or not offline():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(source, marker), str):
        raise not_found(spec, f"its {marker} is not in the Hugging Face cache", setting)


def weights_size(source: str) -> int | None:
    """Bytes of the weight files under a local model folder (about what loading costs);
    None for a Hub id."""
    path = Path(source).expanduser()
    if not path.is_dir():
        return None
    files = [p for ext in ("*.safetensors", "*.bin") for p in path.rglob(ext)]
    return sum(f.stat().st_size for f in files) or None


def load_pretrained(ctx: ToolContext, spec: str, setting: str, what: str, auto_class: str) -> Any:
    """``(model, processor)`` for ``spec``, through the model manager when there is one; a
    missing transformers names the image extra (the vision tools' one)."""
    return pretrained(ctx.models, spec, setting, what, auto_class, extra="image")


def pretrained(
    models: Any, spec: str, setting: str, what: str, auto_class: str, extra: str = "vlm"
) -> Any:
    """``(model, processor)`` for ``spec`` through the model manager ``models`` (loaded
    directly when it is None) under the key ``transformers:<source>``, so every user of one
    model (the audio tagger and the memory's CLAP, say) shares one copy.

    Raises:
        ToolError: The model is not installed (with what to do), or cannot be loaded.
    """
    source = model_source(spec, models, setting)
    check_cached(spec, source, setting=setting)

    def loader() -> tuple[Any, Any]:
        torch = require("torch", extra)
        transformers = require("transformers", extra)
        hf_logging = transformers.utils.logging
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # e.g. "falling back to the Pil image processor"
        try:
            processor = transformers.AutoProcessor.from_pretrained(source)
            dtype = models.torch_dtype if models is not None else torch.float32
            model = getattr(transformers, auto_class).from_pretrained(source, dtype=dtype)
        except OSError as exc:
            if not Path(source).is_dir():
                raise not_found(spec, exc, setting) from exc
            raise ToolError(
                f"cannot load the {what} from {source}: {first_line(exc)}; the folder must hold "
                "a transformers model (config.json, weights, processor files)"
            ) from exc
        except (ValueError, KeyError, ImportError) as exc:
            raise ToolError(
                f"{spec!r} is not a {what} transformers can load here: {first_line(exc)}; "
                f"set {setting} to another model"
            ) from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        device = models.device if models is not None else "cpu"
        return model.to(device).eval(), processor

    if models is None:
        return loader()
    key = f"transformers:{source}"
    return models.load(key, loader, size_bytes=lambda: weights_size(source))


def model_inputs(batch: Any, model: Any) -> dict[str, Any]:
    """Processor outputs on the model's device, floats in the model's precision."""
    out = {}
    for key, value in dict(batch).items():
        if hasattr(value, "to"):
            value = value.to(model.device)
            value = value.to(model.dtype) if value.is_floating_point() else value
        out[key] = value
    return out
