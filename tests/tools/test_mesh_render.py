"""The headless mesh renderer (tools/mesh_raster.py) and render_mesh (tools/mesh_render.py) on
trimesh primitives: every view shows the whole object, centred, the views differ, colours come
through, the grid and the turntable GIF have the asked sizes and frames, preview metadata keeps
the store's byte size, and bad input gets a ToolError."""

from __future__ import annotations

import io
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tools import ArtifactStore, ToolContext, ToolSettings, mesh_raster, mesh_render
from tools.base import Cancelled
from tools.errors import MissingExtra, ToolError
from tools.image_io import open_image
from tools.mesh_raster import BACKGROUND, azimuths, render_views
from tools.mesh_render import grid, grid_size, render_mesh, store_preview
from tools.settings import MeshSettings

trimesh = pytest.importorskip("trimesh")
pytest.importorskip("embreex")


def coloured_cone() -> Any:
    """A cone (axis z) coloured by quarter around its axis (red on +x, blue on +y, green
    toward the tip), so a turn of it changes the picture even though its shape is round."""
    cone = trimesh.creation.cone(radius=0.5, height=1.5, sections=32)
    v = cone.vertices
    red, blue = (v[:, 0] > 0.05) * 220, (v[:, 1] > 0.05) * 220
    green = 40 + np.clip(v[:, 2] / 1.5, 0, 1) * 180
    colours = np.c_[red, green, blue, np.full(len(v), 255)].astype(np.uint8)
    cone.visual.vertex_colors = colours
    return cone


def solid(mesh: Any, rgb: tuple[int, int, int]) -> Any:
    mesh.visual.vertex_colors = np.array([*rgb, 255], dtype=np.uint8)
    return mesh


def material(mesh: Any, rgb: tuple[int, int, int]) -> Any:
    """``mesh`` with a glTF material of one colour and no texture, as many GLBs have."""
    pbr = trimesh.visual.material.PBRMaterial(baseColorFactor=[*rgb, 255])
    mesh.visual = trimesh.visual.TextureVisuals(material=pbr)
    return mesh


def scene_glb(path: Path) -> Path:
    """A scene of three parts (a long box, a sphere off to one side, a cone) as a GLB."""
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.box(extents=(1.2, 0.4, 0.6)), node_name="box")
    ball = solid(trimesh.creation.icosphere(subdivisions=2, radius=0.3), (200, 40, 40))
    scene.add_geometry(
        ball,
        node_name="ball",
        transform=trimesh.transformations.translation_matrix((0.7, 0.4, 0.1)),
    )
    scene.add_geometry(
        coloured_cone(),
        node_name="cone",
        transform=trimesh.transformations.translation_matrix((-0.4, 0.3, 0.0)),
    )
    path.write_bytes(scene.export(file_type="glb"))
    return path


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def object_mask(img: Image.Image) -> np.ndarray:
    """Pixels that are not the background."""
    return np.abs(pixels(img) - np.array(BACKGROUND)).max(axis=2) > 3


def assert_shows_object(img: Image.Image) -> None:
    """A good part of the view is the object, none of it touches the border (not clipped),
    and its middle is near the image's middle."""
    mask = object_mask(img)
    assert mask.mean() > 0.08, f"only {mask.mean():.1%} of the view is the object"
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert not border.any(), "the object is clipped at the image border"
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    middle = ((xs.min() + xs.max()) / 2 / w, (ys.min() + ys.max()) / 2 / h)
    assert abs(middle[0] - 0.5) < 0.18 and abs(middle[1] - 0.5) < 0.18, middle


def assert_differ(images: list[Image.Image], threshold: float = 2.0) -> None:
    for (i, a), (j, b) in combinations(enumerate(images), 2):
        diff = float(np.abs(pixels(a) - pixels(b)).mean())
        assert diff > threshold, f"views {i} and {j} differ by only {diff:.2f}"


def tiles(sheet: Image.Image, views: int, size: int) -> list[Image.Image]:
    """The views back out of a ``grid`` sheet."""
    cols = int(np.ceil(np.sqrt(views)))
    gap = (sheet.width - cols * size) // max(1, cols - 1)
    out = []
    for i in range(views):
        r, c = divmod(i, cols)
        x, y = c * (size + gap), r * (size + gap)
        out.append(sheet.crop((x, y, x + size, y + size)))
    return out


