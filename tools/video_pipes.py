"""Diffusers video pipelines: loading any text- or image-to-video pipeline through the model
manager, valid sizes and frame counts, running with per-step progress.

Any diffusers video pipeline loads through ``DiffusionPipeline.from_pretrained``, which reads
the class from model_index.json (WanPipeline, LTXPipeline, CogVideoXPipeline,
TextToVideoSDPipeline, StableVideoDiffusionPipeline, WanImageToVideoPipeline, ...); an SD 1.x
generator with a motion adapter becomes an ``AnimateDiffPipeline``. Running them reuses
``tools.diffusion``: one progress report per denoising step, cancellation between steps, clear
errors. What a pipeline can do is read from its call's signature and its parts' configs, so a
new pipeline class needs no code here.
"""

from __future__ import annotations

import inspect
import math
from typing import TYPE_CHECKING, Any

from tools.base import ToolContext
from tools.errors import ToolError, require
from tools.hf import weights_size
from tools.pipe_loading import from_pretrained, pipeline_source, quiet_loading

if TYPE_CHECKING:
    from tools.diffusion import Pipe

GENERATOR = "tools.video.generator"
ANIMATOR = "tools.video.animator"
ADAPTER = "tools.video.motion_adapter"
EXAMPLE = {
    GENERATOR: "wan2.1-t2v-1.3b",
    ANIMATOR: "stable-video-diffusion",
    ADAPTER: "animatediff-motion-adapter-v1-5-3",
}
"""The catalog model to suggest, per setting."""
KIND = {
    GENERATOR: "a diffusers text-to-video pipeline",
    ANIMATOR: "a diffusers image-to-video pipeline",
    ADAPTER: "an AnimateDiff motion adapter",
}
DEFAULT_STEPS = 25
DECODE_CHUNK = 8
"""Frames the VAE decodes at once where the pipeline lets us say (memory, not speed)."""
MULTIPLE_FLOOR = {"LTX": 32, "Wan": 16, "CogVideoX": 16}
"""Side multiples some pipelines' own input checks insist on, whatever their VAE (by the
start of the class name)."""
DENOISE_SHARE = 0.9
"""The part of a run's progress the denoising steps take; writing the clip takes the rest."""


# --- loading --------------------------------------------------------------------------------


def call_params(pipe: Any) -> Any:
    """The parameters of ``pipe``'s call: what it can be asked (and so what it makes)."""
    return inspect.signature(type(pipe).__call__).parameters


def _kind(pipe: Any) -> str:
    """What a pipeline makes, told by what its call takes."""
    params = call_params(pipe)
    if "num_frames" not in params:
        return "image"
    if "video" in params:
        return "video-to-video"
    return "image-to-video" if "image" in params else "text-to-video"


def _wrong_kind(spec: str, name: str, kind: str, setting: str) -> ToolError:
    want = "image-to-video" if setting == ANIMATOR else "text-to-video"
    fix = f"set {setting} to {KIND[setting]} such as {EXAMPLE[setting]!r}"
    if kind == "image" and setting == GENERATOR:
        fix += f", or keep it (an SD 1.x model) and set {ADAPTER} to animate it with AnimateDiff"
    elif kind in ("text-to-video", "image-to-video"):
        other = GENERATOR if kind == "text-to-video" else ANIMATOR
        fix = f"use it as {other} instead, and {fix}"
    article = "an" if want.startswith("i") else "a"
    return ToolError(f"{spec} ({name}) is not {article} {want} pipeline (it is {kind}); {fix}")


def _source(ctx: ToolContext, spec: str, setting: str, marker: str) -> str:
    return pipeline_source(ctx, spec, setting, KIND[setting], EXAMPLE[setting], marker)


def _animatediff_scheduler(pipe: Any) -> None:
    """SD 1.5 ships PNDM, which AnimateDiff's authors swap for linear-beta DDIM (PNDM also
    runs one step more than asked)."""
    if type(pipe.scheduler).__name__ == "PNDMScheduler":
        from diffusers import DDIMScheduler

        pipe.scheduler = DDIMScheduler.from_config(
            pipe.scheduler.config,
            beta_schedule="linear",
            clip_sample=False,
            timestep_spacing="linspace",
            steps_offset=1,
        )


def _from_pretrained(cls: Any, source: str, spec: str, setting: str, **kwargs: Any) -> Any:
    return from_pretrained(cls, source, spec, setting, KIND[setting], EXAMPLE[setting], **kwargs)


