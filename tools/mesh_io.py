"""Reading, checking, measuring and writing meshes with trimesh.

Every 3D tool goes through here: ``load_mesh`` reads GLB, glTF, PLY, OBJ, STL and OFF files
(a scene of several parts becomes one mesh), refuses what it cannot trust (empty, corrupt,
point clouds, NaN coordinates, over the face limit) with a message saying what to do, and
drops degenerate faces with a note. ``store_mesh`` writes GLB, PLY, OBJ or STL and checks the
file reads back before it enters the store, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.artifact import Artifact, Modality
from tools.errors import ToolError, require

if TYPE_CHECKING:
    import trimesh

    from tools.base import ToolContext
    from tools.settings import ToolSettings

READ_FORMATS = ("glb", "gltf", "ply", "obj", "stl", "off")
WRITE_FORMATS = ("glb", "ply", "obj", "stl")
MIME = {
    "glb": "model/gltf-binary",
    "gltf": "model/gltf+json",
    "ply": "application/x-ply",
    "obj": "model/obj",
    "stl": "model/stl",
    "off": "model/mesh",
}
COLOURS = {"glb": True, "ply": True, "obj": True, "stl": False}
"""Whether a written format keeps vertex colours (STL has none)."""
FACTS = frozenset(
    ("vertices", "faces", "bounds", "extents", "watertight", "components", "area")
    + ("colours", "volume")
)
"""The keys ``mesh_facts`` gives (volume only for a closed mesh)."""
INGEST_LOAD_BYTES = 64 * 1024 * 1024
"""Ingest facts load meshes up to this size; larger ones get their file facts only."""


@dataclass
class LoadedMesh:
    """A mesh read from a file, and what reading it changed or noticed."""

    mesh: trimesh.Trimesh
    format: str
    parts: int = 1
    """Geometries in the file's scene, merged (with their transforms) into ``mesh``."""
    notes: list[str] = field(default_factory=list)


def mesh_format(name: str, head: bytes = b"") -> str | None:
    """The mesh format of a file, by its content where it says (GLB, binary PLY) and else by
    its name's suffix; None when neither is a format we read."""
    if head[:4] == b"glTF":
        return "glb"
    if head[:4] == b"ply\n" or head[:5] == b"ply\r\n":
        return "ply"
    suffix = Path(name).suffix.lower().lstrip(".")
    return suffix if suffix in READ_FORMATS else None


def _label(source: Artifact | Path) -> str:
    return source.label() if isinstance(source, Artifact) else Path(source).name


def _declared_faces(data: bytes, fmt: str) -> int | None:
    """The face count a file's header declares, read before parsing (binary STL, PLY), so a
    huge mesh is refused before it fills memory; None where the header says nothing."""
    if fmt == "stl" and len(data) >= 84:
        count = int(struct.unpack_from("<I", data, 80)[0])
        return count if len(data) == 84 + 50 * count else None  # binary, else ASCII
    if fmt == "ply":
        header = data[:4096].split(b"end_header", 1)[0]
        m = re.search(rb"element\s+face\s+(\d+)", header)
        return int(m.group(1)) if m else None
    return None


def _too_many(label: str, faces: int, limit: int) -> ToolError:
    return ToolError(
        f"{label} has {faces:,} faces, over the limit of {limit:,} (tools.mesh.max_faces); "
        "decimate it in a 3D program first, or raise that setting"
    )


