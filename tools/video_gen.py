"""Video generation tools: generate_video (text to video) and animate_image (a still to video).

The models are settings (``[tools.video]``: generator, motion_adapter, animator), named as for
images: a catalog name, a folder or a Hub id; ``tools.video_pipes`` loads and runs them (any
diffusers text- or image-to-video pipeline, or AnimateDiff). Clips are written with
``tools.video_io``: an H.264 MP4, and with format 'gif' a GIF made from it as well.

There is no stand-in for text-to-video: without weights generate_video says how to install
them. animate_image may, where allowed, move a camera over the still image (pan and zoom,
``tools.video_panzoom``), labelled as such everywhere, since that is an honest, common way to
put a photo in a video.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Artifact, Modality, slug
from tools.base import (
    ImageInput,
    Tool,
    ToolContext,
    ToolResult,
    check_limit,
    pick_seed,
    seed_field,
    text_input,
    with_notes,
)
from tools.errors import ToolError
from tools.video_panzoom import (
    CALM,
    PAN_ZOOM_LABEL,
    WILD,
    pan_zoom_frames,
    plan_pan_zoom,
    said,
)
from tools.video_pipes import (
    ANIMATOR,
    DENOISE_SHARE,
    EXAMPLE,
    GENERATOR,
    KIND,
    call_params,
    fit_frames,
    load_video_pipe,
    plan_size,
    run_video_pipe,
    step_defaults,
)

if TYPE_CHECKING:  # mypy sees the values the slots hand the tool
    Prompt = str
else:
    Prompt = text_input("what the clip should show")

GIF_MAX_WIDTH = 640
ENCODE_SHARE = 0.7
"""Of the progress left after denoising, the part the MP4 takes when a GIF is made from it."""
MOTION_PROMPT = "natural, gentle motion"
"""The prompt of an image-to-video pipeline that takes one, when ``motion`` is empty."""


def _frames() -> Any:
    return Field(49, ge=8, le=257, description="number of frames")


def _fps() -> Any:
    return Field(16, ge=1, le=60, description="frames per second")


def _side(which: str) -> Any:
    text = f"{which} in pixels (default: the model's native size)"
    return Field(None, ge=32, description=text)


def _steps() -> Any:
    text = "denoising steps: more is slower and finer (default: 25, fewer for turbo models)"
    return Field(None, ge=1, description=text)


def _format() -> Any:
    return Field("mp4", description="gif: an animated GIF as well ($s1.2)")


class GenerateVideoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    frames: int = _frames()
    fps: int = _fps()
    seed: int | None = seed_field()
    negative_prompt: str = Field("", description="what the clip should not show")
    width: int | None = _side("width")
    height: int | None = _side("height")
    steps: int | None = _steps()
    guidance: float | None = Field(
        None, ge=0, le=30, description="how strictly to follow the prompt (default: the model's)"
    )
    format: Literal["mp4", "gif"] = _format()


class AnimateArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    motion: str = Field(
        "", description="how things should move, e.g. 'slow zoom in, waves rolling'"
    )
    frames: int = _frames()
    fps: int = _fps()
    seed: int | None = seed_field()
    width: int | None = _side("width")
    height: int | None = _side("height")
    steps: int | None = _steps()
    format: Literal["mp4", "gif"] = _format()


# --- limits ---------------------------------------------------------------------------------


def _check(ctx: ToolContext, args: GenerateVideoArgs | AnimateArgs) -> int:
    """Refuse asks over the configured limits, naming the setting; return the seed."""
    s = ctx.settings.video
    check_limit("frames", args.frames, s.max_frames, "tools.video.max_frames")
    check_limit("width", args.width, s.max_side, "tools.video.max_side")
    check_limit("height", args.height, s.max_side, "tools.video.max_side")
    check_limit("steps", args.steps, s.max_steps, "tools.video.max_steps")
    return pick_seed(args.seed)


# --- writing --------------------------------------------------------------------------------


def _store(
    ctx: ToolContext,
    frames: Iterable[Any],
    count: int,
    fps: int,
    stem: str,
    fmt: str,
    meta: dict[str, Any],
    start: float = DENOISE_SHARE,
) -> tuple[list[Artifact], Any]:
    """Encode ``frames`` (``count`` of them) to MP4, and with fmt 'gif' make a GIF from that
    MP4 as well (at most ``GIF_MAX_WIDTH`` wide); store them only once both are written and
    the MP4 probes as valid. Progress runs from ``start`` (where denoising left it) to the end.
    Returns the artifacts and the MP4's VideoInfo."""
    from tools.ffmpeg import encode_frames, write_gif
    from tools.video_io import probe_path, store_video, workdir

    mid = start + (1.0 - start) * ENCODE_SHARE if fmt == "gif" else 1.0
    with workdir() as tmp:
        path = tmp / f"{stem}.mp4"
        encode_frames(frames, path, fps, ctx.settings, ctx=ctx, total=count, span=(start, mid))
        gif: tuple[Path, dict[str, Any]] | None = None
        if fmt == "gif":
            width = min(probe_path(path, f"{stem}.mp4").width, GIF_MAX_WIDTH)
            out = tmp / f"{stem}.gif"
            (w, h), n = write_gif(
                path, out, ctx.settings, fps=fps, width=width, ctx=ctx.phase(mid, 1.0)
            )
            gif = out, {"width": w, "height": h, "frames": n, "fps": fps}
        ctx.check_cancelled()
        art, info = store_video(ctx, path, f"{stem}.mp4", **meta)
        arts = [art]
        if gif is not None:
            out, facts = gif
            facts["source_step"] = ctx.step_id
            arts.append(
                ctx.store.add_file(
                    out, name=out.name, modality=Modality.IMAGE, metadata=meta | facts
                )
            )
    return arts, info