def load_video_pipe(ctx: ToolContext, setting: str) -> Pipe:
    """Load the pipeline ``setting`` names (with the motion adapter for the generator), once
    per model manager, and check that it makes what the setting is for.

    Raises:
        ModelMissing: The weights are not installed; the message says how to get them.
        ToolError: They are there but cannot be loaded, or make something else.
    """
    from tools.diffusion import Pipe, device_and_dtype, dtype_kwarg

    diffusers = require("diffusers", "image")
    s = ctx.settings.video
    spec = s.animator if setting == ANIMATOR else s.generator
    adapter = s.motion_adapter if setting == GENERATOR else None
    source = _source(ctx, spec, setting, "model_index.json")
    adapter_source = _source(ctx, adapter, ADAPTER, "config.json") if adapter else None
    want = "image-to-video" if setting == ANIMATOR else "text-to-video"

    def loader() -> Pipe:
        ctx.report(0.0, f"loading {spec}" + (f" with {adapter}" if adapter else ""))
        device, dtype = device_and_dtype(ctx)
        kwargs = dtype_kwarg(diffusers, dtype)
        with quiet_loading():
            if adapter and adapter_source:
                motion = _from_pretrained(
                    diffusers.MotionAdapter, adapter_source, adapter, ADAPTER, **kwargs
                )
                pipe = _from_pretrained(
                    diffusers.AnimateDiffPipeline,
                    source,
                    spec,
                    setting,
                    motion_adapter=motion,
                    **kwargs,
                )
                _animatediff_scheduler(pipe)
            else:
                pipe = _from_pretrained(
                    diffusers.DiffusionPipeline, source, spec, setting, **kwargs
                )
        if _kind(pipe) != want:  # refused before it takes memory
            raise _wrong_kind(spec, type(pipe).__name__, _kind(pipe), setting)
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return Pipe.new(pipe, spec, source)

    if ctx.models is None:
        return loader()
    key = f"diffusers-video:{source}" + (f"+{adapter_source}" if adapter_source else "")

    def size() -> int | None:
        total = weights_size(source) or 0
        total += (weights_size(adapter_source) or 0) if adapter_source else 0
        return total or None

    loaded = ctx.models.load(key, loader, size_bytes=size)
    if _kind(loaded.pipe) != want:  # loaded before for the other setting
        raise _wrong_kind(spec, loaded.name, _kind(loaded.pipe), setting)
    return loaded


# --- sizes, frames, defaults ----------------------------------------------------------------


