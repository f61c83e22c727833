"""Diffusion image tools: generate_image, edit_image, inpaint_image.

The models are settings (``[tools.image]``: generator, editor, instruct_editor, inpainter,
ip_adapter); loading and running them is ``tools.diffusion``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.artifact import Artifact, Modality, slug
from tools.base import (
    ImageInput,
    Tool,
    ToolContext,
    ToolResult,
    artifact_input,
    check_limit,
    pick_seed,
    seed_field,
    text_input,
    with_notes,
)
from tools.errors import ToolError
from tools.image_io import check_output_size, open_image
from tools.settings import ImageSettings

GENERATOR = "tools.image.generator"
EDIT_STRENGTH = 0.6
"""img2img strength of edit_image when none is given (an instruction edit falls back)."""
IMAGE_GUIDANCE = 1.5
"""How closely an instruction edit keeps to the source image (InstructPix2Pix's default)."""
if TYPE_CHECKING:  # mypy sees the values the slots hand the tool
    Prompt = str
    StyleInput = Artifact
    MaskInput = Artifact
else:
    Prompt = text_input("what the picture should show")
    StyleInput = artifact_input(Modality.IMAGE, description="an image whose style to copy")
    MaskInput = artifact_input(Modality.IMAGE, description="white where to repaint, black to keep")


def _steps() -> Any:
    text = "denoising steps: more is slower and finer (default: the model's)"
    return Field(None, ge=1, description=text)


def _guidance(what: str) -> Any:
    return Field(None, ge=0, le=30, description=f"how strictly to follow the {what}")


def _check(s: ImageSettings, steps: int | None, strength: float | None = None) -> None:
    """Refuse asks over the configured limits, naming the setting behind each."""
    check_limit("steps", steps, s.max_steps, "tools.image.max_steps")
    if strength == 0:
        raise ToolError(
            "strength 0 would return the image unchanged; use 0.1 (a light touch) up to 1 "
            "(ignore the original)"
        )


def _paint(
    ctx: ToolContext,
    pipe: Any,
    label: str,
    stem: str,
    seeds: list[int],
    meta: dict[str, Any],
    notes: list[str],
    call: dict[str, Any],
    style: Any = None,
    finish: Callable[[Any], Any] | None = None,
) -> tuple[list[Artifact], list[bool]]:
    """Run the pipeline with ``call``; only once it succeeded, store its images (so nothing
    is half-written), named ``stem-SEED.png``, with ``meta`` and their seed.

    Returns the artifacts and, per image, whether the safety checker flagged it.
    """
    from tools.diffusion import generators, run_pipe

    out = run_pipe(ctx, pipe, label, style, generator=generators(ctx, seeds), **call)
    flags = [bool(f) for f in getattr(out, "nsfw_content_detected", None) or []]
    flags += [False] * (len(out.images) - len(flags))
    if any(flags):
        hits = ", ".join(str(i + 1) for i, f in enumerate(flags) if f)
        notes.append(
            f"the safety checker flagged image {hits} as NSFW and blacked it out "
            "(tools.image.safety_checker)"
        )
    arts = []
    for img, seed, flag in zip(out.images, seeds, flags, strict=True):
        extra = {"seed": seed, "source_step": ctx.step_id} | ({"nsfw": True} if flag else {})
        out_img = finish(img) if finish else img
        arts.append(ctx.store.add_image(out_img, name=f"{stem}-{seed}.png", metadata=meta | extra))
    return arts, flags


def _resized(size: tuple[int, int]) -> Callable[[Any], Any]:
    return lambda img: img if img.size == size else img.resize(size)


def _rgb(ctx: ToolContext, art: Artifact | None) -> Any:
    return None if art is None else open_image(art, ctx.settings).convert("RGB")


def _prepare(ctx: ToolContext, src: Any, pipe: Any) -> tuple[Any, list[str]]:
    """The source image within max_side and at the multiples the model needs."""
    from tools.diffusion import fit_image, scale_factor

    img, notes = fit_image(src, scale_factor(pipe.pipe), ctx.settings.image.max_side)
    check_output_size(img.width, img.height, ctx.settings)
    return img, notes


class GenerateImageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    negative_prompt: str = Field("", description="what the picture should not show")
    width: int | None = Field(
        None, ge=64, description="width in pixels (default: the model's native size, e.g. 512)"
    )
    height: int | None = Field(
        None, ge=64, description="height in pixels (default: the model's native size)"
    )
    steps: int | None = _steps()
    guidance: float | None = _guidance("prompt (default: the model's; 0 for turbo models)")
    seed: int | None = seed_field()
    num_images: int = Field(1, ge=1, description="how many images to make ($s1, $s1.2, ...)")
    style_image: StyleInput | None = None


class GenerateImage(Tool):
    name = "generate_image"
    description = (
        "Generate images from a text prompt with a diffusion model, optionally in the style "
        "of a reference image."
    )
    inputs = GenerateImageArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: GenerateImageArgs, ctx: ToolContext) -> ToolResult:
        from tools.diffusion import (
            ModelMissing,
            few_step_defaults,
            load_pipe,
            native_size,
            scale_factor,
            snap,
        )

        s = ctx.settings.image
        prompt = args.prompt.strip()
        if not prompt:
            raise ToolError("the prompt is empty; say what the picture should show")
        _check(s, args.steps)
        check_limit("width", args.width, s.max_side, "tools.image.max_side")
        check_limit("height", args.height, s.max_side, "tools.image.max_side")
        check_limit("num_images", args.num_images, s.max_images, "tools.image.max_images")
        try:
            pipe = load_pipe(ctx, s.generator, GENERATOR)
        except ModelMissing as missing:
            return _sketch(ctx, args, prompt, missing)
        defaults = few_step_defaults(pipe.pipe, s.generator, pipe.source)
        steps = args.steps or defaults.steps
        guidance = defaults.guidance if args.guidance is None else args.guidance
        factor, native = scale_factor(pipe.pipe), native_size(pipe.pipe)
        asked = (args.width or native, args.height or native)
        width, height = (snap(v, factor, s.max_side) for v in asked)
        notes = []
        if (width, height) != asked:
            notes.append(
                f"{asked[0]}x{asked[1]} rounded to {width}x{height} "
                f"(the model needs multiples of {factor})"
            )
        if args.negative_prompt and guidance <= 1:
            notes.append("negative_prompt has no effect at guidance <= 1")
        check_output_size(width, height, ctx.settings)
        style = _rgb(ctx, args.style_image)
        seed = pick_seed(args.seed)
        seeds = [seed + i for i in range(args.num_images)]
        facts: dict[str, Any] = {"model": s.generator, "pipeline": pipe.name, "width": width}
        facts["height"] = height
        facts |= {"steps": steps, "guidance": guidance}
        meta = {"prompt": prompt, "negative_prompt": args.negative_prompt, **facts}
        if args.style_image:
            meta["style_image"] = args.style_image.id
        call: dict[str, Any] = {"prompt": prompt, "negative_prompt": args.negative_prompt or None}
        call |= {"width": width, "height": height, "num_inference_steps": steps}
        call |= {"guidance_scale": guidance, "num_images_per_prompt": args.num_images}
        stem = slug(prompt, "image")
        arts, flags = _paint(ctx, pipe, self.name, stem, seeds, meta, notes, call, style)
        styled = f", styled after {args.style_image.label()}" if args.style_image else ""
        what = (
            f"generated {len(arts)} {width}x{height} image{'s' if len(arts) > 1 else ''} with "
            f"{s.generator} ({steps} steps, guidance {guidance:g}, seed {seed}{styled})"
        )
        data = {**facts, "seed": seed, "seeds": seeds, "defaults": defaults.kind}
        data |= {"procedural": False, "nsfw_flagged": flags, "notes": notes}
        return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


