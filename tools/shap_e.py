"""Shap-E through diffusers: loading the text-to-3D (``ShapEPipeline``, openai/shap-e) and
image-to-3D (``ShapEImg2ImgPipeline``, openai/shap-e-img2img) pipelines through the model
manager, and running one into a ``trimesh.Trimesh``.

Shap-E denoises a latent with its prior (Heun: two model calls a step but the last), then
turns the latent into the weights of a small MLP whose signed distance field marching cubes
meshes, its colour head colouring the vertices. The pipelines take no step callback, so
progress and cancellation come from wrapping the pipeline's ``progress_bar`` (the loop over
the scheduler's timesteps) and, while decoding, a hook on the MLP (one call per batch of grid
points). Nothing here is imported by ``import tools``: torch and diffusers load on first use.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tools.base import ToolContext
from tools.errors import ToolError, require
from tools.hf import first_line, weights_size
from tools.pipe_loading import from_pretrained, pipeline_source, quiet_loading
from tools.video_pipes import call_params

if TYPE_CHECKING:
    from tools.diffusion import Pipe

GENERATOR = "tools.mesh.generator"
IMAGE_GENERATOR = "tools.mesh.image_generator"
EXAMPLE = {GENERATOR: "shap-e", IMAGE_GENERATOR: "shap-e-img2img"}
"""The catalog model to suggest, per setting."""
KIND = {
    GENERATOR: "a Shap-E text-to-3D pipeline (diffusers ShapEPipeline)",
    IMAGE_GENERATOR: "a Shap-E image-to-3D pipeline (diffusers ShapEImg2ImgPipeline)",
}
WANT = {GENERATOR: "text-to-3D", IMAGE_GENERATOR: "image-to-3D"}
DENOISE_SHARE = 0.85
"""The part of a run's progress the denoising steps take; decoding the surface takes the rest."""
QUERY_BATCH = 4096
"""Grid points the MLP evaluates at once while decoding (diffusers' default)."""
DECODE_REPORTS = 20
"""Progress reports while decoding, at most (the grid is hundreds of batches)."""


class _NoSurface(Exception):
    """Marching cubes found no crossing: the field has one sign over the whole grid."""


# --- loading --------------------------------------------------------------------------------


def pipe_kind(pipe: Any) -> str:
    """What a pipeline makes: 'text-to-3D' or 'image-to-3D' for Shap-E's two (told by what its
    call takes), else a phrase saying it makes no mesh."""
    if not hasattr(getattr(pipe, "shap_e_renderer", None), "decode_to_mesh"):
        return "not a Shap-E pipeline"
    params = call_params(pipe)
    if "image" in params:
        return "image-to-3D"
    return "text-to-3D" if "prompt" in params else "not a Shap-E pipeline"


def _wrong_kind(spec: str, name: str, kind: str, setting: str) -> ToolError:
    fix = f"set {setting} to {KIND[setting]} such as {EXAMPLE[setting]!r}"
    if kind in WANT.values():
        other = next(k for k, v in WANT.items() if v == kind)
        return ToolError(
            f"{spec} ({name}) is a {kind} pipeline, not {WANT[setting]}; use it as {other} "
            f"instead, and {fix}"
        )
    return ToolError(f"{spec} ({name}) is {kind}, so it makes no 3D mesh; {fix}")


def load_shap_e(ctx: ToolContext, setting: str) -> Pipe:
    """Load the pipeline ``setting`` (``tools.mesh.generator`` or ``image_generator``) names,
    once per model manager, and check that it makes what the setting is for.

    Raises:
        ModelMissing: The weights are not installed; the message says how to get them.
        ToolError: They are there but cannot be loaded, or make something else.
    """
    from tools.diffusion import Pipe, device_and_dtype, dtype_kwarg

    diffusers = require("diffusers", "image")
    s = ctx.settings.mesh
    spec = s.image_generator if setting == IMAGE_GENERATOR else s.generator
    kind, example = KIND[setting], EXAMPLE[setting]
    source = pipeline_source(ctx, spec, setting, kind, example, "model_index.json")

    def loader() -> Pipe:
        ctx.report(0.0, f"loading {spec}")
        device, dtype = device_and_dtype(ctx)
        with quiet_loading():
            pipe = from_pretrained(
                diffusers.DiffusionPipeline,
                source,
                spec,
                setting,
                kind,
                example,
                **dtype_kwarg(diffusers, dtype),
            )
        if pipe_kind(pipe) != WANT[setting]:  # refused before it takes device memory
            raise _wrong_kind(spec, type(pipe).__name__, pipe_kind(pipe), setting)
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        return Pipe.new(pipe, spec, source)

    if ctx.models is None:
        return loader()
    loaded: Pipe = ctx.models.load(
        f"shap-e:{source}", loader, size_bytes=lambda: weights_size(source)
    )
    if pipe_kind(loaded.pipe) != WANT[setting]:  # loaded before for the other setting
        raise _wrong_kind(spec, loaded.name, pipe_kind(loaded.pipe), setting)
    return loaded


