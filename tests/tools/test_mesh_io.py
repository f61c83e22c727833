"""tools.mesh_io on real files written by trimesh from its primitives: every format it reads,
scenes of several parts, colours through a round trip, the facts of a known box, checked
writing, decimation, and every kind of bad input refused with a message that names the problem."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tools import ArtifactStore, Modality, ToolContext, ToolError
from tools.facts import probe
from tools.mesh_io import (
    READ_FORMATS,
    WRITE_FORMATS,
    colour_kind,
    decimate,
    export_mesh,
    load_mesh,
    mesh_facts,
    store_mesh,
)
from tools.settings import MeshSettings, ToolSettings

trimesh = pytest.importorskip("trimesh")

SETTINGS = ToolSettings()


def as_bytes(out: Any) -> bytes:
    return out.encode("utf-8") if isinstance(out, str) else bytes(out)


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(as_bytes(data))
    return path


def mesh_file(folder: Path, mesh: Any, fmt: str, stem: str = "m") -> Path:
    """``mesh`` written as ``fmt`` by trimesh ('stl_ascii' for ASCII STL, 'gltf' with its
    buffers embedded as data URIs so the one file is whole)."""
    if fmt == "gltf":
        return write(
            folder / f"{stem}.gltf", mesh.export(file_type="gltf", embed_buffers=True)["model.gltf"]
        )
    suffix = "stl" if fmt == "stl_ascii" else fmt
    return write(folder / f"{stem}-{fmt}.{suffix}", mesh.export(file_type=fmt))


def coloured_sphere() -> Any:
    """An icosphere whose vertices are red on top and blue below."""
    sphere = trimesh.creation.icosphere(subdivisions=2)
    colours = np.where(sphere.vertices[:, 1:2] > 0, [[255, 0, 0, 255]], [[0, 0, 255, 255]])
    sphere.visual.vertex_colors = colours.astype(np.uint8)
    return sphere


def tiny_nan_mesh() -> Any:
    """A tetrahedron with one vertex's x coordinate NaN."""
    tet = trimesh.Trimesh(
        [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]],
        [[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]],
        process=False,
    )
    tet.vertices[3] = [np.nan, 0.0, 1.0]
    return tet


def context(tmp_path: Path) -> ToolContext:
    return ToolContext(store=ArtifactStore(tmp_path / "store"), workspace=tmp_path, step_id="s1")


# --- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["glb", "gltf", "ply", "obj", "stl", "stl_ascii", "off"])
def test_every_read_format_loads_the_same_box(tmp_path: Path, fmt: str) -> None:
    box = trimesh.creation.box(extents=[2.0, 1.0, 0.5])
    path = mesh_file(tmp_path, box, fmt)
    if fmt == "stl_ascii":
        assert path.read_bytes().startswith(b"solid")
    if fmt == "stl":
        assert len(path.read_bytes()) == 84 + 50 * 12  # binary
    loaded = load_mesh(path, SETTINGS)
    assert loaded.format == ("stl" if fmt == "stl_ascii" else fmt)
    assert loaded.parts == 1 and loaded.notes == []
    assert len(loaded.mesh.faces) == 12 and len(loaded.mesh.vertices) == 8
    assert loaded.mesh.extents == pytest.approx([2.0, 1.0, 0.5])
    assert loaded.mesh.is_watertight


def test_read_formats_are_the_ones_tested() -> None:
    assert set(READ_FORMATS) == {"glb", "gltf", "ply", "obj", "stl", "off"}
    assert set(WRITE_FORMATS) == {"glb", "ply", "obj", "stl"}


def test_glb_is_known_by_its_content_whatever_its_name(tmp_path: Path) -> None:
    path = write(tmp_path / "download.bin", trimesh.creation.box().export(file_type="glb"))
    assert load_mesh(path, SETTINGS).format == "glb"


def test_a_scene_of_parts_merges_with_a_note_and_keeps_their_places(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    moved = trimesh.transformations.translation_matrix([5.0, 0.0, 0.0])
    scene.add_geometry(trimesh.creation.box(), node_name="box", transform=moved)
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=1), node_name="ball")
    loaded = load_mesh(write(tmp_path / "two.glb", scene.export(file_type="glb")), SETTINGS)
    assert loaded.parts == 2
    assert loaded.notes == ["its 2 parts were merged into one mesh"]
    assert len(loaded.mesh.faces) == 12 + 80
    assert loaded.mesh.bounds[1][0] == pytest.approx(5.5)  # the box sits where it was placed
    assert loaded.mesh.bounds[0][0] == pytest.approx(-1.0)
    assert mesh_facts(loaded.mesh)["components"] == 2


