"""describe_mesh, convert_mesh and simplify_mesh: a mesh file as something the assistant can
read, rewrite and lighten.

All three load through ``tools.mesh_io.load_mesh``, which refuses what cannot be trusted (empty,
corrupt, unknown formats, point clouds, NaN coordinates, too many faces) before anything is
written, and store through ``store_mesh``, which checks the file reads back first: a failed call
leaves nothing in the store. describe_mesh writes the facts a person asks about (size, faces,
watertightness, pieces); when a vision-language model is installed it also renders one 3/4 view
and captions it, as describe_video captions keyframes, and without one it says so in a note.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.artifact import Artifact, Modality, slug
from tools.base import Cancelled, MeshInput, Tool, ToolContext, ToolResult
from tools.errors import ToolError
from tools.mesh_io import (
    COLOURS,
    WRITE_FORMATS,
    LoadedMesh,
    colour_kind,
    decimate,
    load_mesh,
    mesh_facts,
    store_mesh,
)

VIEW_SIZE = 448
"""Side in pixels of the view describe_mesh shows the vision-language model."""

COLOUR_WORDS = {
    "vertex": "per-vertex colours",
    "face": "per-face colours",
    "texture": "a texture (UV-mapped image)",
    "none": "none (a plain surface)",
}


def stem_of(art: Artifact) -> str:
    """The input's name stem as a file-name stem for what a tool writes from it."""
    return slug(Path(art.name).stem, "mesh") if art.name else "mesh"


def number(value: float) -> str:
    """``value`` to two significant digits, without exponent for everyday sizes:
    1.8, 0.9, 1200, 0.012."""
    return f"{float(f'{value:.2g}'):g}"


def size_words(extents: list[float]) -> str:
    """'about 1.8 x 0.9 x 0.6 units': the bounding box's sides, longest first."""
    sides = sorted(extents, reverse=True)
    return "about " + " x ".join(number(v) for v in sides) + " units"


def loaded_label(art: Artifact, loaded: LoadedMesh) -> str:
    return f"{art.label()} ({loaded.format.upper()})"


# --- describe_mesh ---------------------------------------------------------------------------


class DescribeMeshArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mesh: MeshInput


def describe_facts(loaded: LoadedMesh) -> dict[str, Any]:
    """The facts describe_mesh reports, as data: mesh_io's facts with the size in words, the
    centre, the parts merged and the colour kind as a word."""
    facts = mesh_facts(loaded.mesh)
    lo, hi = facts["bounds"]
    centre = [round((a + b) / 2, 6) for a, b in zip(lo, hi, strict=True)]
    return {
        "format": loaded.format,
        "vertices": facts["vertices"],
        "faces": facts["faces"],
        "parts": loaded.parts,
        "size": size_words(facts["extents"]),
        "extents": facts["extents"],
        "bounds": facts["bounds"],
        "centre": centre,
        "watertight": facts["watertight"],
        **({"volume": facts["volume"]} if "volume" in facts else {}),
        "components": facts["components"],
        "area": facts["area"],
        "colours": facts["colours"] or "none",
    }


def point(values: list[float]) -> str:
    return "(" + ", ".join(number(v) for v in values) + ")"


def description(name: str, facts: dict[str, Any], caption: str | None) -> str:
    """The facts as a few lines of Markdown a person (and a small planner) reads at a glance."""
    x, y, z = facts["extents"]
    lines = [
        f"# {name}",
        "",
        f"A 3D mesh ({facts['format'].upper()}): {facts['vertices']:,} vertices, "
        f"{facts['faces']:,} faces.",
        "",
    ]
    if caption:
        lines.append(f"- Looks like: {caption}")
    lines.append(
        f"- Size: {facts['size']} (x {number(x)}, y {number(y)}, z {number(z)}); bounds "
        f"{point(facts['bounds'][0])} to {point(facts['bounds'][1])}, centre "
        f"{point(facts['centre'])}"
    )
    if facts["watertight"]:
        lines.append(f"- Watertight: yes (closed), volume {number(facts['volume'])} cubic units")
    else:
        lines.append("- Watertight: no (it has holes or open edges, so no volume)")
    pieces = facts["components"]
    lines.append(
        f"- Separate pieces: {pieces}" + (" (one connected surface)" if pieces == 1 else "")
    )
    lines.append(f"- Surface area: {number(facts['area'])} square units")
    lines.append(f"- Colours: {COLOUR_WORDS[facts['colours']]}")
    if facts["parts"] > 1:
        lines.append(f"- Parts in the file: {facts['parts']}, merged into one mesh")
    return "\n".join(lines)