# --- running --------------------------------------------------------------------------------


def _stepper(ctx: ToolContext, label: str, steps: int) -> Any:
    """A stand-in for the pipeline's ``progress_bar``: it hands the loop its timesteps,
    checks for cancellation before each model call and reports each finished step.

    Heun runs ``2 * steps - 1`` model calls (a predictor and a corrector a step, the last
    step only one); call ``i`` finishes step ``floor((i + 1) * steps / calls)``, which is
    exact for Heun and for first-order schedulers (one call a step) alike.
    """

    def progress_bar(iterable: Any = None, total: Any = None) -> Iterator[Any]:
        items = list(iterable if iterable is not None else range(total or 0))
        calls, done = max(1, len(items)), 0
        for i, item in enumerate(items):
            ctx.check_cancelled()
            yield item
            finished = min(steps, (i + 1) * steps // calls)
            if finished > done:
                done = finished
                ctx.report(done / steps, f"{label}: step {done}/{steps}")

    return progress_bar


def _decode(ctx: ToolContext, pipe: Pipe, latent: Any, resolution: int) -> Any:
    """``decode_to_mesh`` with progress per batch of grid points (at most ``DECODE_REPORTS``
    reports), cancellation between batches, and ``_NoSurface`` for an empty field."""
    import torch

    renderer = pipe.pipe.shap_e_renderer
    batches = math.ceil(resolution**3 / QUERY_BATCH)  # the field; the colours come after
    calls = 0
    message = f"decoding the surface on a {resolution}³ grid"

    def count(module: Any, args: Any) -> None:
        nonlocal calls
        ctx.check_cancelled()
        calls += 1
        tick = calls * DECODE_REPORTS // batches
        if calls <= batches and tick > (calls - 1) * DECODE_REPORTS // batches:
            ctx.report(0.9 * calls / batches, message)

    def check(module: Any, args: Any, out: Any) -> None:
        if not len(out.verts) or not len(out.faces):
            raise _NoSurface

    hooks = [
        renderer.mlp.register_forward_pre_hook(count),
        renderer.mesh_decoder.register_forward_hook(check),
    ]
    ctx.report(0.0, message)
    try:
        with torch.no_grad():
            return renderer.decode_to_mesh(
                latent[None], pipe.pipe.device, grid_size=resolution, query_batch_size=QUERY_BATCH
            )
    finally:
        for hook in hooks:
            hook.remove()


def run_shap_e(
    ctx: ToolContext,
    pipe: Pipe,
    label: str,
    *,
    seed: int,
    steps: int,
    guidance: float,
    resolution: int,
    what: str,
    **inputs: Any,
) -> Any:
    """Denoise a latent for ``inputs`` (``prompt=`` or ``image=``) and decode it into a
    vertex-coloured ``trimesh.Trimesh`` (glTF's Y up, normals outwards). The steps take
    ``DENOISE_SHARE`` of the progress, decoding the rest.

    Raises:
        Cancelled: Between two model calls or two batches of grid points.
        ToolError: No surface was found ("for ``what``"), memory ran out, or the pipeline
            failed.
    """
    import torch

    from tools.diffusion import generators

    p = pipe.pipe
    with pipe.lock:  # decoding writes the latent's weights into the renderer's MLP
        ctx.check_cancelled()
        p.progress_bar = _stepper(ctx.phase(0.0, DENOISE_SHARE), label, steps)
        try:
            out = p(
                **inputs,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=generators(ctx, [seed]),
                output_type="latent",
            )
            raw = _decode(ctx.phase(DENOISE_SHARE, 1.0, label), pipe, out.images[0], resolution)
        except _NoSurface:
            raise ToolError(
                f"Shap-E found no surface for {what}; try another seed or more steps"
            ) from None
        except torch.OutOfMemoryError:
            raise ToolError(
                f"{label} ran out of memory at a {resolution}³ grid; ask for a lower resolution"
            ) from None
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise ToolError(f"{label} failed with {pipe.spec}: {first_line(exc)}") from None
        finally:
            p.__dict__.pop("progress_bar", None)
    mesh = to_trimesh(raw)
    if not len(mesh.faces):
        raise ToolError(f"Shap-E found no surface for {what}; try another seed or more steps")
    return mesh


def to_trimesh(raw: Any) -> Any:
    """A diffusers ``MeshDecoderOutput`` as a ``trimesh.Trimesh``: sRGB vertex colours from its
    R, G, B channels (0..1, linear), turned from Shap-E's Z up to glTF's Y up (-90 degrees
    about X, as diffusers' docs turn its exports), zero-area faces dropped, faces wound
    outwards."""
    import numpy as np

    trimesh = require("trimesh", "mesh")
    verts = raw.verts.detach().float().cpu().numpy()
    faces = raw.faces.detach().cpu().numpy()
    channels = raw.vertex_channels or {}
    colours = None
    if all(c in channels for c in "RGB"):
        rgb = np.stack([channels[c].detach().float().cpu().numpy() for c in "RGB"], axis=1)
        # diffusers hands the colour head's sRGB back as linear light (for its NeRF renders);
        # vertex colours in files are sRGB bytes, as the model predicted them
        rgb = np.clip(rgb, 0.0, 1.0)
        srgb = np.where(rgb <= 0.0031308, rgb * 12.92, 1.055 * rgb ** (1 / 2.4) - 0.055)
        colours = np.round(np.clip(srgb, 0.0, 1.0) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(verts, faces, vertex_colors=colours, process=True)
    keep = mesh.nondegenerate_faces()
    if not keep.all():  # a corner exactly on the surface makes repeated vertices
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))
    mesh.fix_normals()
    return mesh