@pytest.mark.parametrize("fmt", ["glb", "ply"])
def test_vertex_colours_survive_a_round_trip(tmp_path: Path, fmt: str) -> None:
    sphere = coloured_sphere()
    loaded = load_mesh(mesh_file(tmp_path, sphere, fmt), SETTINGS)
    assert colour_kind(loaded.mesh) == "vertex"
    colours = loaded.mesh.visual.vertex_colors
    top = loaded.mesh.vertices[:, 1] > 0
    assert (colours[top, :3] == [255, 0, 0]).all() and (colours[~top, :3] == [0, 0, 255]).all()


def test_facts_of_a_unit_box() -> None:
    facts = mesh_facts(trimesh.creation.box())
    assert facts == {
        "vertices": 8,
        "faces": 12,
        "bounds": [[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]],
        "extents": [1.0, 1.0, 1.0],
        "watertight": True,
        "components": 1,
        "area": 6.0,
        "colours": None,
        "volume": 1.0,
    }


def test_an_open_mesh_has_no_volume() -> None:
    box = trimesh.creation.box()
    box.update_faces(np.arange(1, 12))  # one triangle gone: a hole
    facts = mesh_facts(box)
    assert facts["watertight"] is False and "volume" not in facts and facts["faces"] == 11


# --- writing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", WRITE_FORMATS)
def test_store_mesh_writes_each_format_that_reads_back(tmp_path: Path, fmt: str) -> None:
    ctx = context(tmp_path)
    sphere = coloured_sphere()
    art = store_mesh(ctx, sphere, "ball", fmt, source="abc")
    assert art.name == f"ball.{fmt}" and art.modality is Modality.MESH
    assert Path(art.path).suffix == f".{fmt}"
    meta = art.metadata
    assert meta["format"] == fmt and meta["source"] == "abc" and meta["source_step"] == "s1"
    assert meta["faces"] == 320 and meta["watertight"] is True
    assert meta["colours"] == (None if fmt == "stl" else "vertex")
    back = load_mesh(art, SETTINGS)
    assert back.format == fmt and len(back.mesh.faces) == 320
    assert back.mesh.extents == pytest.approx(sphere.extents, abs=1e-5)
    assert export_mesh(sphere, fmt) == art.read_bytes()


def test_export_refuses_a_format_it_cannot_write() -> None:
    with pytest.raises(ToolError, match="cannot write 'fbx'; use one of glb, ply, obj, stl"):
        export_mesh(trimesh.creation.box(), "fbx")


# --- decimation ------------------------------------------------------------------------------


def test_decimate_reaches_about_the_target_and_keeps_colours() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4)  # 5,120 faces
    top = sphere.vertices[:, 2] > 0
    sphere.visual.vertex_colors = np.where(
        top[:, None], [[255, 0, 0, 255]], [[0, 255, 0, 255]]
    ).astype(np.uint8)
    out = decimate(sphere, 500)
    assert 450 <= len(out.faces) <= 500
    assert out.is_watertight
    assert out.extents == pytest.approx(sphere.extents, rel=0.05)  # the shape is kept
    colours = out.visual.vertex_colors
    assert colour_kind(out) == "vertex"
    high, low = out.vertices[:, 2] > 0.2, out.vertices[:, 2] < -0.2
    assert (colours[high, :3] == [255, 0, 0]).all() and (colours[low, :3] == [0, 255, 0]).all()


def test_decimate_leaves_a_small_mesh_alone() -> None:
    box = trimesh.creation.box()
    assert decimate(box, 100) is box


# --- bad input -------------------------------------------------------------------------------


def bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Bad mesh files and a pattern the error about each must match."""
    glb = trimesh.creation.box().export(file_type="glb")
    cloud = trimesh.PointCloud(np.random.default_rng(0).random((50, 3)))
    return {
        "empty": (write(folder / "empty.glb", b""), r"empty\.glb is empty"),
        "whitespace": (write(folder / "blank.obj", " \n\t\n  "), r"blank\.obj is empty"),
        "truncated glb": (
            write(folder / "cut.glb", glb[: len(glb) // 2]),
            r"cut\.glb is not a readable GLB file .*check that the file is complete",
        ),
        "garbage glb": (
            write(folder / "junk.glb", b"glTF" + bytes(60)),
            r"junk\.glb is not a readable GLB file",
        ),
        "corrupt obj": (
            write(folder / "bad.obj", "v 1 2\nf 1 2 3 4 5\nhello\n"),
            r"bad\.obj is not a readable OBJ file",
        ),
        "unknown suffix": (
            write(folder / "chair.fbx", b"Kaydara FBX Binary  \x00\x1a\x00"),
            r"chair\.fbx is not a mesh format anymodal reads .*use one of glb, gltf, ply",
        ),
        "point cloud": (
            write(folder / "cloud.ply", cloud.export(file_type="ply")),
            r"cloud\.ply holds points only \(a point cloud\), no faces",
        ),
        "nan vertices": (
            write(folder / "nan.glb", tiny_nan_mesh().export(file_type="glb")),
            r"nan\.glb has 1 vertices with NaN or infinite coordinates",
        ),
        "only degenerate faces": (
            write(folder / "flat.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nv 3 0 0\nf 1 2 3\nf 2 3 4\n"),
            r"flat\.obj has only degenerate faces \(zero area",
        ),
    }


BAD = [
    "empty",
    "whitespace",
    "truncated glb",
    "garbage glb",
    "corrupt obj",
    "unknown suffix",
    "point cloud",
    "nan vertices",
    "only degenerate faces",
]


@pytest.mark.parametrize("case", BAD)
def test_bad_files_are_refused_with_a_clear_error(tmp_path: Path, case: str) -> None:
    path, message = bad_files(tmp_path)[case]
    with pytest.raises(ToolError, match=message):
        load_mesh(path, SETTINGS)


@pytest.mark.parametrize("fmt", ["ply", "obj", "stl", "off"])
def test_nan_vertices_in_other_formats_are_refused(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path / f"nan.{fmt}", tiny_nan_mesh().export(file_type=fmt))
    with pytest.raises(ToolError, match="NaN or infinite coordinates"):
        load_mesh(path, SETTINGS)


def test_some_degenerate_faces_are_dropped_with_a_note(tmp_path: Path) -> None:
    path = write(tmp_path / "sliver.obj", "v 0 0 0\nv 1 0 0\nv 2 0 0\nv 0 1 0\nf 1 2 3\nf 1 2 4\n")
    loaded = load_mesh(path, SETTINGS)
    assert len(loaded.mesh.faces) == 1 and len(loaded.mesh.vertices) == 3
    assert loaded.notes == ["1 degenerate (zero-area) faces were dropped"]


def test_a_missing_file_is_a_tool_error(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match=r"cannot read gone\.glb"):
        load_mesh(tmp_path / "gone.glb", SETTINGS)


SMALL = ToolSettings(mesh=MeshSettings(max_faces=100))


def test_a_binary_stl_header_over_the_face_limit_is_refused_before_parsing(
    tmp_path: Path,
) -> None:
    # 200 all-zero triangles: parsed, they would be degenerate; the header refuses them first
    data = bytes(80) + struct.pack("<I", 200) + bytes(50 * 200)
    path = write(tmp_path / "huge.stl", data)
    with pytest.raises(ToolError, match=r"huge\.stl has 200 faces, over the limit of 100 "):
        load_mesh(path, SMALL)
    with pytest.raises(ToolError, match="only degenerate faces"):
        load_mesh(path, SETTINGS)


def test_a_ply_header_over_the_face_limit_is_refused(tmp_path: Path) -> None:
    ply = mesh_file(tmp_path, trimesh.creation.icosphere(subdivisions=2), "ply")
    with pytest.raises(ToolError, match=r"has 320 faces, over the limit of 100 \(tools\.mesh"):
        load_mesh(ply, SMALL)


def test_a_mesh_over_the_face_limit_after_parsing_is_refused(tmp_path: Path) -> None:
    obj = mesh_file(tmp_path, trimesh.creation.icosphere(subdivisions=2), "obj")
    with pytest.raises(ToolError, match=r"has 320 faces, over the limit of 100 .*raise that"):
        load_mesh(obj, SMALL)
    assert len(load_mesh(obj, SETTINGS).mesh.faces) == 320


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path / "big.glb", bytes(2_100_000))  # not even a GLB: size comes first
    limited = ToolSettings(mesh=MeshSettings(max_file_bytes=1_000_000))
    with pytest.raises(ToolError, match=r"big\.glb is 2,100,000 bytes, over the limit of 1,000"):
        load_mesh(path, limited)


# --- ingest facts ----------------------------------------------------------------------------


def test_ingest_facts_of_a_mesh_attachment(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    box = mesh_file(tmp_path, trimesh.creation.box(), "glb", "box")
    art = store.add_file(box)
    assert art.modality is Modality.MESH
    facts = probe(art)
    assert facts["format"] == "glb" and facts["vertices"] == 8 and facts["faces"] == 12
    assert facts["watertight"] is True and "unreadable" not in facts
    bad = store.add_file(write(tmp_path / "broken.obj", "v 1 2\nf 1 2 3 4 5\n"))
    assert bad.modality is Modality.MESH
    broken = probe(bad)
    assert broken["format"] == "obj" and "not a readable OBJ file" in broken["unreadable"]
    assert "faces" not in broken