def _clip(info: Any, fps: int) -> str:
    size = f"{info.width}x{info.height}"
    return f"{info.frames}-frame {size} clip ({info.duration:.1f} s at {fps} fps)"


class GenerateVideo(Tool):
    name = "generate_video"
    description = "Generate a short video clip from a text prompt."
    inputs = GenerateVideoArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: GenerateVideoArgs, ctx: ToolContext) -> ToolResult:
        from tools.diffusion import ModelMissing

        s = ctx.settings.video
        prompt = args.prompt.strip()
        if not prompt:
            raise ToolError("the prompt is empty; say what the clip should show")
        seed = _check(ctx, args)
        try:
            pipe = load_video_pipe(ctx, GENERATOR)
        except ModelMissing as exc:
            raise ToolError(
                f"generate_video needs a text-to-video model (there is no stand-in): {exc}"
            ) from None
        names = (s.generator, pipe.source, s.motion_adapter or "")
        steps_default, guidance_default, kind = step_defaults(pipe.pipe, *names)
        steps = args.steps or steps_default
        guidance = guidance_default if args.guidance is None else args.guidance
        width, height, notes = plan_size(pipe.pipe, (args.width, args.height), s.max_side)
        frames, frame_notes = fit_frames(pipe.pipe, args.frames, s.max_frames)
        notes += frame_notes
        if args.negative_prompt and guidance is not None and guidance <= 1:
            notes.append("negative_prompt has no effect at guidance <= 1")
        call: dict[str, Any] = {"prompt": prompt, "negative_prompt": args.negative_prompt or None}
        call |= {"num_frames": frames, "width": width, "height": height}
        call |= {"num_inference_steps": steps, "guidance_scale": guidance, "frame_rate": args.fps}
        video = run_video_pipe(ctx, pipe, self.name, seed, call)
        if len(video) != frames:
            notes.append(f"the model made {len(video)} frames")
        facts: dict[str, Any] = {"model": s.generator, "pipeline": pipe.name, "steps": steps}
        facts |= {"guidance": guidance, "fps": args.fps}
        if s.motion_adapter:
            facts["motion_adapter"] = s.motion_adapter
        meta = {"prompt": prompt, "negative_prompt": args.negative_prompt, "seed": seed, **facts}
        stem = f"{slug(prompt, 'video')}-{seed}"
        arts, info = _store(ctx, video, len(video), args.fps, stem, args.format, meta)
        how = f"{pipe.name}, {steps} steps"
        how += f", guidance {guidance:g}" if guidance is not None else ""
        what = f"generated a {_clip(info, args.fps)} with {s.generator} ({how}, seed {seed})"
        data = {**facts, "seed": seed, "width": info.width, "height": info.height}
        data |= {"frames": info.frames, "duration": info.duration, "defaults": kind}
        data |= {"procedural": False, "notes": notes}
        return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


# --- animate_image ----------------------------------------------------------------------------


def motion_bucket(motion: str) -> int:
    """Stable Video Diffusion's amount of motion (motion_bucket_id, 1..255; 127 by default)
    from the words of ``motion``: lively words raise it, calm ones lower it."""
    words = set(re.findall(r"[a-z]+", motion.lower()))
    return 200 if said(words, WILD) else 60 if said(words, CALM) else 127


