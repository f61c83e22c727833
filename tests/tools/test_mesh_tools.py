"""describe_mesh, convert_mesh and simplify_mesh called as the executor calls them, on meshes
trimesh writes from its primitives, in a real artifact store: the facts and the text, every
write format, decimation, the colour and format notes, the view captioned by a tiny
random-weight LLaVA loaded through ``from_pretrained`` (and the note when there is no model),
and every bad input refused with nothing left in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.tiny_vlm import IMAGE_SIZE, ScriptedGenerate
from tools import ArtifactStore, ModelManager, ToolContext, ToolError
from tools.artifact import Modality
from tools.mesh_io import colour_kind, load_mesh
from tools.mesh_tools import (
    VIEW_SIZE,
    convert_mesh,
    describe_mesh,
    number,
    simplify_mesh,
    size_words,
)
from tools.settings import ImageSettings, MeshSettings, ToolSettings

trimesh = pytest.importorskip("trimesh")


class Ctx:
    """A tool context on a real store, recording progress; the vision-language model is the
    one given, or a folder that does not exist (no model: describe_mesh notes it)."""

    def __init__(
        self, tmp_path: Path, vlm: Path | None = None, models: Any = None, **mesh: Any
    ) -> None:
        self.events: list[tuple[float, str]] = []
        self.ctx = ToolContext(
            store=ArtifactStore(tmp_path / "store"),
            workspace=tmp_path,
            settings=ToolSettings(
                image=ImageSettings(vision_language=str(vlm or tmp_path / "no-such-vlm")),
                mesh=MeshSettings(**mesh),
            ),
            models=models,
            progress_fn=lambda f, m, p: self.events.append((f, m)),
            step_id="s1",
        )
        self.folder = tmp_path

    def attach(self, path: Path) -> str:
        ref = f"a{len(self.ctx.refs) + 1}"
        self.ctx.refs[ref] = [self.ctx.store.add_file(path)]
        return "$" + ref

    def attach_mesh(self, mesh: Any, name: str) -> str:
        out = mesh.export(file_type=name.rsplit(".", 1)[1])
        path = self.folder / name
        path.write_bytes(out.encode() if isinstance(out, str) else out)
        return self.attach(path)

    def files(self) -> set[Path]:
        return {p for p in self.ctx.store.root.rglob("*") if p.is_file()}


def coloured(mesh: Any) -> Any:
    """``mesh`` with vertex colours: red above y = 0, blue below."""
    up = mesh.vertices[:, 1:2] > 0
    mesh.visual.vertex_colors = np.where(up, [[255, 0, 0, 255]], [[0, 0, 255, 255]]).astype(
        np.uint8
    )
    return mesh


# --- describe_mesh ---------------------------------------------------------------------------


def test_size_in_words() -> None:
    assert size_words([0.6, 1.8, 0.9]) == "about 1.8 x 0.9 x 0.6 units"
    assert size_words([1234.0, 0.0123, 50.0]) == "about 1200 x 50 x 0.012 units"
    assert number(1.0) == "1" and number(0.97) == "0.97"


def test_describe_a_box_without_a_vision_model(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach_mesh(trimesh.creation.box(extents=[0.6, 1.8, 0.9]), "Chair Seat.glb")
    mesh_art = c.ctx.refs["a1"][0]
    result = describe_mesh(c.ctx, mesh=ref)
    [text_art] = result.artifacts
    assert text_art.modality is Modality.TEXT and text_art.name == "chair-seat-description.md"
    assert text_art.metadata["source"] == mesh_art.id
    assert text_art.metadata["source_step"] == "s1"
    text = text_art.read_text()
    assert text.startswith("# Chair Seat.glb\n")
    assert "8 vertices, 12 faces" in text
    assert "about 1.8 x 0.9 x 0.6 units (x 0.6, y 1.8, z 0.9)" in text
    assert "Watertight: yes (closed), volume 0.97 cubic units" in text
    assert "Separate pieces: 1" in text and "Looks like" not in text
    data = result.data
    assert data["format"] == "glb" and data["vertices"] == 8 and data["faces"] == 12
    assert data["extents"] == pytest.approx([0.6, 1.8, 0.9])
    assert data["bounds"] == [[-0.3, -0.9, -0.45], [0.3, 0.9, 0.45]]
    assert data["centre"] == [0.0, 0.0, 0.0]
    assert data["watertight"] is True and data["volume"] == pytest.approx(0.972)
    assert data["components"] == 1 and data["parts"] == 1 and data["colours"] == "none"
    assert data["area"] == pytest.approx(2 * (0.6 * 1.8 + 0.6 * 0.9 + 1.8 * 0.9))
    assert data["caption"] is None and data["vision_model"] is None
    [note] = data["notes"]
    assert note.startswith("what it looks like is not described: no vision-language model")
    assert "no-such-vlm" in note and "Notes: what it looks like is not described" in text
    assert result.summary == (
        "described Chair Seat.glb: 12 faces, about 1.8 x 0.9 x 0.6 units, watertight, 1 piece(s)"
    )
    assert c.events[0][0] == 0.0 and c.events[-1] == (1.0, "done")


def test_describe_an_open_two_part_coloured_scene(tmp_path: Path) -> None:
    open_box = trimesh.creation.box()
    open_box.update_faces(np.arange(2, 12))  # one side of the box gone
    scene = trimesh.Scene()
    scene.add_geometry(open_box, node_name="box")
    ball = coloured(trimesh.creation.icosphere(subdivisions=1))
    scene.add_geometry(
        ball, node_name="ball", transform=trimesh.transformations.translation_matrix([3, 0, 0])
    )
    c = Ctx(tmp_path)
    result = describe_mesh(c.ctx, mesh=c.attach_mesh(scene, "pair.glb"))
    data, text = result.data, result.artifacts[0].read_text()
    assert data["parts"] == 2 and data["components"] == 2 and data["faces"] == 10 + 80
    assert data["watertight"] is False and "volume" not in data
    assert "Watertight: no (it has holes or open edges, so no volume)" in text
    assert "Parts in the file: 2, merged into one mesh" in text and "Separate pieces: 2" in text
    assert data["notes"][0] == "its 2 parts were merged into one mesh"
    assert data["colours"] == "vertex" and "Colours: per-vertex colours" in text
    assert data["size"] == "about 4.5 x 2 x 2 units"  # the box from -0.5, the ball to 4


def test_describe_captions_a_rendered_view_with_the_vision_model(
    tmp_path: Path, tiny_llava: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("embreex")
    torch.set_num_threads(1)
    from tools.vision import load_vision_model

    models = ModelManager(model_cache, device="cpu", dtype="float32")
    c = Ctx(tmp_path, vlm=tiny_llava, models=models)
    vlm = load_vision_model(c.ctx, str(tiny_llava))  # the copy the tool gets from the manager
    script = ScriptedGenerate(vlm.tokenizer, ["A   red and blue ball.\n"])
    monkeypatch.setattr(vlm.model, "generate", script)

    ref = c.attach_mesh(coloured(trimesh.creation.icosphere(subdivisions=3)), "ball.ply")
    result = describe_mesh(c.ctx, mesh=ref)

    text_art, view = result.artifacts
    assert result.data["caption"] == "A red and blue ball."
    assert result.data["vision_model"] == str(tiny_llava)
    assert "- Looks like: A red and blue ball.\n" in text_art.read_text()
    assert text_art.metadata["vision_model"] == str(tiny_llava)
    assert result.data["notes"] == [
        f"'looks like' is the vision-language model {tiny_llava} on one rendered 3/4 view"
    ]
    # the view went to the model: one image, resized by the processor
    [call] = script.calls
    assert call["pixel_values"].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert "Describe this image in one sentence." in script.prompt(0)
    # and the view is a real render of the coloured ball, stored beside the text
    from PIL import Image

    assert view.modality is Modality.IMAGE and view.name == "ball-view.png"
    assert view.metadata["source"] == c.ctx.refs["a1"][0].id
    with Image.open(view.path) as img:
        assert img.size == (VIEW_SIZE, VIEW_SIZE)
        rgb = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
    reddish = (rgb[:, 0] > rgb[:, 2] + 60).sum()
    bluish = (rgb[:, 2] > rgb[:, 0] + 60).sum()
    assert reddish > 0.05 * len(rgb) and bluish > 0.05 * len(rgb)


def test_describe_with_the_random_weight_model_writes_a_caption(
    tmp_path: Path, tiny_llava: Path, model_cache: Path
) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("embreex")
    torch.set_num_threads(1)
    models = ModelManager(model_cache, device="cpu", dtype="float32")
    c = Ctx(tmp_path, vlm=tiny_llava, models=models)
    result = describe_mesh(c.ctx, mesh=c.attach_mesh(trimesh.creation.box(), "cube.stl"))
    caption = result.data["caption"]
    assert isinstance(caption, str) and caption.strip() and "\n" not in caption
    assert f"- Looks like: {caption}" in result.artifacts[0].read_text()
    assert [a.modality for a in result.artifacts] == [Modality.TEXT, Modality.IMAGE]
    assert any(m.startswith("looking at a view") for _, m in c.events)


# --- convert_mesh ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["glb", "obj", "stl", "ply"])
def test_convert_to_each_format(tmp_path: Path, fmt: str) -> None:
    c = Ctx(tmp_path)
    sphere = coloured(trimesh.creation.icosphere(subdivisions=2))
    ref = c.attach_mesh(sphere, "Ball.off")
    source = c.ctx.refs["a1"][0]
    result = convert_mesh(c.ctx, mesh=ref, format=fmt)
    [out] = result.artifacts
    assert out.name == f"ball.{fmt}" and out.modality is Modality.MESH
    assert out.metadata["source"] == source.id and out.metadata["format"] == fmt
    back = load_mesh(out, c.ctx.settings)
    assert back.format == fmt and len(back.mesh.faces) == 320 and back.mesh.is_watertight
    assert back.mesh.extents == pytest.approx(sphere.extents, abs=1e-5)
    assert result.data["from"] == "off" and result.data["to"] == fmt
    assert result.data["faces"] == 320 and result.data["bytes"] == out.metadata["size"]
    assert result.summary == f"converted Ball.off (OFF) to {fmt.upper()} (320 faces)"


def test_convert_notes_dropped_colours_and_the_same_format(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach_mesh(coloured(trimesh.creation.icosphere(subdivisions=1)), "ball.stl")
    [plain] = convert_mesh(c.ctx, mesh=ref, format="ply").artifacts  # STL had no colours
    assert plain.metadata["colours"] is None

    ref = c.attach_mesh(coloured(trimesh.creation.icosphere(subdivisions=1)), "paint.ply")
    to_stl = convert_mesh(c.ctx, mesh=ref, format="stl")
    assert to_stl.data["notes"] == ["STL holds no colours: the mesh's vertex colours are dropped"]
    assert to_stl.data["colours"] is None and to_stl.artifacts[0].metadata["colours"] is None

    again = convert_mesh(c.ctx, mesh=ref, format="ply")
    [note] = again.data["notes"]
    assert note.startswith("paint.ply already was PLY; it was written again, cleaned")
    out = again.artifacts[0]
    assert colour_kind(load_mesh(out, c.ctx.settings).mesh) == "vertex"
    assert out.metadata["notes"] == [note] and again.data["colours"] == "vertex"


def test_convert_notes_a_texture_or_face_colours_a_format_cannot_hold(tmp_path: Path) -> None:
    from PIL import Image

    c = Ctx(tmp_path)
    box = trimesh.creation.box()
    uv = np.random.default_rng(0).random((8, 2))
    box.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.new("RGB", (8, 8), "green"))
    ref = c.attach_mesh(box, "crate.glb")
    to_obj = convert_mesh(c.ctx, mesh=ref, format="obj")
    assert to_obj.data["notes"] == [
        "the texture image is not kept: a single OBJ file cannot hold it (convert to glb to "
        "keep it)"
    ]
    assert to_obj.data["colours"] is None and to_obj.artifacts[0].metadata["colours"] is None
    to_glb = convert_mesh(c.ctx, mesh=ref, format="glb")
    assert to_glb.data["colours"] == "texture" and "texture image" not in str(to_glb.data)
    back = load_mesh(to_glb.artifacts[0], c.ctx.settings).mesh
    assert back.visual.material.baseColorTexture.size == (8, 8)

    faced = trimesh.creation.box()
    faced.visual.face_colors = np.tile([0, 0, 255, 255], (12, 1)).astype(np.uint8)
    ref = c.attach_mesh(faced, "blue.ply")
    to_glb = convert_mesh(c.ctx, mesh=ref, format="glb")
    assert to_glb.data["notes"] == ["GLB has no per-face colours: they become per-vertex colours"]
    out = to_glb.artifacts[0]
    assert out.metadata["colours"] == "vertex" == colour_kind(load_mesh(out, c.ctx.settings).mesh)


# --- simplify_mesh ---------------------------------------------------------------------------


def test_simplify_an_icosphere_to_a_thousand_faces(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    sphere = coloured(trimesh.creation.icosphere(subdivisions=5))
    ref = c.attach_mesh(sphere, "planet.ply")
    result = simplify_mesh.run(simplify_mesh.parse({"mesh": ref, "faces": 1000}, c.ctx), c.ctx)
    [out] = result.artifacts
    after = result.data["faces"]
    assert 950 <= after <= 1000 and result.data["faces_before"] == 20480
    assert result.data["watertight"] is True and result.data["watertight_before"] is True
    assert result.data["format"] == "ply" and result.data["unchanged"] is False
    assert (
        out.name == f"planet-{after}-faces.ply" and out.metadata["source"] == c.ctx.refs["a1"][0].id
    )
    back = load_mesh(out, c.ctx.settings).mesh
    assert len(back.faces) == after and back.is_watertight
    assert back.extents == pytest.approx(sphere.extents, rel=0.05)
    assert colour_kind(back) == "vertex"
    assert result.summary == (f"simplified planet.ply: 20,480 -> {after:,} faces, still watertight")


def test_simplify_at_or_under_the_target_returns_the_input(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach_mesh(trimesh.creation.icosphere(subdivisions=2), "ball.glb")
    before = c.files()
    result = simplify_mesh(c.ctx, mesh=ref, faces=320)
    assert result.artifacts[0] is c.ctx.refs["a1"][0]
    assert c.files() == before
    assert result.data["unchanged"] is True and result.data["faces"] == 320
    assert result.data["notes"] == ["it has 320 faces, already at or under the target 320"]
    assert "already at or under 320: returned as is" in result.summary


def test_simplify_writes_glb_for_a_format_it_cannot_write(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach_mesh(trimesh.creation.icosphere(subdivisions=3), "rock.off")
    result = simplify_mesh(c.ctx, mesh=ref, faces=200)
    [out] = result.artifacts
    assert result.data["format"] == "glb" and out.name.endswith("-faces.glb")
    assert result.data["notes"] == ["OFF is not written here, so the result is GLB"]
    assert load_mesh(out, c.ctx.settings).format == "glb"


def test_simplify_keeps_face_colours(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    sphere = trimesh.creation.icosphere(subdivisions=3)
    top = sphere.triangles_center[:, 1] > 0
    sphere.visual.face_colors = np.where(top[:, None], [255, 0, 0, 255], [0, 0, 255, 255])
    result = simplify_mesh(c.ctx, mesh=c.attach_mesh(sphere, "halves.ply"), faces=200)
    assert result.data["colours"] is not None
    out = load_mesh(result.artifacts[0], c.ctx.settings).mesh
    colours = out.visual.vertex_colors[:, :3].astype(int)
    upper = out.vertices[:, 1] > 0.3
    assert (colours[upper, 0] > colours[upper, 2]).all()  # red on top
    assert (colours[out.vertices[:, 1] < -0.3, 2] > 200).all()  # blue below


# --- bad input -------------------------------------------------------------------------------


def bad_file(folder: Path, case: str) -> tuple[Path, str]:
    """A bad mesh file, and what the error about it must say."""
    glb = trimesh.creation.box().export(file_type="glb")
    files: dict[str, tuple[str, bytes, str]] = {
        "empty": ("empty.glb", b"", "is empty"),
        "corrupt": ("cut.glb", glb[: len(glb) // 2], "not a readable GLB file"),
        # a model/* file (COLLADA) is a mesh attachment, but not a format anymodal reads
        "unknown": ("house.dae", b'<?xml version="1.0"?><COLLADA/>', "not a mesh format anymodal"),
        # an FBX is a mesh attachment too, named as a format anymodal does not read
        "fbx": ("chair.fbx", b"Kaydara FBX Binary  \x00", r"chair\.fbx is not a mesh format"),
        "degenerate": ("line.obj", b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "only degenerate"),
        "too many": (
            "ball.obj",
            trimesh.creation.icosphere(subdivisions=2).export(file_type="obj").encode(),
            "320 faces, over the limit of 100",
        ),
    }
    name, data, message = files[case]
    (folder / name).write_bytes(data)
    return folder / name, message


TOOL_ARGS = {
    "describe_mesh": (describe_mesh, {}),
    "convert_mesh": (convert_mesh, {"format": "stl"}),
    "simplify_mesh": (simplify_mesh, {"faces": 100}),
}


@pytest.mark.parametrize("tool", TOOL_ARGS)
@pytest.mark.parametrize("case", ["empty", "corrupt", "unknown", "fbx", "degenerate", "too many"])
def test_bad_meshes_fail_clearly_and_leave_nothing(tmp_path: Path, tool: str, case: str) -> None:
    c = Ctx(tmp_path, max_faces=100)
    path, message = bad_file(tmp_path, case)
    ref = c.attach(path)
    before = c.files()
    fn, args = TOOL_ARGS[tool]
    with pytest.raises(ToolError, match=message):
        fn(c.ctx, mesh=ref, **args)
    assert c.files() == before


def test_a_mesh_slot_refuses_an_image(tmp_path: Path, images: tuple[Path, Path]) -> None:
    c = Ctx(tmp_path)
    ref = c.attach(images[0])
    before = c.files()
    for fn, args in TOOL_ARGS.values():
        with pytest.raises(ToolError, match=rf"{fn.name}: mesh: a\.png is image; this needs mesh"):
            fn(c.ctx, mesh=ref, **args)
    assert c.files() == before


def test_arguments_out_of_range_are_refused(tmp_path: Path) -> None:
    c = Ctx(tmp_path)
    ref = c.attach_mesh(trimesh.creation.box(), "box.glb")
    with pytest.raises(ToolError, match="simplify_mesh: faces: Input should be greater than"):
        simplify_mesh(c.ctx, mesh=ref, faces=10)
    with pytest.raises(ToolError, match="convert_mesh: format: Input should be 'glb'"):
        convert_mesh(c.ctx, mesh=ref, format="fbx")
    with pytest.raises(ToolError, match=r"\$a2 names no attachment"):
        describe_mesh(c.ctx, mesh="$a2")


def test_the_tools_declare_what_the_planner_needs() -> None:
    assert describe_mesh.outputs == (Modality.TEXT,)
    assert convert_mesh.outputs == simplify_mesh.outputs == (Modality.MESH,)
    for tool in (describe_mesh, convert_mesh, simplify_mesh):
        assert tool.input_modalities == (Modality.MESH,)
    schema = convert_mesh.input_schema()["properties"]["format"]
    assert schema["enum"] == ["glb", "obj", "stl", "ply"]
    assert schema["description"] == "the file format to write"
    faces = simplify_mesh.input_schema()["properties"]["faces"]
    assert faces["minimum"] == 100 and faces["maximum"] == 10_000_000
