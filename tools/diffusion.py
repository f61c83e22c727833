"""Diffusers pipelines for the image tools: loading them (cached by the model manager), deriving
image-to-image and inpainting pipelines from a loaded one, few-step defaults, valid sizes, and
running a pipeline with per-step progress, cheap previews, cancellation and style images.

Nothing here is imported by ``import tools``: torch and diffusers load on first use.
"""

from __future__ import annotations

import inspect
import json
import threading
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tools.base import ToolContext
from tools.errors import ToolError, require
from tools.hf import HUB_ID, check_cached, first_line, model_source, offline, weights_size

TASK_CLASSES = {
    "text2image": "AutoPipelineForText2Image",
    "image2image": "AutoPipelineForImage2Image",
    "inpaint": "AutoPipelineForInpainting",
    "instruct": "DiffusionPipeline",  # the class model_index.json names (InstructPix2Pix ...)
}
EXAMPLE_MODEL = {
    "tools.image.instruct_editor": "instruct-pix2pix",
    "tools.image.ip_adapter": "ip-adapter-sd15",
}
"""A catalog model to suggest, per setting (the rest suggest SD-Turbo)."""
FEW_STEP_MARKERS = ("turbo", "lightning", "hyper-sd")
PREVIEW_SIDE = 128

# Linear latent -> RGB approximations for 4-channel SD latents (as ComfyUI's previews use).
_SD_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
_SDXL_FACTORS = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
_SDXL_BIAS = (0.1084, -0.0175, -0.0011)


class ModelMissing(ToolError):
    """A model's weights are not installed: not in the Hugging Face cache, no such folder,
    or a catalog model that was never pulled. The message says how to install it."""


def install_advice(
    spec: str, setting: str, kind: str = "a diffusers model", example: str | None = None
) -> str:
    """How to get a model for ``setting``: pull the catalog entry ``spec`` names, download the
    Hub id into the Hugging Face cache, or point the setting at a folder holding ``kind``;
    ``example`` is the catalog model to suggest (by default the setting's image model)."""
    folder = f"set {setting} to a folder holding {kind}"
    if HUB_ID.match(spec) and "/" in spec:
        return f"download it where the Hub can be reached (`hf download {spec}`), or {folder}"
    if HUB_ID.match(spec):  # a catalog name
        return f"fetch it where the Hub can be reached (`anymodal models pull {spec}`), or {folder}"
    example = example or EXAMPLE_MODEL.get(setting, "sd-turbo")
    return f"{folder}, or to a catalog model such as {example!r} (`anymodal models pull {example}`)"


@dataclass
class Family:
    """What the pipelines sharing one set of weights share: a lock (a pipeline runs one call at
    a time, and derived pipelines share its scheduler and UNet), the derived pipelines, and
    the IP-Adapter state of the shared UNet."""

    members: list[Any]
    """The pipeline objects: the loaded one first, then those derived from it."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    derived: dict[str, Pipe] = field(default_factory=dict)
    ip_key: str | None = None
    """Which IP-Adapter (source, subfolder, weight) the UNet holds, if any."""
    ip_parts: dict[str, Any] = field(default_factory=dict)
    """The image encoder (and feature extractor) loading that IP-Adapter created."""


@dataclass
class Pipe:
    """A loaded pipeline and the family of pipelines sharing its weights."""

    pipe: Any
    spec: str
    """The setting's value (catalog name, folder or Hub id): how the user named the model."""
    source: str
    family: Family

    @classmethod
    def new(cls, pipe: Any, spec: str, source: str) -> Pipe:
        return cls(pipe, spec, source, Family([pipe]))

    @property
    def name(self) -> str:
        return type(self.pipe).__name__

    @property
    def lock(self) -> threading.Lock:
        return self.family.lock

    def derive(self, task: str, setting: str) -> Pipe:
        """The ``task`` pipeline (image2image, inpaint) sharing this one's weights."""
        family = self.family
        with family.lock:
            if task not in family.derived:
                diffusers = require("diffusers", "image")
                auto = getattr(diffusers, TASK_CLASSES[task])
                try:
                    new = auto.from_pipe(self.pipe, **dtype_kwarg(diffusers, self.pipe.dtype))
                except (ValueError, TypeError, KeyError) as exc:
                    raise ToolError(
                        f"{self.spec} ({self.name}) has no {task} variant ({first_line(exc)}); "
                        f"set {setting} to a {task} model"
                    ) from None
                new.set_progress_bar_config(disable=True)
                family.members.append(new)
                family.derived[task] = Pipe(new, self.spec, self.source, family)
            return family.derived[task]