class AnimateImage(Tool):
    name = "animate_image"
    description = "Turn a still image into a short video clip, moving as described."
    inputs = AnimateArgs
    outputs = (Modality.VIDEO,)

    def run(self, args: AnimateArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image, ImageOps

        from tools.diffusion import ModelMissing
        from tools.image_io import open_image

        s = ctx.settings.video
        img = open_image(args.image, ctx.settings).convert("RGB")  # bad input fails first
        seed = _check(ctx, args)
        try:
            pipe = load_video_pipe(ctx, ANIMATOR)
        except ModelMissing as exc:
            if not s.pan_zoom_fallback:
                raise ToolError(f"animate_image needs an image-to-video model: {exc}") from None
            return _pan_zoom(ctx, args, img, str(exc))
        steps_default, guidance, kind = step_defaults(pipe.pipe, s.animator, pipe.source)
        steps = args.steps or steps_default
        asked = (args.width, args.height)
        width, height, notes = plan_size(pipe.pipe, asked, s.max_side, img.width / img.height)
        if abs(width / height - img.width / img.height) > 0.01 * img.width / img.height:
            notes.append(f"the image was cropped to the clip's {width}x{height} shape")
        frame = ImageOps.fit(img, (width, height), Image.Resampling.LANCZOS)
        frames, frame_notes = fit_frames(pipe.pipe, args.frames, s.max_frames)
        notes += frame_notes
        params = call_params(pipe.pipe)
        call: dict[str, Any] = {"image": frame, "num_frames": frames, "width": width}
        call |= {"height": height, "num_inference_steps": steps, "fps": args.fps}
        call |= {"frame_rate": args.fps, "target_fps": args.fps}
        facts: dict[str, Any] = {"model": s.animator, "pipeline": pipe.name, "steps": steps}
        facts |= {"fps": args.fps, "motion": args.motion}
        if "prompt" in params:
            facts["prompt"] = call["prompt"] = args.motion.strip() or MOTION_PROMPT
            if "guidance_scale" in params and guidance is not None:
                facts["guidance"] = call["guidance_scale"] = guidance
        elif "motion_bucket_id" in params:
            facts["motion_bucket_id"] = call["motion_bucket_id"] = motion_bucket(args.motion)
            notes.append(
                f"{pipe.name} takes no text: 'motion' only sets how much moves "
                f"(motion_bucket_id {call['motion_bucket_id']})"
            )
        video = run_video_pipe(ctx, pipe, self.name, seed, call)
        meta = {"source": args.image.id, "seed": seed, **facts}
        stem = f"{slug(Path(args.image.name).stem, 'image')}-animated-{seed}"
        arts, info = _store(ctx, video, len(video), args.fps, stem, args.format, meta)
        what = (
            f"animated {args.image.label()} into a {_clip(info, args.fps)} with {s.animator} "
            f"({pipe.name}, {steps} steps, seed {seed})"
        )
        data = {**facts, "seed": seed, "width": info.width, "height": info.height}
        data |= {"frames": info.frames, "duration": info.duration, "defaults": kind}
        data |= {"procedural": False, "notes": notes}
        return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


def _pan_zoom(ctx: ToolContext, args: AnimateArgs, img: Any, reason: str) -> ToolResult:
    """No image-to-video weights: a labelled pan-and-zoom clip over the still image."""
    from tools.diffusion import install_advice

    s = ctx.settings.video
    move, size, notes = plan_pan_zoom(img.size, args.motion, (args.width, args.height), s.max_side)
    if args.steps or args.seed is not None:
        notes.append("steps and seed do not apply to a pan-and-zoom")
    meta = {"procedural": True, "label": PAN_ZOOM_LABEL, "source": args.image.id}
    meta |= {"motion": args.motion, "camera": move.words, "fps": args.fps}
    stem = f"{slug(Path(args.image.name).stem, 'image')}-pan-zoom"
    frames = pan_zoom_frames(img, move, size, args.frames)
    arts, info = _store(ctx, frames, args.frames, args.fps, stem, args.format, meta, start=0.0)
    advice = install_advice(s.animator, ANIMATOR, KIND[ANIMATOR], EXAMPLE[ANIMATOR])
    what = (
        f"no image-to-video model is installed, so this {_clip(info, args.fps)} is a "
        f"{move.words} over the still image, NOT a generated video (nothing in the picture "
        f"moves); for real motion {advice}"
    )
    data: dict[str, Any] = {"procedural": True, "reason": reason, "model": None}
    data |= {"camera": move.words, "width": info.width, "height": info.height}
    data |= {"frames": info.frames, "fps": args.fps, "duration": info.duration, "notes": notes}
    return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


generate_video = GenerateVideo()
animate_image = AnimateImage()