def look_at(
    ctx: ToolContext, loaded: LoadedMesh, art: Artifact, notes: list[str]
) -> tuple[str | None, str | None, Artifact | None]:
    """One 3/4 view of the mesh captioned by the vision-language model: (caption, model, the
    view). No model installed, or a view or caption that fails, is a note and (None, None,
    ...): the facts still describe the mesh."""
    from tools.models import manager_of
    from tools.vision import SETTING, look, vision_model
    from tools.vlm import check_available

    work = dataclasses.replace(ctx, models=manager_of(ctx))  # shared with the other tools
    spec = vision_model(work)
    try:
        check_available(spec, work.models, SETTING)
    except ToolError as exc:
        notes.append(f"what it looks like is not described: no vision-language model ({exc})")
        return None, None, None
    view: Artifact | None = None
    try:
        from tools.mesh_render import render_views, renderable

        ctx.report(0.3, "rendering a view")
        shown, simplified = renderable(loaded.mesh, ctx.settings)
        if simplified:
            notes.append(simplified)
        [image] = render_views(shown, 1, VIEW_SIZE)
        ctx.check_cancelled()
        view = ctx.store.add_image(
            image,
            name=f"{stem_of(art)}-view.png",
            metadata={"source": art.id, "source_step": ctx.step_id, "view": "3/4"},
        )
        text, model = look(work.phase(0.4, 0.95, "looking at a view", stream=False), view, "brief")
    except Cancelled:
        raise
    except ToolError as exc:
        notes.append(f"what it looks like is not described: {exc}")
        return None, None, view
    notes.append(f"'looks like' is the vision-language model {model} on one rendered 3/4 view")
    return " ".join(text.split()), model, view


class DescribeMesh(Tool):
    name = "describe_mesh"
    description = (
        "Describe a 3D mesh: what it looks like, its size, faces, and whether it is watertight."
    )
    inputs = DescribeMeshArgs
    outputs = (Modality.TEXT,)

    def run(self, args: DescribeMeshArgs, ctx: ToolContext) -> ToolResult:
        art = args.mesh
        ctx.report(0.0, f"reading {art.label()}")
        loaded = load_mesh(art, ctx.settings)
        ctx.check_cancelled()
        ctx.report(0.2, "measuring")
        facts = describe_facts(loaded)
        notes = list(loaded.notes)
        caption, model, view = look_at(ctx, loaded, art, notes)
        text = description(art.label(), facts, caption)
        if notes:
            text += "\n\nNotes: " + "; ".join(notes) + "."
        data = facts | {"caption": caption, "vision_model": model, "notes": notes}
        meta = {"source": art.id, "source_step": ctx.step_id, "vision_model": model}
        out = ctx.store.add_text(text, name=f"{stem_of(art)}-description.md", metadata=meta)
        ctx.report(1.0, "done")
        closed = "watertight" if facts["watertight"] else "not watertight"
        return ToolResult(
            artifacts=[out, *([view] if view is not None else [])],
            data=data,
            summary=f"described {art.label()}: {facts['faces']:,} faces, {facts['size']}, "
            f"{closed}, {facts['components']} piece(s)",
        )


# --- convert_mesh ----------------------------------------------------------------------------


class ConvertMeshArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mesh: MeshInput
    format: Literal["glb", "obj", "stl", "ply"] = Field(description="the file format to write")


def colour_notes(kind: str | None, fmt: str) -> tuple[str | None, list[str]]:
    """The colours a ``fmt`` file keeps of colours of ``kind`` (None: none), and notes on
    what is lost or changed."""
    if kind is None:
        return None, []
    if not COLOURS[fmt]:
        return None, [f"{fmt.upper()} holds no colours: the mesh's {kind} colours are dropped"]
    if kind == "texture" and fmt != "glb":
        return None, [
            f"the texture image is not kept: a single {fmt.upper()} file cannot hold it "
            "(convert to glb to keep it)"
        ]
    if kind == "face" and fmt in ("glb", "obj"):
        return "vertex", [f"{fmt.upper()} has no per-face colours: they become per-vertex colours"]
    return kind, []