# --- input images ---------------------------------------------------------------------------

WORK_SIDE = 1024
"""Images are scaled to at most this side first: the image encoder sees 224 pixels anyway."""
PLAIN_BORDER = 24
"""A border pixel within this much (per channel, 0..255) of the border's median colour is
part of a plain background."""
PLAIN_SHARE = 0.9
"""The border counts as one plain colour when this share of its pixels is."""
CUT_TOLERANCE = 32
"""Pixels within this much of the background colour, and connected to the border, are cut."""


def _square(img: Any) -> Any:
    """``img`` centred on a white square: the encoder's centre crop would cut a wide object."""
    from PIL import Image

    w, h = img.size
    if w == h:
        return img
    out = Image.new("RGB", (max(w, h), max(w, h)), (255, 255, 255))
    out.paste(img, ((max(w, h) - w) // 2, (max(w, h) - h) // 2))
    return out


def prepare_image(img: Any, remove_background: bool) -> tuple[Any, dict[str, Any], list[str]]:
    """``img`` as Shap-E's image encoder wants it: RGB, square, the object on white (its
    training renders are on white). Transparency is composited onto white; otherwise, with
    ``remove_background``, a plain background (the border nearly one colour) is cut where it
    touches the border; a busy one is kept, with a note.

    Returns:
        The image, facts for the metadata (``background``: what was done), and notes.

    Raises:
        ToolError: The image is one plain colour: there is no object to make 3D.
    """
    import numpy as np
    from PIL import Image

    ndimage = require("scipy.ndimage", "mesh")
    img = img.copy()
    img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            flat = Image.alpha_composite(white, rgba).convert("RGB")
            return _square(flat), {"background": "transparent areas made white"}, []
    rgb = img.convert("RGB")
    if not remove_background:
        return _square(rgb), {"background": "kept (remove_background is off)"}, []
    arr = np.asarray(rgb).astype(np.int16)
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    colour = np.median(border, axis=0)
    if (np.abs(border - colour).max(axis=1) <= PLAIN_BORDER).mean() < PLAIN_SHARE:
        note = (
            "the background was kept: the image's border is not one plain colour, so the "
            "object could not be cut out (an object on a plain or transparent background "
            "works best)"
        )
        return _square(rgb), {"background": "kept (not plain)"}, [note]
    labels, _ = ndimage.label(np.abs(arr - colour).max(axis=2) <= CUT_TOLERANCE)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    cut = np.isin(labels, edge[edge > 0])
    if cut.mean() > 0.995:
        raise ToolError(
            "the image is one plain colour, with no object to make 3D; attach a picture of "
            "an object"
        )
    out = np.asarray(rgb).copy()
    out[cut] = 255
    hex_colour = "#" + "".join(f"{int(c):02x}" for c in colour)
    share = round(float(cut.mean()), 3)
    facts = {"background": "cut out", "background_colour": hex_colour, "background_share": share}
    return _square(Image.fromarray(out, "RGB")), facts, []
