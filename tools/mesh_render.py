"""render_mesh (a PNG grid of views and a turntable GIF of a mesh) and the helpers generate_3d
and image_to_3d use to store the preview beside a mesh: everything that lays rendered views out
and stores them as artifacts. The rendering itself (Embree ray casting, headless) is
tools/mesh_raster.py; ``render_views`` is re-exported here for the modules that import it from
this one.

Preview metadata says ``view_size`` for the side of one view: ``size`` is the artifact store's
own key (the file's bytes), which readers such as ``open_image`` rely on.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Artifact, Modality, slug
from tools.base import MeshInput, Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.image_io import check_output_size
from tools.mesh_io import decimate, load_mesh
from tools.mesh_raster import ELEVATION, MeshRenderer, Up, azimuths, render_views

if TYPE_CHECKING:
    from PIL import Image

    from tools.settings import ToolSettings

__all__ = [
    "GIF_FPS",
    "GIF_MAX_SIZE",
    "RenderMesh",
    "RenderMeshArgs",
    "encode_gif",
    "grid",
    "grid_size",
    "render_mesh",
    "render_views",
    "renderable",
    "store_preview",
]

GRID_GAP_COLOUR = (255, 255, 255)
GIF_MAX_SIZE = 320
"""Side of the turntable GIF's frames at most: a GIF of bigger frames is slow and heavy."""
GIF_FPS = 12


