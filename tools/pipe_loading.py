"""Finding and loading a diffusers model that a setting names, with errors that say how to fix
it: the video pipelines (tools/video_pipes.py) and Shap-E (tools/shap_e.py) load this way.

A setting's value is a catalog name, a folder or a Hub id (``tools.hf.model_source``). Weights
that are not installed raise ``ModelMissing`` with install advice (the tools then fall back or
say what to pull); weights that are there but are not what the setting is for raise a
``ToolError`` naming the setting.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tools.base import ToolContext
from tools.errors import ToolError
from tools.hf import check_cached, first_line, model_source


def pipeline_source(
    ctx: ToolContext, spec: str, setting: str, kind: str, example: str, marker: str
) -> str:
    """Where ``spec``'s files are, checked to hold ``marker`` (``model_index.json`` for a
    pipeline, ``config.json`` for a part).

    Args:
        ctx: The running tool's context (its model manager resolves catalog names).
        spec: The setting's value: a catalog name, a folder or a Hub id.
        setting: The setting's dotted name, for messages (``tools.mesh.generator``).
        kind: What the setting wants, in words ("a diffusers text-to-video pipeline").
        example: The catalog model to suggest.
        marker: The file a model folder of this kind holds.

    Raises:
        ModelMissing: Nowhere to be found; the message says how to install it.
        ToolError: A folder that is not a model of this kind.
    """
    from tools.diffusion import ModelMissing, install_advice
    from tools.model_files import ChecksumMismatch

    try:
        source = model_source(spec, ctx.models, setting)
        check_cached(spec, source, marker=marker, setting=setting)
    except ChecksumMismatch:
        raise
    except ToolError as exc:
        advice = install_advice(spec, setting, kind, example)
        if f"models pull {spec}`" in str(exc):  # the catalog's own message says how already
            advice = f"or set {setting} to a folder holding {kind}"
        raise ModelMissing(f"{exc}; {advice}") from None
    if Path(source).is_dir() and not (Path(source) / marker).is_file():
        raise ToolError(
            f"{source} holds no {marker}, so it is not {kind}; set {setting} to a folder "
            "saved with save_pretrained (or a Hub id)"
        )
    return source


def from_pretrained(
    cls: Any, source: str, spec: str, setting: str, kind: str, example: str, **kwargs: Any
) -> Any:
    """``cls.from_pretrained(source, **kwargs)`` with errors that name the model and the
    setting: files missing (``ModelMissing``), or weights that do not load as ``kind``."""
    from tools.diffusion import ModelMissing, install_advice

    try:
        return cls.from_pretrained(source, **kwargs)
    except OSError as exc:  # files missing from the folder or the cache
        advice = install_advice(spec, setting, kind, example)
        raise ModelMissing(
            f"cannot load {spec!r} ({setting}): {first_line(exc)}; {advice}"
        ) from None
    except (ValueError, TypeError, KeyError, RuntimeError, AttributeError) as exc:
        if "low_cpu_mem_usage" in str(exc) and importlib.util.find_spec("accelerate") is None:
            raise ToolError(
                f"cannot load {spec!r} ({setting}): diffusers loads this model (it keeps some "
                "layers in float32, as Wan does) only with the accelerate package; install "
                "it: `pip install accelerate`"
            ) from None
        raise ToolError(f"cannot load {spec!r} as {kind} ({setting}): {first_line(exc)}") from None


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' and diffusers' warnings at error level while a pipeline loads ("falling
    back to the Pil image processor"; Shap-E's Hub repos still list ``renderer``, the old
    name of ``shap_e_renderer``, which diffusers ignores with a warning)."""
    loggers = []
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        try:
            loggers.append(importlib.import_module(name))
        except ImportError:
            continue
    levels = [log.get_verbosity() for log in loggers]
    for log in loggers:
        log.set_verbosity_error()
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.set_verbosity(level)