def _has_safety_checker(source: str) -> bool:
    """Whether the model's model_index.json lists a safety checker (True when unreadable)."""
    index: Any = Path(source) / "model_index.json"
    if not Path(source).is_dir():
        from huggingface_hub import try_to_load_from_cache

        index = try_to_load_from_cache(source, "model_index.json")
        if not isinstance(index, str):
            return True
    try:
        return "safety_checker" in json.loads(Path(index).read_text())
    except (OSError, ValueError):
        return True


def dtype_kwarg(diffusers: Any, dtype: Any) -> dict[str, Any]:
    """``{"dtype": dtype}`` where diffusers takes it (0.42 on), else ``{"torch_dtype": ...}``."""
    deprecation = getattr(getattr(diffusers, "utils", None), "deprecation_utils", None)
    new = hasattr(deprecation, "_TORCH_DTYPE_DEPRECATION_MESSAGE")
    return {"dtype" if new else "torch_dtype": dtype}


def _params(pipe: Any) -> Any:
    cls: Any = type(pipe)
    return _call_params(cls)


@cache
def _call_params(cls: Any) -> Any:
    return inspect.signature(cls.__call__).parameters


def device_and_dtype(ctx: ToolContext) -> tuple[str, Any]:
    """The model manager's device and torch dtype; cpu and float32 without one."""
    import torch

    if ctx.models is None:
        return "cpu", torch.float32
    return ctx.models.device, ctx.models.torch_dtype


def load_pipe(ctx: ToolContext, spec: str, setting: str, task: str = "text2image") -> Pipe:
    """Load the diffusers pipeline ``spec`` names for ``task``, once per model manager.

    Raises:
        ModelMissing: The weights are not installed (not cached, no such folder or model).
        ToolError: They are there but cannot be loaded.
    """
    from tools.model_files import ChecksumMismatch

    diffusers = require("diffusers", "image")
    try:
        source = model_source(spec, ctx.models, setting)
        check_cached(spec, source, marker="model_index.json", setting=setting)
    except ChecksumMismatch:
        raise
    except ToolError as exc:
        raise ModelMissing(f"{exc}; {install_advice(spec, setting)}") from None
    if Path(source).is_dir() and not (Path(source) / "model_index.json").is_file():
        raise ToolError(
            f"{source} holds no model_index.json, so it is not a diffusers pipeline; "
            f"set {setting} to a folder saved with save_pretrained (or a Hub id)"
        )
    safety = ctx.settings.image.safety_checker

    def loader() -> Pipe:
        ctx.report(0.0, f"loading {spec}")
        device, dtype = device_and_dtype(ctx)
        kwargs = dtype_kwarg(diffusers, dtype)
        if not safety and _has_safety_checker(source):
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        cls = getattr(diffusers, TASK_CLASSES[task])
        try:
            pipe = cls.from_pretrained(source, **kwargs)
        except OSError as exc:
            raise ModelMissing(
                f"cannot load {spec!r} ({setting}): {first_line(exc)}; "
                + install_advice(spec, setting)
            ) from None
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise ToolError(
                f"cannot load {spec!r} as a {task} pipeline ({setting}): {first_line(exc)}"
            ) from None
        if task == "instruct" and "image_guidance_scale" not in _params(pipe):
            raise ToolError(
                f"{spec} ({type(pipe).__name__}) is not an instruction-editing pipeline; "
                f"set {setting} to an InstructPix2Pix model such as timbrooks/instruct-pix2pix"
            )
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return Pipe.new(pipe, spec, source)

    key = "diffusers:" if task == "text2image" else f"diffusers-{task}:"
    key += source + ("+safety" if safety else "")
    if ctx.models is None:
        return loader()
    return ctx.models.load(key, loader, size_bytes=lambda: weights_size(source))


def task_pipe(ctx: ToolContext, task: str, spec: str | None, setting: str, label: str) -> Pipe:
    """The ``task`` pipeline: the model ``spec`` names, else one derived from the generator."""
    try:
        if spec:
            return load_pipe(ctx, spec, setting, task)
        base = load_pipe(ctx, ctx.settings.image.generator, "tools.image.generator")
    except ModelMissing as exc:
        raise ToolError(f"{label} has no model to work with: {exc}") from None
    return base.derive(task, setting)


@dataclass(frozen=True)
class Defaults:
    """Steps and guidance a model works best with when the caller gives none."""

    steps: int
    guidance: float
    kind: str
    """'turbo' (adversarially distilled: 1-4 steps, no guidance), 'lcm' or 'standard'."""


