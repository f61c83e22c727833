"""3D generation tools: generate_3d (text to a mesh) and image_to_3d (a picture to a mesh).

The models are settings (``[tools.mesh]``: generator, image_generator), named as for images: a
catalog name (``shap-e``, ``shap-e-img2img``), a folder or a Hub id; ``tools.shap_e`` loads and
runs them. Each call returns the mesh (GLB by default; PLY, OBJ or STL on request, with vertex
colours where the format keeps them) and a preview grid of views.

Without text-to-3D weights, generate_3d may build the object from simple shapes (boxes,
spheres, cylinders, cones: ``tools.mesh_scene``), the language model's or the caller's,
labelled as such everywhere. image_to_3d has no stand-in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from tools.artifact import Modality, slug
from tools.base import (
    Cancelled,
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
from tools.mesh_scene import Shape
from tools.settings import MAX_RESOLUTION
from tools.shap_e import EXAMPLE, GENERATOR, IMAGE_GENERATOR, KIND

if TYPE_CHECKING:  # mypy sees the values the slots hand the tool
    Prompt = str
else:
    Prompt = text_input("what the object should be")

MODEL_SHARE = 0.9
"""The part of a run's progress the model takes; the preview and the file take the rest."""
Format = Literal["glb", "ply", "obj", "stl"]


def _steps() -> Any:
    text = "denoising steps: more is slower and finer (default: tools.mesh.steps, 64)"
    return Field(None, ge=1, description=text)


def _guidance(default: str) -> Any:
    text = f"how strictly to follow the input (default: {default})"
    return Field(None, ge=0, le=100, description=text)


def _resolution() -> Any:
    text = (
        "marching-cubes grid, cells a side: finer is slower and makes more faces "
        "(default: tools.mesh.resolution, 128)"
    )
    return Field(None, ge=16, le=MAX_RESOLUTION, description=text)


def _format() -> Any:
    return Field(
        "glb", description="mesh file: glb, ply or obj (with vertex colours) or stl (none)"
    )


class Generate3DArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    seed: int | None = seed_field()
    steps: int | None = _steps()
    guidance: float | None = _guidance("15")
    resolution: int | None = _resolution()
    format: Format = _format()
    # Hidden from the planner's schema: a small planner fills it with one placeholder box.
    # Callers (Python, HTTP, plan files) may give it; otherwise the language model writes the
    # shapes itself when they are needed (tools.mesh_scene.plan_scene).
    shapes: SkipJsonSchema[list[Shape] | None] = Field(
        None,
        description="the object as simple shapes, used only when no text-to-3D model is "
        "installed (default: the language model writes them)",
    )


class ImageTo3DArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: ImageInput
    remove_background: bool = Field(True, description="cut the object out of its background first")
    seed: int | None = seed_field()
    steps: int | None = _steps()
    guidance: float | None = _guidance("3")
    resolution: int | None = _resolution()
    format: Format = _format()


# --- limits ---------------------------------------------------------------------------------


def _check(ctx: ToolContext, args: Generate3DArgs | ImageTo3DArgs) -> int:
    """Refuse asks over the configured limits, naming the setting; return the seed."""
    s = ctx.settings.mesh
    check_limit("steps", args.steps, s.max_steps, "tools.mesh.max_steps")
    check_limit("resolution", args.resolution, s.max_resolution, "tools.mesh.max_resolution")
    return pick_seed(args.seed)


# --- writing --------------------------------------------------------------------------------