def _layout(views: int, size: int) -> tuple[int, int, int]:
    """(columns, rows, gap in px) of a near-square grid of ``views`` views of ``size`` px."""
    cols = math.ceil(math.sqrt(views))
    return cols, math.ceil(views / cols), max(2, size // 128) if views > 1 else 0


def grid_size(views: int, size: int) -> tuple[int, int]:
    """Width and height of the ``grid`` of ``views`` views of ``size`` px."""
    cols, rows, gap = _layout(views, size)
    return cols * size + (cols - 1) * gap, rows * size + (rows - 1) * gap


def grid(images: Sequence[Image.Image]) -> Image.Image:
    """The (square, same-sized) views on one near-square sheet, in reading order, a thin
    white line between them."""
    from PIL import Image

    if not images:
        raise ToolError("no views to lay out")
    size = images[0].width
    cols, _, gap = _layout(len(images), size)
    sheet = Image.new("RGB", grid_size(len(images), size), GRID_GAP_COLOUR)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        sheet.paste(img.convert("RGB"), (c * (size + gap), r * (size + gap)))
    return sheet


def renderable(mesh: Any, settings: ToolSettings) -> tuple[Any, str | None]:
    """``mesh``, simplified to ``render_max_faces`` when over it, and a note saying so."""
    limit = settings.mesh.render_max_faces
    faces = len(mesh.faces)
    if faces <= limit:
        return mesh, None
    small = decimate(mesh, limit)
    return small, (
        f"the mesh has {faces:,} faces, so the preview shows it simplified to "
        f"{len(small.faces):,} (tools.mesh.render_max_faces)"
    )


def store_preview(ctx: ToolContext, mesh: Any, stem: str, **metadata: Any) -> Artifact:
    """Render the settings' preview grid of ``mesh`` and store it as ``stem-preview.png``."""
    s = ctx.settings.mesh
    shown, note = renderable(mesh, ctx.settings)
    views, size = s.preview_views, s.preview_size

    def step(done: int, total: int) -> None:
        ctx.check_cancelled()

    images = render_views(shown, views, size, on_view=step)
    meta: dict[str, Any] = {
        "preview": "mesh",
        "views": views,
        "view_size": size,
        "azimuths": azimuths(views),
        "elevation": ELEVATION,
        "faces_rendered": len(shown.faces),
        "source_step": ctx.step_id,
    }
    if note:
        meta |= {"decimated_from": len(mesh.faces), "note": note}
    return ctx.store.add_image(grid(images), name=f"{stem}-preview.png", metadata=meta | metadata)


def encode_gif(frames: Sequence[Image.Image], fps: float) -> bytes:
    """An endlessly looping GIF of ``frames``, all on one adaptive 256-colour palette (taken
    from a strip of every frame, so colours do not flicker between frames)."""
    from PIL import Image

    w, h = frames[0].size
    thumbs = [f.resize((max(1, w // 4), max(1, h // 4)), Image.Resampling.BOX) for f in frames]
    strip = Image.new("RGB", (thumbs[0].width * len(thumbs), thumbs[0].height))
    for i, t in enumerate(thumbs):
        strip.paste(t, (i * t.width, 0))
    palette = strip.quantize(256, method=Image.Quantize.MEDIANCUT)
    quantized = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    buf = io.BytesIO()
    quantized[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=quantized[1:],
        duration=round(1000 / fps),
        loop=0,
        optimize=False,
        disposal=1,
    )
    return buf.getvalue()


class RenderMeshArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mesh: MeshInput
    views: int = Field(4, ge=1, le=36, description="how many angles in the grid")
    size: int = Field(512, ge=64, le=2048, description="side of each view in pixels")
    frames: int = Field(24, ge=4, le=72, description="frames of the turntable GIF")
    up: Up = Field(
        "y", description="the model's up axis: y for glTF/GLB/OBJ, z for many STL/PLY scans"
    )
    elevation: float = Field(
        ELEVATION, ge=-80, le=80, description="camera height in degrees above the horizon"
    )


class RenderMesh(Tool):
    name = "render_mesh"
    description = (
        "Show a 3D mesh: a PNG grid of views from several angles and an animated GIF of it "
        "turning a full circle (rendered on the CPU, no GPU or display needed)."
    )
    inputs = RenderMeshArgs
    outputs = (Modality.IMAGE, Modality.IMAGE)

    def run(self, args: RenderMeshArgs, ctx: ToolContext) -> ToolResult:
        try:
            check_output_size(*grid_size(args.views, args.size), ctx.settings)
        except ToolError as exc:
            raise ToolError(f"{exc}: ask for fewer views or a smaller size") from None
        ctx.report(0.0, f"reading {args.mesh.label()}")
        loaded = load_mesh(args.mesh, ctx.settings)
        notes = list(loaded.notes)
        ctx.check_cancelled()
        if len(loaded.mesh.faces) > ctx.settings.mesh.render_max_faces:
            ctx.report(0.0, f"simplifying {len(loaded.mesh.faces):,} faces to render")
        shown, note = renderable(loaded.mesh, ctx.settings)
        notes += [note] if note else []
        ctx.check_cancelled()
        renderer = MeshRenderer(shown, args.up)
        side = min(args.size, GIF_MAX_SIZE)
        # progress by pixels traced: a grid view at 512 px costs 2.6 GIF frames at 320
        view_cost, frame_cost = args.size**2, side**2
        total = args.views * view_cost + args.frames * frame_cost

        def view_done(done: int, _: int) -> None:
            ctx.check_cancelled()
            ctx.report(done * view_cost / total, f"rendered view {done} of {args.views}")

        def frame_done(done: int, _: int) -> None:
            ctx.check_cancelled()
            fraction = (args.views * view_cost + done * frame_cost) / total
            ctx.report(fraction, f"rendered frame {done} of {args.frames}")

        angles, turn = azimuths(args.views), azimuths(args.frames, 0.0)
        views = render_views(
            shown,
            args.views,
            args.size,
            elevation=args.elevation,
            renderer=renderer,
            on_view=view_done,
        )
        frames = render_views(
            shown,
            args.frames,
            side,
            elevation=args.elevation,
            start=0.0,
            renderer=renderer,
            on_view=frame_done,
        )
        # stored only once everything rendered: a cancelled step leaves nothing behind
        stem = slug(Path(args.mesh.name).stem, "mesh") if args.mesh.name else "mesh"
        common = {
            "source": args.mesh.id,
            "elevation": args.elevation,
            "up": args.up,
            "faces_rendered": renderer.faces,
            "source_step": ctx.step_id,
        }
        sheet = ctx.store.add_image(
            grid(views),
            name=f"{stem}-views.png",
            metadata={"preview": "mesh", "views": args.views, "view_size": args.size}
            | {"azimuths": angles, **common},
        )
        gif = ctx.store.add_bytes(
            encode_gif(frames, GIF_FPS),
            name=f"{stem}-turntable.gif",
            mime="image/gif",
            modality=Modality.IMAGE,
            metadata={"preview": "turntable", "width": side, "height": side}
            | {"frames": args.frames, "fps": GIF_FPS, "azimuths": turn, **common},
        )
        ctx.report(1.0, "done")
        w, h = sheet.metadata["width"], sheet.metadata["height"]
        faces = f"{len(loaded.mesh.faces):,} faces"
        if note:
            faces += f", shown simplified to {renderer.faces:,}"
        return ToolResult(
            artifacts=[sheet, gif],
            data={
                "faces": len(loaded.mesh.faces),
                "faces_rendered": renderer.faces,
                "views": args.views,
                "azimuths": angles,
                "frames": args.frames,
                "notes": notes,
            },
            summary=f"rendered {args.mesh.label()} ({faces}): a {w}x{h} grid of {args.views} "
            f"view(s) and a {args.frames}-frame {side} px turntable GIF",
        )


render_mesh = RenderMesh()