def few_step_defaults(pipe: Any, *names: str) -> Defaults:
    """Defaults for ``pipe``: few steps for turbo and LCM models, else 25 steps at 7.5.

    Turbo-like models are told by name (the setting, the folder, the pipeline's own name);
    LCM models by a UNet with a guidance embedding (``time_cond_proj_dim``) or an
    ``LCMScheduler``.
    """
    text = " ".join([*names, str(getattr(pipe.config, "_name_or_path", ""))]).lower()
    unet = getattr(pipe, "unet", None)
    if unet is not None and getattr(unet.config, "time_cond_proj_dim", None):
        return Defaults(4, 8.0, "lcm")  # distilled LCM: the guidance goes in as an embedding
    if type(getattr(pipe, "scheduler", None)).__name__ == "LCMScheduler":
        return Defaults(4, 1.0, "lcm")  # LCM-LoRA style: classifier-free guidance off
    if any(marker in text for marker in FEW_STEP_MARKERS):
        return Defaults(2, 0.0, "turbo")
    return Defaults(25, 7.5, "standard")


def scale_factor(pipe: Any) -> int:
    """Pixels per latent cell: width and height must be multiples of it."""
    return int(getattr(pipe, "vae_scale_factor", 8) or 8)


def native_size(pipe: Any) -> int:
    """The side the model was trained at (512 for SD 1.x and SD-Turbo, 1024 for SDXL)."""
    sample = getattr(pipe, "default_sample_size", None)
    unet = getattr(pipe, "unet", None)
    if sample is None and unet is not None:
        sample = unet.config.sample_size
    if isinstance(sample, (tuple, list)):
        sample = sample[0]
    return int(sample) * scale_factor(pipe) if sample else 512