def _sketch(
    ctx: ToolContext, args: GenerateImageArgs, prompt: str, missing: ToolError
) -> ToolResult:
    """No text-to-image weights: a labelled sketch by the language model, where allowed."""
    from tools.diffusion import install_advice

    s = ctx.settings.image
    if not s.sketch_fallback or ctx.llm is None:
        raise ToolError(f"generate_image needs a text-to-image model: {missing}")
    try:
        from tools.sketch import draw_sketch
    except ImportError:
        raise ToolError(f"generate_image needs a text-to-image model: {missing}") from None
    width, height = args.width or 512, args.height or 512
    check_output_size(width, height, ctx.settings)
    art = draw_sketch(ctx, prompt, width, height, str(missing))
    notes = ["one sketch only"] if args.num_images > 1 else []
    what = (
        "no text-to-image model is installed, so this is a procedural sketch drawn by the "
        "language model, NOT a diffusion image; for real images "
        + install_advice(s.generator, GENERATOR)
    )
    data: dict[str, Any] = {"procedural": True, "model": None, "width": width, "height": height}
    data |= {"reason": str(missing), "notes": notes}
    return ToolResult(artifacts=[art], data=data, summary=with_notes(what, notes))


class EditImageArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    instruction: str = Field(min_length=1, description="the change to make, e.g. 'make it snowy'")
    strength: float | None = Field(
        None,
        ge=0,
        le=1,
        description="how far to move from the original: 0 keeps it, 1 ignores it "
        "(given: an img2img edit; default: an instruction edit)",
    )
    style_image: StyleInput | None = None
    seed: int | None = seed_field()
    steps: int | None = _steps()
    guidance: float | None = _guidance("instruction")
    mode: Literal["auto", "img2img", "instruct"] = Field(
        "auto",
        description="instruct: follow the instruction (InstructPix2Pix); img2img: redraw the "
        "image towards the instruction as a prompt; auto: instruct unless strength is given",
    )