class Ctx:
    """A ToolContext over a store in ``tmp_path`` that records progress."""

    def __init__(self, tmp_path: Path, **mesh: Any):
        self.events: list[tuple[float, str]] = []
        self.ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path,
            settings=ToolSettings(mesh=MeshSettings(**mesh)),
            progress_fn=lambda f, m, p: self.events.append((f, m)),
            step_id="s1",
        )

    def attach(self, path: Path) -> str:
        ref = f"a{len(self.ctx.refs) + 1}"
        self.ctx.refs[ref] = [self.ctx.store.add_file(path)]
        return "$" + ref

    def files(self) -> set[Path]:
        return {p for p in self.ctx.store.root.rglob("*") if p.is_file()}


# --- the renderer ------------------------------------------------------------------------------


def test_every_view_shows_the_object_and_the_views_differ() -> None:
    views = render_views(coloured_cone(), 4, 96, up="z")
    assert [v.size for v in views] == [(96, 96)] * 4
    for v in views:
        assert_shows_object(v)
    assert_differ(views)


def test_a_plain_box_is_shaded_in_the_default_material_with_its_faces_told_apart() -> None:
    (view,) = render_views(trimesh.creation.box(extents=(1.0, 0.5, 0.7)), 1, 128)
    assert_shows_object(view)
    shades = {tuple(c) for c in pixels(view)[object_mask(view)].tolist()}
    assert len(shades) >= 3  # three visible faces lit differently (plus antialiased edges)


@pytest.mark.parametrize(
    ("mesh", "channel"),
    [
        (solid(trimesh.creation.icosphere(subdivisions=2), (220, 30, 30)), 0),
        (trimesh.creation.box(face_colors=(30, 200, 30, 255)), 1),
        (material(trimesh.creation.box(), (30, 30, 210)), 2),
    ],
    ids=["vertex-red", "face-green", "material-blue"],
)
def test_vertex_face_and_material_colours_come_through(mesh: Any, channel: int) -> None:
    (view,) = render_views(mesh, 1, 96)
    colours = pixels(view)[object_mask(view)].mean(axis=0)
    others = [colours[c] for c in range(3) if c != channel]
    assert colours[channel] > 2 * max(others), colours


def test_a_texture_is_sampled_into_colours() -> None:
    box = trimesh.creation.box()
    texture = Image.new("RGB", (8, 8), (40, 60, 210))
    uv = np.random.default_rng(0).random((len(box.vertices), 2))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
    (view,) = render_views(box, 1, 64)
    r, g, b = pixels(view)[object_mask(view)].mean(axis=0)
    assert b > 2 * max(r, g)


def test_the_up_axis_turns_the_model() -> None:
    cone = coloured_cone()  # its axis is z
    (standing,) = render_views(cone, 1, 96, up="z", elevation=0)
    (lying,) = render_views(cone, 1, 96, up="y", elevation=0)
    assert float(np.abs(pixels(standing) - pixels(lying)).mean()) > 5

    def extent(img: Image.Image) -> tuple[int, int]:
        ys, xs = np.nonzero(object_mask(img))
        return int(xs.max() - xs.min()), int(ys.max() - ys.min())

    w, h = extent(standing)
    assert h > 1.5 * w  # upright: taller than wide


def test_grid_lays_views_out_near_square() -> None:
    views = [Image.new("RGB", (64, 64), (i * 40, 0, 0)) for i in range(5)]
    sheet = grid(views)
    assert sheet.size == grid_size(5, 64) == (3 * 64 + 2 * 2, 2 * 64 + 2)
    assert [t.getpixel((10, 10)) for t in tiles(sheet, 5, 64)] == [(i * 40, 0, 0) for i in range(5)]
    assert grid(views[:1]).size == (64, 64)
    assert azimuths(4) == [30.0, 120.0, 210.0, 300.0]


def test_an_empty_mesh_or_missing_embreex_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ToolError, match="no faces"):
        render_views(trimesh.Trimesh(), 1, 64)
    monkeypatch.setitem(sys.modules, "embreex", None)
    with pytest.raises(MissingExtra, match=r"anymodal\[mesh\]"):
        render_views(trimesh.creation.box(), 1, 64)


def test_mesh_render_re_exports_the_renderer_its_importers_use() -> None:
    # tools/mesh_tools.py imports render_views from tools.mesh_render
    assert mesh_render.render_views is mesh_raster.render_views
    assert "render_views" in mesh_render.__all__


# --- render_mesh -------------------------------------------------------------------------------