class ConvertMesh(Tool):
    name = "convert_mesh"
    description = "Convert a 3D mesh to another file format (glb, obj, stl, ply)."
    inputs = ConvertMeshArgs
    outputs = (Modality.MESH,)

    def run(self, args: ConvertMeshArgs, ctx: ToolContext) -> ToolResult:
        art, fmt = args.mesh, args.format
        ctx.report(0.0, f"reading {art.label()}")
        loaded = load_mesh(art, ctx.settings)
        ctx.check_cancelled()
        notes = list(loaded.notes)
        if loaded.format == fmt:
            notes.append(
                f"{art.label()} already was {fmt.upper()}; it was written again, cleaned "
                "(parts merged, degenerate faces dropped, checked to read back)"
            )
        colours, changed = colour_notes(colour_kind(loaded.mesh), fmt)
        notes += changed
        ctx.report(0.5, f"writing {fmt.upper()}")
        stem = stem_of(art)
        out = store_mesh(ctx, loaded.mesh, stem, fmt, source=art.id, notes=notes, colours=colours)
        ctx.report(1.0, "done")
        faces = len(loaded.mesh.faces)
        return ToolResult(
            artifacts=[out],
            data={
                "from": loaded.format,
                "to": fmt,
                "vertices": len(loaded.mesh.vertices),
                "faces": faces,
                "bytes": out.metadata["size"],
                "colours": colours,
                "notes": notes,
            },
            summary=f"converted {loaded_label(art, loaded)} to {fmt.upper()} ({faces:,} faces)",
        )


# --- simplify_mesh ---------------------------------------------------------------------------


class SimplifyMeshArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mesh: MeshInput
    faces: int = Field(ge=100, le=10_000_000, description="the target face count")


class SimplifyMesh(Tool):
    name = "simplify_mesh"
    description = (
        "Simplify a 3D mesh to about a target number of faces (quadric decimation), keeping "
        "its shape and vertex colours."
    )
    inputs = SimplifyMeshArgs
    outputs = (Modality.MESH,)

    def run(self, args: SimplifyMeshArgs, ctx: ToolContext) -> ToolResult:
        art, target = args.mesh, args.faces
        ctx.report(0.0, f"reading {art.label()}")
        loaded = load_mesh(art, ctx.settings)
        mesh = loaded.mesh
        before, closed = len(mesh.faces), bool(mesh.is_watertight)
        notes = list(loaded.notes)
        data: dict[str, Any] = {
            "target": target,
            "faces_before": before,
            "watertight_before": closed,
        }
        if before <= target:
            notes.append(f"it has {before:,} faces, already at or under the target {target:,}")
            data |= {"faces": before, "watertight": closed, "unchanged": True, "notes": notes}
            return ToolResult(
                artifacts=[art],
                data=data,
                summary=f"{art.label()} has {before:,} faces, already at or under {target:,}: "
                "returned as is",
            )
        ctx.check_cancelled()
        ctx.report(0.2, f"simplifying {before:,} faces to about {target:,}")
        out = decimate(mesh, target)
        ctx.check_cancelled()
        fmt = loaded.format
        if fmt not in WRITE_FORMATS:
            notes.append(f"{fmt.upper()} is not written here, so the result is GLB")
            fmt = "glb"
        kind, kept = colour_kind(mesh), colour_kind(out)
        if kind is not None and kept is None:
            notes.append(f"its {kind} colours did not survive simplification")
        colours, changed = colour_notes(kept, fmt)
        notes += changed
        after, still = len(out.faces), bool(out.is_watertight)
        if closed and not still:
            notes.append("it was watertight before; simplifying opened it")
        ctx.report(0.8, f"writing {fmt.upper()}")
        stem = f"{stem_of(art)}-{after}-faces"
        stored = store_mesh(ctx, out, stem, fmt, source=art.id, notes=notes, colours=colours)
        ctx.report(1.0, "done")
        data |= {
            "faces": after,
            "vertices_before": len(mesh.vertices),
            "vertices": len(out.vertices),
            "watertight": still,
            "format": fmt,
            "colours": colours,
            "unchanged": False,
            "notes": notes,
        }
        return ToolResult(
            artifacts=[stored],
            data=data,
            summary=f"simplified {art.label()}: {before:,} -> {after:,} faces, "
            + ("still watertight" if still else "not watertight"),
        )


describe_mesh = DescribeMesh()
convert_mesh = ConvertMesh()
simplify_mesh = SimplifyMesh()