def _edit_pipe(ctx: ToolContext, mode: str, fallback: bool, notes: list[str]) -> tuple[Any, str]:
    """The pipeline for ``mode`` and the mode it really is (instruct falls back to img2img
    when allowed and its model is not installed)."""
    from tools.diffusion import ModelMissing, load_pipe, task_pipe

    s = ctx.settings.image
    if mode == "instruct":
        try:
            return load_pipe(
                ctx, s.instruct_editor, "tools.image.instruct_editor", "instruct"
            ), mode
        except ModelMissing as exc:
            if not fallback:
                raise
            notes.append(
                f"the instruction editor {s.instruct_editor} is not installed ({exc}), so "
                f"this is an img2img edit at strength {EDIT_STRENGTH}"
            )
    img2img = task_pipe(ctx, "image2image", s.editor, "tools.image.editor", "edit_image")
    return img2img, "img2img"


class EditImage(Tool):
    name = "edit_image"
    description = (
        "Change an image following an instruction (restyle, change season or lighting, add or "
        "remove things), optionally in the style of a second image."
    )
    inputs = EditImageArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: EditImageArgs, ctx: ToolContext) -> ToolResult:
        from tools.diffusion import few_step_defaults

        s = ctx.settings.image
        instruction = args.instruction.strip()
        if not instruction:
            raise ToolError("the instruction is empty; say what to change")
        _check(s, args.steps, args.strength)
        src = _rgb(ctx, args.image)  # a bad input fails before any model loads
        style = _rgb(ctx, args.style_image)
        notes: list[str] = []
        asked = args.mode if args.mode != "auto" else "img2img" if args.strength else "instruct"
        pipe, mode = _edit_pipe(ctx, asked, args.mode == "auto", notes)
        img, fit_notes = _prepare(ctx, src, pipe)
        notes += fit_notes
        spec = s.instruct_editor if mode == "instruct" else (s.editor or s.generator)
        defaults = few_step_defaults(pipe.pipe, spec, pipe.source)
        guidance = defaults.guidance if args.guidance is None else args.guidance
        extra: dict[str, Any]
        if mode == "instruct":
            steps = args.steps or (20 if defaults.kind == "standard" else defaults.steps)
            extra = {"image_guidance_scale": IMAGE_GUIDANCE}
            if args.strength is not None:
                notes.append("strength is not used by instruction edits (mode img2img uses it)")
        else:
            steps = args.steps or defaults.steps
            extra = {"strength": args.strength or EDIT_STRENGTH}
        seed = pick_seed(args.seed)
        facts = {"model": spec, "pipeline": pipe.name, "mode": mode, "steps": steps}
        facts |= {"guidance": guidance, "width": img.width, "height": img.height, **extra}
        meta = {"instruction": instruction, "source": args.image.id, **facts}
        call: dict[str, Any] = {"prompt": instruction, "image": img, "num_inference_steps": steps}
        call |= {"guidance_scale": guidance, **extra}
        stem = slug(args.image.name.rsplit(".", 1)[0], "image") + "-edit"
        arts, flags = _paint(
            ctx, pipe, self.name, stem, [seed], meta, notes, call, style, _resized(img.size)
        )
        what = (
            f"edited {args.image.label()} ({mode}, '{instruction[:60]}') with {spec}: "
            f"{img.width}x{img.height}, {steps} steps, seed {seed}"
        )
        data = {**facts, "seed": seed, "nsfw_flagged": flags, "notes": notes}
        return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


class InpaintArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    mask: MaskInput | None = None
    region: str | None = Field(
        None, min_length=1, description="instead of a mask: the thing to repaint, e.g. 'the car'"
    )
    prompt: str = Field(min_length=1, description="what the repainted part should show")
    seed: int | None = seed_field()
    steps: int | None = _steps()
    strength: float | None = Field(
        None, ge=0, le=1, description="how much of the part to redraw (default 1: all of it)"
    )

    @model_validator(mode="after")
    def _one_mask(self) -> InpaintArgs:
        if (self.mask is None) == (self.region is None):
            raise ValueError(
                "give either mask (an image, white = repaint) or region (words such as "
                "'the car'), exactly one of them"
            )
        return self


def _mask(ctx: ToolContext, args: InpaintArgs) -> Any:
    """The mask as a mode "L" image: the mask artifact, or what ``region`` names."""
    if args.mask is not None:
        return open_image(args.mask, ctx.settings).convert("L")
    from tools import segment  # detection and SAM: Grounded-SAM on the words

    return segment.mask_from_words(ctx, args.image, args.region or "").convert("L")


class InpaintImage(Tool):
    name = "inpaint_image"
    description = (
        "Repaint part of an image from a prompt (remove or replace an object): the part is a "
        "mask image or named in words (region='the car')."
    )
    inputs = InpaintArgs
    outputs = (Modality.IMAGE,)

    def run(self, args: InpaintArgs, ctx: ToolContext) -> ToolResult:
        from PIL import Image, ImageFilter

        from tools.diffusion import few_step_defaults, task_pipe

        s = ctx.settings.image
        _check(s, args.steps, args.strength)
        src = _rgb(ctx, args.image)  # a bad input fails before any model loads
        mask = _mask(ctx, args)
        pipe = task_pipe(ctx, "inpaint", s.inpainter, "tools.image.inpainter", self.name)
        img, notes = _prepare(ctx, src, pipe)
        mask = mask.resize(img.size, Image.Resampling.BILINEAR).point(lambda v: 255 * (v > 127))
        what = f"the mask {args.mask.label()}" if args.mask else f"region {args.region!r}"
        if mask.getbbox() is None:
            raise ToolError(
                f"{what} is all black, so there is nothing to repaint; white marks the part "
                "to repaint"
                if args.mask
                else f"found no {args.region} in {args.image.label()}; name it differently "
                "or give a mask image"
            )
        spec = s.inpainter or s.generator
        defaults = few_step_defaults(pipe.pipe, spec, pipe.source)
        steps, strength = args.steps or defaults.steps, args.strength or 1.0
        # Keep the unmasked part exactly as it was (the VAE round trip would soften it).
        soft = mask.filter(ImageFilter.GaussianBlur(max(1, min(img.size) // 256)))
        seed = pick_seed(args.seed)
        facts = {"model": spec, "pipeline": pipe.name, "steps": steps, "strength": strength}
        facts |= {"guidance": defaults.guidance, "width": img.width, "height": img.height}
        meta = {"prompt": args.prompt, "region": args.region, "source": args.image.id, **facts}
        call: dict[str, Any] = {"prompt": args.prompt, "image": img, "mask_image": mask}
        call |= {"width": img.width, "height": img.height, "num_inference_steps": steps}
        call |= {"strength": strength, "guidance_scale": defaults.guidance}
        stem = slug(args.image.name.rsplit(".", 1)[0], "image") + "-inpaint"

        def finish(out: Any) -> Any:
            return Image.composite(_resized(img.size)(out.convert("RGB")), img, soft)

        arts, _ = _paint(ctx, pipe, self.name, stem, [seed], meta, notes, call, None, finish)
        covered = mask.histogram()[255] / (img.width * img.height)
        summary = (
            f"repainted {what} ({covered:.0%} of {args.image.label()}) as '{args.prompt[:60]}' "
            f"with {spec}: {steps} steps, seed {seed}"
        )
        data = {**facts, "seed": seed, "mask_fraction": round(covered, 4), "notes": notes}
        return ToolResult(artifacts=arts, data=data, summary=with_notes(summary, notes))


generate_image = GenerateImage()
edit_image = EditImage()
inpaint_image = InpaintImage()
