"""The headless mesh renderer: a trimesh mesh in, square PIL views from a turntable camera out.
render_mesh and the previews beside generated meshes (tools/mesh_render.py) are built on it.

Why ray casting with Embree (the ``embreex`` package) rather than a rasterizer: it needs no
GPU, no display and no OpenGL context (no EGL, OSMesa or X server to find at run time), so the
CLI, the TUI and a headless server all get the same picture from the same code, and it scales
to meshes of millions of faces on the CPU. The BVH is built once per mesh (``MeshRenderer``)
and reused across every view and turntable frame: views move the camera, never the mesh.

The mesh is normalised into a unit box around its centre (Embree works in float32); the
camera's distance is fitted to the convex hull once for a whole turn, so the object fills the
view at every angle and a turntable never zooms. Shading is flat Lambert from the face
normals, two-sided, with a key light from the camera's upper left, a fill light and ambient;
colours come from vertex colours (interpolated), face colours, a texture sampled at the
vertices, or a neutral clay. Each image is traced at twice its size and averaged down, which
smooths the edges; bands of rows are traced on parallel threads (Embree and numpy release the
GIL).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tools.errors import ToolError, require
from tools.mesh_io import colour_kind

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

Up = Literal["y", "z"]

FOV_DEGREES = 32.0
"""Vertical (and horizontal: the views are square) field of view of the camera."""
MARGIN = 1.06
"""Room around the object: its widest point sits this factor inside the image's edge."""
FRAMING_STEP = 5.0
"""Azimuths (degrees apart) at which the framing is fitted for a whole turn."""
SUPERSAMPLE = 2
"""Rays a pixel side; the averaging in ``MeshRenderer._band`` is written for 2."""
CHUNK_RAYS = 1 << 18
"""Rays a thread traces at once: bounds the working memory (about 30 MB a thread) whatever
the image size."""
MAX_THREADS = 8
BACKGROUND = (236, 236, 236)
MATERIAL = (168, 180, 198)
"""Default colour of a mesh without colours: a bluish clay, never the grey background."""
AMBIENT, KEY, FILL = 0.28, 0.72, 0.28
ELEVATION = 20.0
"""Default camera height, degrees above the horizon: shows the top and the sides."""


def _camera_basis(azimuth: float, elevation: float, up: Up) -> tuple[np.ndarray, ...]:
    """(direction from the centre to the eye, right, up) of a turntable camera, in the model's
    frame: azimuth turns around the model's up axis, elevation lifts the eye above it."""
    import numpy as np

    az, el = math.radians(azimuth), math.radians(elevation)
    # in a y-up frame: azimuth 0 looks at the front (+z) face
    back = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    right = np.array([math.cos(az), 0.0, -math.sin(az)])
    cam_up = np.cross(back, right)
    if up == "z":  # y-up to z-up: x stays, y becomes z, z becomes -y (the front is -y)
        to_z = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
        back, right, cam_up = to_z @ back, to_z @ right, to_z @ cam_up
    return back, right, cam_up


def threads() -> int:
    """Threads to trace with: the CPUs this process may use, at most ``MAX_THREADS``."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_THREADS))


@dataclass
class _View:
    """One camera's rays and lights, and the image its bands are written into."""

    eye: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    xs: np.ndarray
    """Supersampled pixel centres across, on the image plane one unit in front of the eye."""
    ys: np.ndarray
    key: np.ndarray
    fill: np.ndarray
    out: np.ndarray