def load_mesh(source: Artifact | Path, settings: ToolSettings) -> LoadedMesh:
    """Read ``source`` as one triangle mesh, checked and cleaned.

    Raises:
        ToolError: the file is missing, too large, of an unknown format, corrupt, empty, a
            point cloud, has non-finite coordinates, or only degenerate faces.
    """
    trimesh = require("trimesh", "mesh")
    import numpy as np

    s = settings.mesh
    label = _label(source)
    path = Path(source.path) if isinstance(source, Artifact) else Path(source)
    name = source.name if isinstance(source, Artifact) and source.name else path.name
    try:
        size = path.stat().st_size
        if size > s.max_file_bytes:
            raise ToolError(
                f"{label} is {size:,} bytes, over the limit of {s.max_file_bytes:,} bytes "
                "(tools.mesh.max_file_bytes)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise ToolError(f"cannot read {label}: {exc.strerror or exc}") from None
    if not data.strip():
        raise ToolError(f"{label} is empty; attach a mesh file with geometry in it")
    fmt = mesh_format(name, data[:8])
    if fmt is None:
        raise ToolError(
            f"{label} is not a mesh format anymodal reads (by its name {name!r}); "
            f"use one of {', '.join(READ_FORMATS)}"
        )
    declared = _declared_faces(data, fmt)
    if declared is not None and declared > s.max_faces:
        raise _too_many(label, declared, s.max_faces)
    try:
        # Parsers raise anything on a corrupt file (IndexError, KeyError, struct.error,
        # json and unicode errors ...): all of them mean "not a readable mesh".
        # Unprocessed, so NaN coordinates reach the check below (processing drops them,
        # and their faces, without a word); vertices are merged after it.
        scene = trimesh.load_scene(io.BytesIO(data), file_type=fmt, process=False)
    except Exception as exc:
        raise ToolError(
            f"{label} is not a readable {fmt.upper()} file ({type(exc).__name__}: "
            f"{str(exc)[:200]}); check that the file is complete, or export it again"
        ) from None
    geoms = list(scene.geometry.values())
    meshes = [g for g in geoms if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        what = (
            "points only (a point cloud), no faces"
            if any(isinstance(g, trimesh.PointCloud) for g in geoms)
            else "no faces"
        )
        raise ToolError(f"{label} holds {what}; a mesh needs triangles to work with")
    faces = sum(len(m.faces) for m in meshes)
    if faces > s.max_faces:
        raise _too_many(label, faces, s.max_faces)
    others = [k for k, g in scene.geometry.items() if not isinstance(g, trimesh.Trimesh)]
    if others:  # points and lines beside the surfaces
        scene.delete_geometry(others)
    mesh = scene.to_mesh()  # the parts placed by their transforms, as one mesh
    notes: list[str] = []
    if len(meshes) > 1:
        notes.append(f"its {len(meshes)} parts were merged into one mesh")
    if not np.isfinite(mesh.vertices).all():
        bad = int((~np.isfinite(mesh.vertices).all(axis=1)).sum())
        raise ToolError(f"{label} has {bad} vertices with NaN or infinite coordinates")
    mesh.merge_vertices()  # shared corners, so an STL's triangle soup is one surface
    keep = mesh.nondegenerate_faces()
    if not keep.all():
        if not keep.any():
            raise ToolError(
                f"{label} has only degenerate faces (zero area: repeated or collinear "
                "corners), so there is no surface to work with"
            )
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
        notes.append(f"{int((~keep).sum())} degenerate (zero-area) faces were dropped")
    return LoadedMesh(mesh, fmt, len(meshes), notes)


def colour_kind(mesh: Any) -> str | None:
    """'vertex', 'face' or 'texture' colours, or None for a plain mesh."""
    kind = getattr(mesh.visual, "kind", None)
    return str(kind) if kind else None


def mesh_facts(mesh: Any) -> dict[str, Any]:
    """Counts, bounds, size, watertightness, parts, area, volume (when closed), colours."""
    lo, hi = mesh.bounds
    closed = bool(mesh.is_watertight)
    facts: dict[str, Any] = {
        "vertices": int(len(mesh.vertices)),
        "faces": int(len(mesh.faces)),
        "bounds": [[round(float(v), 6) for v in lo], [round(float(v), 6) for v in hi]],
        "extents": [round(float(v), 6) for v in hi - lo],
        "watertight": closed,
        "components": int(mesh.body_count),
        "area": round(float(mesh.area), 6),
        "colours": colour_kind(mesh),
    }
    if closed:
        facts["volume"] = round(float(abs(mesh.volume)), 6)
    return facts


def export_mesh(mesh: Any, fmt: str) -> bytes:
    """``mesh`` as a ``fmt`` file, checked to read back with the same number of faces.

    Raises:
        ToolError: an unknown format, or an export that fails or reads back wrong.
    """
    trimesh = require("trimesh", "mesh")
    if fmt not in WRITE_FORMATS:
        raise ToolError(f"cannot write {fmt!r}; use one of {', '.join(WRITE_FORMATS)}")
    try:
        out = mesh.export(file_type=fmt)
    except Exception as exc:  # exporters raise anything on odd input
        raise ToolError(f"writing the mesh as {fmt.upper()} failed: {exc}") from None
    data = out.encode("utf-8") if isinstance(out, str) else bytes(out)
    try:
        back = trimesh.load_scene(io.BytesIO(data), file_type=fmt)
        faces = sum(len(g.faces) for g in back.geometry.values() if hasattr(g, "faces"))
    except Exception as exc:
        raise ToolError(f"the written {fmt.upper()} does not read back ({exc})") from None
    if faces != len(mesh.faces):
        raise ToolError(
            f"the written {fmt.upper()} reads back with {faces} faces, not {len(mesh.faces)}"
        )
    return data


def store_mesh(
    ctx: ToolContext,
    mesh: Any,
    stem: str,
    fmt: str,
    exported: bytes | None = None,
    **metadata: Any,
) -> Artifact:
    """Write ``mesh`` as ``stem.fmt`` into the store, with its facts and ``metadata``; nothing
    is stored unless the file reads back whole. ``exported`` is the file's bytes when the
    caller already has them from ``export_mesh``."""
    data = exported if exported is not None else export_mesh(mesh, fmt)
    facts = mesh_facts(mesh)
    if not COLOURS[fmt]:
        facts["colours"] = None
    meta = {**facts, "format": fmt, "source_step": ctx.step_id, **metadata}
    return ctx.store.add_bytes(
        data, name=f"{stem}.{fmt}", mime=MIME[fmt], modality=Modality.MESH, metadata=meta
    )


def facts(art: Artifact) -> dict[str, Any]:
    """Ingest facts for a mesh attachment: its format, and for files up to 64 MB the mesh
    facts; a file that cannot be read gets ``unreadable``."""
    from tools.settings import ToolSettings

    name = art.name or Path(art.path).name
    try:
        size = Path(art.path).stat().st_size
        with open(art.path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        return {"unreadable": str(exc)}
    out: dict[str, Any] = {"format": mesh_format(name, head)}
    if size > INGEST_LOAD_BYTES:
        return out
    try:
        loaded = load_mesh(art, ToolSettings())
    except ToolError as exc:
        return out | {"unreadable": str(exc)}
    return out | mesh_facts(loaded.mesh)


def decimate(mesh: Any, faces: int) -> Any:
    """``mesh`` reduced to about ``faces`` faces by quadric edge collapse (fast-simplification,
    through trimesh), keeping its shape; vertex colours carry over from the nearest original
    vertex. A mesh already at or under ``faces`` comes back unchanged.

    Raises:
        ToolError: the decimation fails (fast-simplification missing, or odd geometry).
    """
    require("fast_simplification", "mesh")
    if len(mesh.faces) <= faces:
        return mesh
    try:
        out = mesh.simplify_quadric_decimation(face_count=faces)
    except (ValueError, RuntimeError, IndexError) as exc:
        raise ToolError(f"simplifying the mesh to {faces:,} faces failed: {exc}") from None
    if not len(out.faces):
        raise ToolError(f"simplifying the mesh to {faces:,} faces left nothing of it")
    kind = colour_kind(mesh)
    if kind in ("vertex", "face"):
        from scipy.spatial import cKDTree

        if kind == "vertex":  # from the nearest original vertex
            _, nearest = cKDTree(mesh.vertices).query(out.vertices)
            out.visual.vertex_colors = mesh.visual.vertex_colors[nearest]
        else:  # from the original face with the nearest centre
            _, nearest = cKDTree(mesh.triangles_center).query(out.triangles_center)
            out.visual.face_colors = mesh.visual.face_colors[nearest]
    return out