def snap(value: int, factor: int, limit: int | None = None) -> int:
    """``value`` rounded to the nearest multiple of ``factor`` (at least one; within limit)."""
    out = max(factor, int(value / factor + 0.5) * factor)
    if limit is not None and out > limit:
        out = max(factor, limit // factor * factor)
    return out


def fit_image(img: Any, factor: int, max_side: int) -> tuple[Any, list[str]]:
    """``img`` scaled down to ``max_side`` if larger, then to multiples of ``factor``."""
    from PIL import Image

    notes = []
    w, h = img.size
    if max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
        notes.append(
            f"the input is {img.width}x{img.height}, over tools.image.max_side ({max_side}); "
            f"scaled to {w}x{h}"
        )
    sw, sh = snap(w, factor, max_side), snap(h, factor, max_side)
    if (sw, sh) != (w, h):
        notes.append(f"{w}x{h} rounded to {sw}x{sh} (the model needs multiples of {factor})")
    if (sw, sh) != img.size:
        img = img.resize((sw, sh), Image.Resampling.LANCZOS)
    return img, notes


def generators(ctx: ToolContext, seeds: list[int]) -> list[Any]:
    """One seeded ``torch.Generator`` per image: image i repeats with seed ``seeds[i]``."""
    import torch

    device, _ = device_and_dtype(ctx)
    return [torch.Generator(device).manual_seed(s) for s in seeds]


def latents_preview(latents: Any, sdxl: bool = False) -> Any:
    """A small RGB image (<= 128 px a side) approximating 4-channel SD latents, or None for
    other latent layouts. Cheap: one 4x3 matrix product, no VAE."""
    import torch
    from PIL import Image

    if getattr(latents, "ndim", 0) != 4 or latents.shape[1] != 4:
        return None
    x = latents[0].detach().to("cpu", torch.float32)
    rgb = torch.einsum("chw,cr->hwr", x, torch.tensor(_SDXL_FACTORS if sdxl else _SD_FACTORS))
    if sdxl:
        rgb = rgb + torch.tensor(_SDXL_BIAS)
    pixels = ((rgb + 1) / 2).clamp(0, 1).mul(255).to(torch.uint8).numpy()
    img = Image.fromarray(pixels, "RGB")
    img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    return img


def _step_callback(ctx: ToolContext, pipe: Pipe, label: str) -> Any:
    every = ctx.settings.image.preview_every
    vae = getattr(pipe.pipe, "vae", None)
    sdxl = vae is not None and abs(getattr(vae.config, "scaling_factor", 0) - 0.13025) < 1e-4

    def on_step_end(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        ctx.check_cancelled()
        total = max(int(getattr(p, "num_timesteps", 0) or 0), i + 1)
        preview = None
        # No preview at the last step: the finished image follows at once.
        if every and (i + 1) % every == 0 and i + 1 < total:
            try:
                img = latents_preview(kwargs.get("latents"), sdxl)
            except (RuntimeError, ValueError, TypeError):  # a preview never fails a run
                img = None
            if img is not None:
                preview = ctx.store.add_image(
                    img,
                    name="preview.png",
                    metadata={"preview": True, "step": i + 1, "source_step": ctx.step_id},
                )
        ctx.report((i + 1) / total, f"{label}: step {i + 1}/{total}", preview)
        return kwargs

    return on_step_end


def _ip_loaded(p: Any) -> bool:
    unet = getattr(p, "unet", None)
    # diffusers sets this as an attribute of the (frozen) config, not as a key
    return getattr(getattr(unet, "config", None), "encoder_hid_dim_type", None) == "ip_image_proj"


def _sync_ip_adapter(ctx: ToolContext, pipe: Pipe, want: bool) -> None:
    """Load the configured IP-Adapter into ``pipe`` when a style image is wanted, unload it
    otherwise (a UNet with an adapter refuses calls without an image; the family shares it)."""
    p, family = pipe.pipe, pipe.family
    if not want:
        if _ip_loaded(p) and hasattr(p, "unload_ip_adapter"):
            p.unload_ip_adapter()
        return
    if not hasattr(p, "load_ip_adapter"):
        raise ToolError(
            f"{pipe.spec} ({pipe.name}) cannot take a style_image (no IP-Adapter support); "
            "use an SD 1.x/2.x or SDXL model, or leave style_image out"
        )
    s = ctx.settings.image
    key = f"{s.ip_adapter}|{s.ip_adapter_subfolder}|{s.ip_adapter_weight}"
    if family.ip_key != key:  # another adapter, or a half-finished load: start afresh
        if _ip_loaded(p):
            p.unload_ip_adapter()
        for member in family.members:
            for part, value in family.ip_parts.items():
                if getattr(member, part, None) is value:
                    member.register_modules(**{part: None})
        family.ip_parts.clear()
        family.ip_key = None
    for part, value in family.ip_parts.items():  # parts a sibling pipeline loaded
        if getattr(p, part, False) is None:
            p.register_modules(**{part: value})
    if _ip_loaded(p):
        return
    setting = "tools.image.ip_adapter"
    weight = f"{s.ip_adapter_subfolder}/{s.ip_adapter_weight}".lstrip("/")
    before = {part: getattr(p, part, None) for part in ("image_encoder", "feature_extractor")}
    try:
        source = model_source(s.ip_adapter, ctx.models, setting)
        check_cached(s.ip_adapter, source, marker=weight, setting=setting)
        p.load_ip_adapter(source, subfolder=s.ip_adapter_subfolder, weight_name=s.ip_adapter_weight)
    except (ToolError, OSError, ValueError, RuntimeError, KeyError) as exc:
        for part, old in before.items():  # drop what a half-finished load left behind
            if old is None and getattr(p, part, None) is not None:
                p.register_modules(**{part: None})
        where = "offline, " if offline() else ""
        raise ToolError(
            f"cannot load the IP-Adapter for style_image ({where}{first_line(exc)}): "
            f"{install_advice(s.ip_adapter, setting)}; tools.image.ip_adapter_subfolder and "
            "tools.image.ip_adapter_weight name the weight file (an sdxl_models one for SDXL)"
        ) from None
    family.ip_key = key
    for part, old in before.items():
        if old is None and getattr(p, part, None) is not None:
            family.ip_parts[part] = getattr(p, part)


def run_pipe(ctx: ToolContext, pipe: Pipe, label: str, style: Any = None, **kwargs: Any) -> Any:
    """Call the pipeline with ``kwargs``, one progress report per denoising step, a preview
    every ``tools.image.preview_every`` steps, and a cancel check at each step.

    Raises:
        Cancelled: The step was cancelled (between two denoising steps).
        ToolError: The pipeline failed (out of memory, bad arguments).
    """
    import torch

    if "callback_on_step_end" in _params(pipe.pipe):
        kwargs["callback_on_step_end"] = _step_callback(ctx, pipe, label)
    with pipe.lock:
        ctx.check_cancelled()
        _sync_ip_adapter(ctx, pipe, style is not None)
        if style is not None:
            kwargs["ip_adapter_image"] = style
        try:
            return pipe.pipe(**kwargs)
        except torch.OutOfMemoryError:
            raise ToolError(
                f"{label} ran out of memory; ask for a smaller size or fewer images"
            ) from None
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ToolError(f"{label} failed with {pipe.spec}: {first_line(exc)}") from None