def test_render_mesh_writes_a_grid_and_a_turntable_gif(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach(scene_glb(tmp_path / "scene.glb"))
    result = render_mesh(c.ctx, mesh=ref, views=4, size=96, frames=6)
    sheet_art, gif_art = result.artifacts
    source = c.ctx.refs["a1"][0]

    sheet = Image.open(sheet_art.path)
    assert sheet.format == "PNG" and sheet.size == grid_size(4, 96)
    views = tiles(sheet, 4, 96)
    for v in views:
        assert_shows_object(v)
    assert_differ(views)
    meta = sheet_art.metadata
    assert meta["source"] == source.id and meta["views"] == 4 and meta["preview"] == "mesh"
    assert meta["view_size"] == 96 and meta["size"] == Path(sheet_art.path).stat().st_size
    assert meta["azimuths"] == [30.0, 120.0, 210.0, 300.0] and meta["elevation"] == 20.0

    gif = Image.open(gif_art.path)
    assert gif.format == "GIF" and gif.size == (96, 96) and gif.n_frames == 6
    assert gif.info.get("loop") == 0 and 70 <= gif.info["duration"] <= 100
    frames = []
    for i in range(gif.n_frames):
        gif.seek(i)
        frames.append(gif.convert("RGB"))
    assert_differ(frames)
    assert gif_art.metadata["frames"] == 6 and gif_art.metadata["source"] == source.id
    assert gif_art.metadata["azimuths"] == [0.0, 60.0, 120.0, 180.0, 240.0, 300.0]

    assert result.data["faces"] == result.data["faces_rendered"] > 0
    assert any("3 parts" in n for n in result.data["notes"])
    assert f"{result.data['faces']:,} faces" in result.summary and "6-frame" in result.summary
    fractions = [f for f, _ in c.events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum("rendered view" in m for _, m in c.events) == 4
    assert sum("rendered frame" in m for _, m in c.events) == 6


def test_a_large_mesh_is_simplified_first_with_a_note(tmp_path: Path) -> None:
    c = Ctx(tmp_path, render_max_faces=200)
    sphere = tmp_path / "ball.ply"
    sphere.write_bytes(trimesh.creation.icosphere(subdivisions=3).export(file_type="ply"))
    result = render_mesh(c.ctx, mesh=c.attach(sphere), views=1, size=64, frames=4)
    assert result.data["faces"] == 1280 and result.data["faces_rendered"] <= 220
    assert any("simplified to" in n for n in result.data["notes"])
    assert_shows_object(Image.open(result.artifacts[0].path))


def test_store_preview_stores_a_decodable_grid(tmp_path: Path) -> None:
    c = Ctx(tmp_path, preview_views=2, preview_size=64, render_max_faces=100)
    mesh = trimesh.creation.icosphere(subdivisions=2)  # 320 faces, over the limit
    art = store_preview(c.ctx, mesh, "ball", prompt="a ball")
    img = Image.open(io.BytesIO(Path(art.path).read_bytes()))
    assert img.format == "PNG" and img.size == grid_size(2, 64) == (130, 64)
    for view in tiles(img, 2, 64):
        assert_shows_object(view)
    meta = art.metadata
    assert art.name == "ball-preview.png" and meta["preview"] == "mesh"
    assert meta["views"] == 2 and meta["view_size"] == 64 and meta["azimuths"] == [30.0, 210.0]
    # the store's own size (the file's bytes) survives, so open_image reads the preview back
    assert meta["size"] == Path(art.path).stat().st_size > 0
    assert open_image(art, c.ctx.settings).size == (130, 64)
    assert meta["source_step"] == "s1" and meta["prompt"] == "a ball"
    assert meta["decimated_from"] == 320 and meta["faces_rendered"] <= 110


def test_a_corrupt_mesh_is_a_tool_error_and_stores_nothing(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    good = scene_glb(tmp_path / "scene.glb").read_bytes()
    bad = tmp_path / "broken.glb"
    bad.write_bytes(good[: len(good) // 3])
    ref = c.attach(bad)
    before = c.files()
    with pytest.raises(ToolError, match="broken.glb"):
        render_mesh(c.ctx, mesh=ref)
    assert c.files() == before


def test_cancelling_between_views_stores_nothing(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach(scene_glb(tmp_path / "scene.glb"))
    before = c.files()

    def progress(fraction: float, message: str, preview: Any) -> None:
        if "rendered frame 2" in message:
            c.ctx.cancel_event.set()

    c.ctx.progress_fn = progress
    with pytest.raises(Cancelled):
        render_mesh(c.ctx, mesh=ref, views=2, size=64, frames=8)
    assert c.files() == before


def test_a_grid_over_the_image_limit_is_refused_before_any_work(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach(scene_glb(tmp_path / "scene.glb"))
    c.ctx.settings.max_image_pixels = 1_000_000
    with pytest.raises(ToolError, match="fewer views or a smaller size"):
        render_mesh(c.ctx, mesh=ref, views=9, size=512)
    assert not c.events