def _store(
    ctx: ToolContext, mesh: Any, stem: str, fmt: str, meta: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Store the preview grid, then the mesh (which names the preview); return both and the
    mesh's facts."""
    from tools.mesh_io import FACTS, export_mesh, store_mesh
    from tools.mesh_render import store_preview

    ctx.report(MODEL_SHARE, f"writing the {fmt.upper()} file")
    exported = export_mesh(mesh, fmt)  # checked first, so a failed export leaves no preview
    ctx.report(0.92, "rendering the preview")
    # Rendering checks for cancellation; nothing after it does, so a preview gets its mesh.
    preview = store_preview(ctx, mesh, stem, **meta)
    art = store_mesh(ctx, mesh, stem, fmt, exported, preview=preview.id, **meta)
    ctx.report(1.0, "done")
    return [art, preview], {k: v for k, v in art.metadata.items() if k in FACTS}


def _made(facts: dict[str, Any], fmt: str) -> str:
    return f"a {fmt.upper()} mesh of {facts['faces']:,} faces ({facts['vertices']:,} vertices)"


def _run(
    ctx: ToolContext,
    args: Generate3DArgs | ImageTo3DArgs,
    pipe: Any,
    label: str,
    guidance: float,
    seed: int,
    what: str,
    **inputs: Any,
) -> tuple[Any, tuple[int, float, int]]:
    """Run Shap-E on ``inputs`` (``prompt=`` or ``image=``) with the call's steps, guidance
    and resolution, else the settings' (``guidance`` the default); return the mesh and the
    three values used."""
    from tools.shap_e import run_shap_e

    s = ctx.settings.mesh
    used = (
        args.steps or s.steps,
        guidance if args.guidance is None else args.guidance,
        args.resolution or s.resolution,
    )
    steps, guidance, resolution = used
    mesh = run_shap_e(
        ctx.phase(0.0, MODEL_SHARE),
        pipe,
        label,
        seed=seed,
        steps=steps,
        guidance=guidance,
        resolution=resolution,
        what=what,
        **inputs,
    )
    return mesh, used


class Generate3D(Tool):
    name = "generate_3d"
    description = (
        "Generate a 3D model (a mesh: GLB, PLY, OBJ or STL, with a preview image) of an "
        "object from a text prompt."
    )
    inputs = Generate3DArgs
    outputs = (Modality.MESH, Modality.IMAGE)

    def run(self, args: Generate3DArgs, ctx: ToolContext) -> ToolResult:
        from tools.diffusion import ModelMissing
        from tools.shap_e import load_shap_e

        s = ctx.settings.mesh
        prompt = args.prompt.strip()
        if not prompt:
            raise ToolError("the prompt is empty; say what the object should be")
        seed = _check(ctx, args)
        try:
            pipe = load_shap_e(ctx, GENERATOR)
        except ModelMissing as exc:
            if not s.procedural_fallback:
                raise ToolError(f"generate_3d needs a text-to-3D model: {exc}") from None
            return _procedural(ctx, args, prompt, str(exc))
        notes = []
        if args.shapes:
            notes.append(f"the shapes given were not needed: {s.generator} made the mesh")
        mesh, (steps, guidance, resolution) = _run(
            ctx, args, pipe, self.name, s.guidance, seed, repr(prompt), prompt=prompt
        )
        meta: dict[str, Any] = {"prompt": prompt, "seed": seed, "model": s.generator}
        meta |= {"pipeline": pipe.name, "steps": steps, "guidance": guidance}
        meta |= {"resolution": resolution, "procedural": False}
        arts, facts = _store(ctx, mesh, f"{slug(prompt, 'object')}-{seed}", args.format, meta)
        what = (
            f"generated {_made(facts, args.format)} of {prompt!r} with {s.generator} "
            f"({steps} steps, guidance {guidance:g}, {resolution}³ grid, seed {seed})"
        )
        data = {**meta, **facts, "format": args.format, "notes": notes}
        return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


def _procedural(ctx: ToolContext, args: Generate3DArgs, prompt: str, reason: str) -> ToolResult:
    """No text-to-3D weights: a labelled mesh of simple shapes, given or planned by the LLM."""
    from tools.diffusion import install_advice
    from tools.mesh_scene import LABEL, build_scene, plan_scene

    s = ctx.settings.mesh
    shapes = args.shapes
    if not shapes:
        try:
            shapes = plan_scene(ctx.phase(0.0, MODEL_SHARE), prompt)
        except Cancelled:
            raise
        except ToolError as exc:
            raise ToolError(
                f"generate_3d has no text-to-3D model ({reason}), and no shapes to build "
                f"instead: {exc}"
            ) from None
    mesh = build_scene(shapes)
    notes = []
    if args.seed is not None or args.steps or args.guidance is not None or args.resolution:
        notes.append("seed, steps, guidance and resolution do not apply to simple shapes")
    meta: dict[str, Any] = {"prompt": prompt, "procedural": True, "label": LABEL}
    meta |= {"reason": reason, "model": None, "shapes": len(shapes)}
    arts, facts = _store(ctx, mesh, f"{slug(prompt, 'object')}-shapes", args.format, meta)
    advice = install_advice(s.generator, GENERATOR, KIND[GENERATOR], EXAMPLE[GENERATOR])
    what = (
        f"no text-to-3D model is installed, so this is {_made(facts, args.format)} built "
        f"from {len(shapes)} simple shape{'s' if len(shapes) != 1 else ''} (boxes, spheres, "
        "cylinders, cones), NOT a "
        f"generated 3D model; for a real one {advice}"
    )
    data = {**meta, **facts, "format": args.format, "notes": notes}
    return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


class ImageTo3D(Tool):
    name = "image_to_3d"
    description = (
        "Turn a picture of an object into a 3D model (a mesh: GLB, PLY, OBJ or STL, with a "
        "preview image)."
    )
    inputs = ImageTo3DArgs
    outputs = (Modality.MESH, Modality.IMAGE)

    def run(self, args: ImageTo3DArgs, ctx: ToolContext) -> ToolResult:
        from tools.diffusion import ModelMissing
        from tools.image_io import open_image
        from tools.shap_e import load_shap_e, prepare_image

        s = ctx.settings.mesh
        img = open_image(args.image, ctx.settings)  # bad input fails first
        seed = _check(ctx, args)
        image, background, notes = prepare_image(img, args.remove_background)
        try:
            pipe = load_shap_e(ctx, IMAGE_GENERATOR)
        except ModelMissing as exc:
            raise ToolError(
                f"image_to_3d needs an image-to-3D model (there is no stand-in): {exc}"
            ) from None
        mesh, (steps, guidance, resolution) = _run(
            ctx, args, pipe, self.name, s.image_guidance, seed, args.image.label(), image=image
        )
        meta: dict[str, Any] = {"source": args.image.id, "seed": seed}
        meta |= {"model": s.image_generator, "pipeline": pipe.name, "steps": steps}
        meta |= {"guidance": guidance, "resolution": resolution, "procedural": False}
        meta |= background
        stem = f"{slug(Path(args.image.name).stem, 'image')}-3d-{seed}"
        arts, facts = _store(ctx, mesh, stem, args.format, meta)
        what = (
            f"made {_made(facts, args.format)} from {args.image.label()} with "
            f"{s.image_generator} ({steps} steps, guidance {guidance:g}, {resolution}³ grid, "
            f"seed {seed}; background: {background['background']})"
        )
        data = {**meta, **facts, "format": args.format, "notes": notes}
        return ToolResult(artifacts=arts, data=data, summary=with_notes(what, notes))


generate_3d = Generate3D()
image_to_3d = ImageTo3D()
