"""Preview render time of render_mesh (tools/mesh_render.py, rendering in tools/mesh_raster.py)
for meshes of about 1k, 100k and 1M faces.

The meshes are made at run time: UV spheres with bumps (radius modulated by sines, so rays
meet the surface at every angle and the BVH is not a trivially smooth ball) and vertex colours
(so the barycentric colour path runs, as for the coloured meshes generate_3d writes). For each,
the work render_mesh does after loading, measured separately and reported as the median of
``ROUNDS``: making the mesh ready (normals, colours, the framing hull and the Embree BVH), the
preview grid (4 views at 512 px, traced at 1024 px, laid out), and the turntable GIF (24 frames
at 320 px, palette-quantized and encoded); then the whole tool on the mesh stored as PLY
(loading included). Figures include the rays traced per second. Writes
benchmarks/results/mesh_render.json.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results_io import write_results

from tools import ArtifactStore, ToolContext
from tools import mesh_raster as rast
from tools import mesh_render as mr

TARGETS = {"1k": 16, "100k": 158, "1M": 500}
"""Faces wanted, and the UV sphere's rings and segments that give about that many."""
ROUNDS = 3
VIEWS, SIZE, FRAMES = 4, 512, 24


def bumpy_sphere(n: int) -> Any:
    """A UV sphere of about ``4 n^2`` faces with bumps, coloured by its normals."""
    import numpy as np
    import trimesh

    mesh = trimesh.creation.uv_sphere(radius=1.0, count=(n, n))
    v = mesh.vertices
    theta, phi = np.arctan2(v[:, 1], v[:, 0]), np.arccos(np.clip(v[:, 2], -1, 1))
    bumps = 1 + 0.08 * np.sin(7 * theta) * np.sin(5 * phi) + 0.03 * np.sin(23 * phi)
    mesh.vertices = v * bumps[:, None]
    colours = (mesh.vertex_normals * 0.5 + 0.5) * 255
    mesh.visual.vertex_colors = np.c_[colours, np.full(len(v), 255)].astype(np.uint8)
    return mesh


def median_of(fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(mesh: Any, folder: Path) -> dict[str, Any]:
    build_s, renderer = median_of(lambda: rast.MeshRenderer(mesh))
    grid_s, _ = median_of(lambda: mr.grid(rast.render_views(mesh, VIEWS, SIZE, renderer=renderer)))
    side = min(SIZE, mr.GIF_MAX_SIZE)

    def gif() -> int:
        frames = rast.render_views(mesh, FRAMES, side, start=0.0, renderer=renderer)
        return len(mr.encode_gif(frames, mr.GIF_FPS))

    gif_s, gif_bytes = median_of(gif)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"sphere-{len(mesh.faces)}.ply"
    path.write_bytes(mesh.export(file_type="ply"))
    ctx = ToolContext(store=ArtifactStore(folder / "store"), workspace=folder)
    art = ctx.store.add_file(path)
    tool_s, result = median_of(lambda: mr.render_mesh(ctx, mesh=art))
    ss = rast.SUPERSAMPLE**2
    grid_rays, gif_rays = VIEWS * SIZE**2 * ss, FRAMES * side**2 * ss
    return {
        "faces": int(len(mesh.faces)),
        "vertices": int(len(mesh.vertices)),
        "build_s (normals, colours, hull, BVH)": round(build_s, 3),
        f"grid_s ({VIEWS} views at {SIZE} px)": round(grid_s, 3),
        "grid_mrays_per_s": round(grid_rays / grid_s / 1e6, 2),
        f"gif_s ({FRAMES} frames at {side} px, encoded)": round(gif_s, 3),
        "gif_mrays_per_s": round(gif_rays / gif_s / 1e6, 2),
        "gif_bytes": gif_bytes,
        "preview_s (build + grid)": round(build_s + grid_s, 3),
        "render_mesh_tool_s (PLY load + build + grid + gif + store)": round(tool_s, 3),
        "ply_bytes": path.stat().st_size,
        "tool_outputs_bytes": [Path(a.path).stat().st_size for a in result.artifacts],
    }


def main() -> None:
    load_before = os.getloadavg()[0]
    figures: dict[str, Any] = {
        "load_average_before": round(load_before, 2),
        "threads": rast.threads(),
        "rounds": ROUNDS,
        "supersample": rast.SUPERSAMPLE,
        "mesh": "bumpy UV sphere with vertex colours",
    }
    with tempfile.TemporaryDirectory(prefix="anymodal-bench-") as tmp:
        for label, n in TARGETS.items():
            mesh = bumpy_sphere(n)
            figures[label] = measure(mesh, Path(tmp) / label)
            print(label, figures[label], flush=True)
    write_results("mesh_render", figures)


if __name__ == "__main__":
    main()