def _factor(pipe: Any, names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = getattr(pipe, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def spatial_multiple(pipe: Any) -> int:
    """Width and height must be multiples of this: the VAE's pixels per latent cell times
    the transformer's patch side (16 for Wan and CogVideoX, 32 for LTX-Video, 8 for UNets)."""
    spatial = ("vae_scale_factor_spatial", "vae_spatial_compression_ratio", "vae_scale_factor")
    patch = getattr(getattr(getattr(pipe, "transformer", None), "config", None), "patch_size", 1)
    if isinstance(patch, (list, tuple)):
        patch = patch[-1]
    multiple = _factor(pipe, spatial, 8) * (patch if isinstance(patch, int) and patch > 0 else 1)
    name = type(pipe).__name__
    floor = next((v for k, v in MULTIPLE_FLOOR.items() if name.startswith(k)), 1)
    return math.lcm(multiple, floor)


def temporal_factor(pipe: Any) -> int:
    """Frames per latent frame: a VAE that compresses time (Wan, CogVideoX: 4, LTX: 8) makes
    k x factor + 1 frames; 1 for pipelines that take any count."""
    return _factor(pipe, ("vae_scale_factor_temporal", "vae_temporal_compression_ratio"), 1)


def fit_frames(pipe: Any, frames: int, limit: int) -> tuple[int, list[str]]:
    """``frames`` rounded to a count the pipeline makes (within ``limit``), with a note."""
    t = temporal_factor(pipe)
    if t <= 1 or (frames - 1) % t == 0:
        return frames, []
    k = max(1, round((frames - 1) / t))
    if k * t + 1 > limit:
        k = max(1, (limit - 1) // t)
    out = k * t + 1
    note = f"{frames} frames rounded to {out} ({type(pipe).__name__} makes {t}k+1 frames)"
    return out, [note]


def native_size(pipe: Any) -> tuple[int, int]:
    """(width, height) the model was trained at: its call's defaults where they are numbers
    (Wan 832x480, LTX 704x512, SVD 1024x576), else its denoiser's sample size."""
    params = call_params(pipe)
    w, h = (params[k].default if k in params else None for k in ("width", "height"))
    if isinstance(w, int) and isinstance(h, int):
        return w, h
    spatial = ("vae_scale_factor_spatial", "vae_spatial_compression_ratio", "vae_scale_factor")
    factor = _factor(pipe, spatial, 8)
    for part in ("transformer", "unet"):
        config = getattr(getattr(pipe, part, None), "config", None)
        if config is None:
            continue
        sample_h, sample_w = config.get("sample_height"), config.get("sample_width")
        if sample_h and sample_w:
            return int(sample_w) * factor, int(sample_h) * factor
        sample = config.get("sample_size")
        if isinstance(sample, (list, tuple)):
            return int(sample[-1]) * factor, int(sample[0]) * factor
        if sample:
            return int(sample) * factor, int(sample) * factor
    return 512, 512


def fill_size(
    asked: tuple[int | None, int | None], aspect: float, default: tuple[int, int]
) -> tuple[int, int]:
    """Both sides: as asked, a missing one from the other at ``aspect``, else ``default``."""
    w, h = asked
    if w is not None and h is not None:
        return w, h
    if w is not None:
        return w, max(1, round(w / aspect))
    if h is not None:
        return max(1, round(h * aspect)), h
    return default


def plan_size(
    pipe: Any,
    asked: tuple[int | None, int | None],
    max_side: int,
    aspect: float | None = None,
) -> tuple[int, int, list[str]]:
    """The (width, height) to generate at: what was asked, else the native size (its area at
    ``aspect`` when given, for an input image), within ``max_side``, in the model's
    multiples; notes for every change the caller should hear about."""
    from tools.diffusion import snap

    nw, nh = native_size(pipe)
    if aspect:
        area = nw * nh
        nw, nh = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
    w, h = fill_size(asked, nw / nh, (nw, nh))
    notes = []
    if max(w, h) > max_side:  # a default, or a side derived from the one asked
        scale = max_side / max(w, h)
        notes.append(
            f"{w}x{h} is over tools.video.max_side ({max_side}); "
            f"scaled to {round(w * scale)}x{round(h * scale)}"
        )
        w, h = round(w * scale), round(h * scale)
    factor = spatial_multiple(pipe)
    sw, sh = snap(w, factor, max_side), snap(h, factor, max_side)
    if (sw, sh) != (w, h):
        notes.append(f"{w}x{h} rounded to {sw}x{sh} (the model needs multiples of {factor})")
    return sw, sh, notes


def step_defaults(pipe: Any, *names: str) -> tuple[int, float | None, str]:
    """Steps, guidance and their kind when the caller gives none: few steps for turbo and
    LCM models (as for images), else 25 steps at the pipeline's own guidance."""
    from tools.diffusion import few_step_defaults

    d = few_step_defaults(pipe, *names)
    param = call_params(pipe).get("guidance_scale")
    own = param.default if param is not None and isinstance(param.default, (int, float)) else None
    if d.kind != "standard":
        return d.steps, d.guidance if param is not None else None, d.kind
    return DEFAULT_STEPS, own, "standard"


# --- running --------------------------------------------------------------------------------


def _legacy_progress(ctx: ToolContext, label: str, steps: int) -> Any:
    """Per-step progress and cancellation for pipelines with the old ``callback`` argument
    (TextToVideoSD)."""

    def callback(i: int, t: Any, latents: Any) -> None:
        ctx.check_cancelled()
        ctx.report((i + 1) / steps, f"{label}: step {i + 1}/{steps}")

    return callback


def run_video_pipe(
    ctx: ToolContext, pipe: Pipe, label: str, seed: int, call: dict[str, Any]
) -> Any:
    """Run the pipeline with the arguments of ``call`` it takes and return its frames as a
    float array (frames, H, W, 3) in 0..1. Its steps report progress up to ``DENOISE_SHARE``;
    writing the clip reports the rest."""
    import numpy as np

    from tools.diffusion import generators, run_pipe

    ctx = ctx.phase(0.0, DENOISE_SHARE)

    params = call_params(pipe.pipe)
    call = {k: v for k, v in call.items() if k in params}
    call["output_type"] = "np"
    if "decode_chunk_size" in params:
        call["decode_chunk_size"] = min(DECODE_CHUNK, call["num_frames"])
    if "callback_on_step_end" not in params and "callback" in params:
        call["callback"] = _legacy_progress(ctx, label, call["num_inference_steps"])
        call["callback_steps"] = 1
    out = run_pipe(ctx, pipe, label, generator=generators(ctx, [seed]), **call)
    frames = out.frames[0] if hasattr(out, "frames") else out[0][0]
    if isinstance(frames, list) and frames and hasattr(frames[0], "convert"):
        frames = [np.asarray(f.convert("RGB"), dtype=np.float32) / 255 for f in frames]
    arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ToolError(f"{pipe.spec} returned frames of shape {arr.shape}, not (frames, H, W, 3)")
    return arr