class MeshRenderer:
    """One mesh made ready to trace (normalised, BVH built, colours resolved), rendered from
    as many camera positions as wanted."""

    def __init__(self, mesh: Any, up: Up = "y"):
        """Raises:
        ToolError: the mesh has no faces, or embreex is missing (``MissingExtra``)."""
        import numpy as np

        try:
            from embreex import rtcore_scene
            from embreex.mesh_construction import TriangleMesh
        except ImportError:
            require("embreex", "mesh")  # raises MissingExtra naming the extra
            raise
        if hasattr(mesh, "geometry") and hasattr(mesh, "to_mesh"):  # a trimesh.Scene
            mesh = mesh.to_mesh()
        faces = np.asarray(mesh.faces, dtype=np.int64)
        if not len(faces):
            raise ToolError("the mesh has no faces, so there is nothing to render")
        verts = np.asarray(mesh.vertices, dtype=np.float64)
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        centre = (lo + hi) / 2
        scale = 1.0 / max(float((hi - lo).max()), 1e-12)
        unit = ((verts - centre) * scale).astype(np.float32)
        self.up: Up = up
        self.faces = len(faces)
        self.outline = _outline(unit)
        self._distances: dict[float, float] = {}
        tri = unit[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)
        self.normals = normals.astype(np.float32)
        self.face_colours, self.vertex_colours = _colours(mesh)
        self.corners = faces.astype(np.int32)
        self.scene = rtcore_scene.EmbreeScene()
        TriangleMesh(scene=self.scene, vertices=unit, indices=self.corners)
        # the first query commits the scene (builds the BVH): do it here, once, not in a race
        # between the threads of the first view
        self.scene.run(np.zeros((1, 3), np.float32), np.ones((1, 3), np.float32))

    def render(self, azimuth: float, elevation: float, size: int) -> Image.Image:
        """A ``size`` x ``size`` view from ``azimuth`` degrees around the up axis and
        ``elevation`` degrees above the horizon, framed so that one framing holds at every
        azimuth (``distance``). Bands of rows are traced on parallel threads (Embree and
        numpy release the GIL)."""
        import numpy as np
        from PIL import Image

        ss = SUPERSAMPLE
        n = size * ss
        back, right, cam_up = _camera_basis(azimuth, elevation, self.up)
        half = math.radians(FOV_DEGREES) / 2
        t = math.tan(half)
        distance = max(self.distance(elevation), _fit(self.outline, [(back, right, cam_up)], t))
        view = _View(
            eye=(back * distance).astype(np.float32),
            forward=(-back).astype(np.float32),
            right=right.astype(np.float32),
            up=cam_up.astype(np.float32),
            xs=((np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1) * t,
            ys=(1 - (np.arange(n, dtype=np.float32) + 0.5) / n * 2) * t,
            # a key light from the camera's upper left, a fill from its lower right
            key=_unit(-0.55 * right + 0.65 * cam_up + 0.55 * back).astype(np.float32),
            fill=_unit(0.7 * right - 0.15 * cam_up + 0.5 * back).astype(np.float32),
            out=np.empty((size, size, 3), dtype=np.uint8),
        )
        workers = threads()
        rows = max(ss, min(CHUNK_RAYS // n, -(-n // workers)) // ss * ss)
        tops = range(0, n, rows)
        if workers == 1 or len(tops) == 1:
            for top in tops:
                self._band(view, top, rows)
        else:
            with ThreadPoolExecutor(min(workers, len(tops))) as pool:
                list(pool.map(lambda top: self._band(view, top, rows), tops))
        return Image.fromarray(view.out, "RGB")

    def distance(self, elevation: float) -> float:
        """How far from the centre the camera stands at ``elevation`` so the object fits the
        image at every azimuth of a turn: one framing for all views and frames, no zooming."""
        import numpy as np

        if elevation not in self._distances:
            t = math.tan(math.radians(FOV_DEGREES) / 2)
            turn = np.arange(0.0, 360.0, FRAMING_STEP)
            bases = [_camera_basis(float(az), elevation, self.up) for az in turn]
            self._distances[elevation] = _fit(self.outline, bases, t)
        return self._distances[elevation]

    def _band(self, view: _View, top: int, rows: int) -> None:
        """Trace the supersampled rows ``top..top+rows`` of ``view`` and write them, averaged
        down, into its output image."""
        import numpy as np

        ss = SUPERSAMPLE
        ys = view.ys[top : top + rows]
        dirs = (
            view.forward[None, None, :]
            + view.xs[None, :, None] * view.right[None, None, :]
            + ys[:, None, None] * view.up[None, None, :]
        ).reshape(-1, 3)
        origins = np.broadcast_to(view.eye, dirs.shape).copy()
        colour = np.empty_like(dirs)
        colour[:] = np.array(BACKGROUND, dtype=np.float32) / 255
        self._shade(origins, dirs, colour, view.key, view.fill)
        size = len(view.xs) // ss
        block = colour.reshape(len(ys) // ss, ss, size, ss, 3)
        total = block[:, 0, :, 0] + block[:, 0, :, 1] + block[:, 1, :, 0] + block[:, 1, :, 1]
        r0 = top // ss
        view.out[r0 : r0 + len(total)] = np.clip(total * (255 / 4) + 0.5, 0, 255)

    def _shade(
        self,
        origins: np.ndarray,
        dirs: np.ndarray,
        colour: np.ndarray,
        key: np.ndarray,
        fill: np.ndarray,
    ) -> None:
        """Trace ``dirs`` from ``origins`` and write the lit surface colour of every hit into
        ``colour`` (misses keep the background)."""
        import numpy as np

        if self.vertex_colours is not None:
            res = self.scene.run(origins, dirs, output=1)
            prim = res["primID"]
        else:
            res, prim = None, self.scene.run(origins, dirs)
        hit = np.flatnonzero(prim >= 0)
        if not len(hit):
            return
        tri = prim[hit]
        normal = self.normals[tri]
        facing = np.einsum("ij,ij->i", normal, dirs[hit]) > 0  # turn back faces to the eye
        normal[facing] *= -1
        light = (
            AMBIENT + KEY * np.clip(normal @ key, 0, None) + FILL * np.clip(normal @ fill, 0, None)
        )
        if res is not None and self.vertex_colours is not None:
            u, v = res["u"][hit, None], res["v"][hit, None]
            corners = self.vertex_colours[self.corners[tri]]  # (hits, 3 corners, rgb)
            base = (1 - u - v) * corners[:, 0] + u * corners[:, 1] + v * corners[:, 2]
        else:
            base = self.face_colours[tri]
        colour[hit] = np.minimum(base * light[:, None], 1.0)


def _outline(points: np.ndarray) -> np.ndarray:
    """The points that can touch the image's edge from any side: the convex hull's corners
    (all points for a flat mesh, where there is no 3D hull)."""
    import numpy as np

    try:
        from scipy.spatial import ConvexHull, QhullError

        try:
            return np.asarray(points[ConvexHull(points).vertices], dtype=np.float64)
        except (QhullError, ValueError):
            pass
    except ImportError:
        pass
    return np.asarray(points, dtype=np.float64)


def _fit(points: np.ndarray, bases: Sequence[tuple[np.ndarray, ...]], t: float) -> float:
    """The least distance from the centre at which every camera of ``bases`` (back, right,
    up) sees all of ``points`` inside its view (half-width ``t`` at unit depth) with
    ``MARGIN`` to spare: for a point, depth ``d - p.back`` must reach ``MARGIN * |p.right|
    / t`` (and likewise up)."""
    import numpy as np

    backs, rights, ups = (np.array([b[i] for b in bases]) for i in range(3))
    need = 0.0
    for lo in range(0, len(points), 20_000):  # bounded memory for a big hull
        p = points[lo : lo + 20_000]
        side = np.maximum(np.abs(p @ rights.T), np.abs(p @ ups.T))
        need = max(need, float((MARGIN * side / t + p @ backs.T).max()))
    # never inside the object, even for a degenerate outline
    return max(need, 1.2 * float(np.linalg.norm(points, axis=1).max()), 1e-3)


def _unit(v: np.ndarray) -> np.ndarray:
    import numpy as np

    return v / np.linalg.norm(v)


def _colours(mesh: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """(per-face colours, per-vertex colours or None), floats 0..1: a texture is sampled at
    the vertices; a mesh without colours gets the default material on every face."""
    import numpy as np

    kind = colour_kind(mesh)
    visual = mesh.visual
    vc: np.ndarray | None = None
    if kind == "texture":
        vc = _texture_colours(visual)
    elif kind == "vertex":
        vc = np.asarray(visual.vertex_colors, dtype=np.float32)
    if vc is not None and vc.ndim == 1 and len(vc) >= 3:  # one colour for the whole mesh
        return np.broadcast_to(vc[:3] / 255, (len(mesh.faces), 3)), None
    if vc is not None and vc.ndim == 2 and len(vc) == len(mesh.vertices):
        return np.broadcast_to(np.zeros(3, np.float32), (len(mesh.faces), 3)), vc[:, :3] / 255
    if kind == "face":
        fc = np.asarray(visual.face_colors, dtype=np.float32)[:, :3] / 255
        if len(fc) == len(mesh.faces):
            return fc, None
    default = np.array(MATERIAL, dtype=np.float32) / 255
    return np.broadcast_to(default, (len(mesh.faces), 3)), None


def _texture_colours(visual: Any) -> np.ndarray | None:
    """A texture sampled at the vertices (0..255), or the material's one colour where there is
    no image or no UVs; None when the material says nothing usable."""
    import numpy as np

    # trimesh raises anything on an odd material (no image, no UVs, an unusual image mode)
    try:
        return np.asarray(visual.to_color().vertex_colors, dtype=np.float32)
    except Exception:
        pass
    try:
        return np.asarray(visual.material.main_color, dtype=np.float32)
    except Exception:
        return None


def azimuths(views: int, start: float = 30.0) -> list[float]:
    """``views`` turntable angles in degrees, evenly spaced from ``start``."""
    return [round((start + 360.0 * i / views) % 360, 4) for i in range(views)]


def render_views(
    mesh: Any,
    views: int,
    size: int,
    *,
    elevation: float = ELEVATION,
    up: Up = "y",
    start: float = 30.0,
    on_view: Callable[[int, int], None] | None = None,
    renderer: MeshRenderer | None = None,
) -> list[Image.Image]:
    """``views`` square images of ``size`` px, turntable azimuths evenly spaced from
    ``start``. ``on_view(done, total)`` runs after each (to report progress, or to raise on
    cancellation); ``renderer`` reuses a mesh already made ready."""
    if views < 1:
        raise ToolError(f"views must be at least 1, got {views}")
    r = renderer or MeshRenderer(mesh, up)
    images = []
    for i, az in enumerate(azimuths(views, start)):
        images.append(r.render(az, elevation, size))
        if on_view is not None:
            on_view(i + 1, views)
    return images
