"""generate_3d and image_to_3d on tiny random-weight Shap-E pipelines (tests/tiny_shap_e.py),
saved with save_pretrained and loaded back through the tools (the path real weights take), and
generate_3d's labelled fallback of simple shapes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.tiny_shap_e import build_tiny_shap_e, build_tiny_shap_e_img2img
from tests.tools.test_image_gen import Ctx
from tools import Cancelled, ModelManager, ToolError, ToolSettings
from tools.mesh_gen import generate_3d, image_to_3d
from tools.mesh_io import load_mesh
from tools.mesh_render import grid_size
from tools.mesh_scene import LABEL

pytest.importorskip("diffusers")
trimesh = pytest.importorskip("trimesh")
torch = pytest.importorskip("torch")

FAST = {"steps": 2, "resolution": 16}
"""Call arguments that keep a run well under a second."""
BOX = [{"kind": "box", "size": [1, 0.5, 1], "position": [0, 0.25, 0], "color": "red"}]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny text-to-3D and image-to-3D pipelines, built once."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny-shap-e")
    return {
        "text": build_tiny_shap_e(root / "text"),
        "image": build_tiny_shap_e_img2img(root / "image"),
    }


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    """One model manager for the session, so each tiny pipeline loads once."""
    return ModelManager(tmp_path_factory.mktemp("mm"), device="cpu", dtype="float32")


@pytest.fixture
def make(tmp_path: Path, tiny: dict[str, Path], models: ModelManager) -> Any:
    def build(models_: Any = models, llm: Any = None, **mesh: Any) -> Ctx:
        mesh.setdefault("generator", str(tiny["text"]))
        mesh.setdefault("image_generator", str(tiny["image"]))
        mesh.setdefault("preview_size", 64)
        return Ctx(tmp_path, ToolSettings(mesh=mesh), models_, llm=llm)

    return build


def loaded(art: Any) -> Any:
    """The stored mesh file, read back by trimesh itself (not through our loader)."""
    fmt = Path(art.path).suffix.lstrip(".")
    return trimesh.load(art.path, file_type=fmt, force="mesh", process=False)


def preview(art: Any) -> Image.Image:
    """The stored preview grid, decoded and checked to be the settings' 4 views of 64 px."""
    img = Image.open(art.path)
    assert img.format == "PNG"
    img.load()
    assert img.size == grid_size(4, 64)
    return img


# --- generate_3d ----------------------------------------------------------------------------


def test_writes_a_coloured_glb_and_a_preview(make):
    c = make()
    result = generate_3d(c.ctx, prompt="a red chair", seed=1, **FAST)
    art, grid = result.artifacts
    assert art.name == "a-red-chair-1.glb" and art.mime == "model/gltf-binary"
    mesh = loaded(art)
    assert len(mesh.faces) > 0 and mesh.visual.kind == "vertex"
    colours = np.asarray(mesh.visual.vertex_colors)[:, :3]
    assert colours.std() > 0  # the model's colour head, not one flat colour
    assert load_mesh(art, c.ctx.settings).mesh.faces.shape == mesh.faces.shape
    assert np.asarray(preview(grid)).std() > 5  # not a blank picture
    meta = art.metadata
    assert meta["prompt"] == "a red chair" and meta["seed"] == 1 and meta["steps"] == 2
    assert meta["resolution"] == 16 and meta["guidance"] == 15.0 and meta["preview"] == grid.id
    assert meta["pipeline"] == "ShapEPipeline" and meta["procedural"] is False
    assert meta["faces"] == len(mesh.faces) and meta["colours"] == "vertex"
    assert grid.metadata["prompt"] == "a red chair" and grid.metadata["preview"] == "mesh"
    assert result.data["procedural"] is False and result.data["faces"] == len(mesh.faces)
    assert "with " + str(c.ctx.settings.mesh.generator) in result.summary
    assert "2 steps, guidance 15, 16³ grid, seed 1" in result.summary


@pytest.mark.parametrize("fmt", ["ply", "obj", "stl"])
def test_writes_the_asked_format(make, fmt):
    c = make()
    glb = generate_3d(c.ctx, prompt="a vase", seed=3, **FAST).artifacts[0]
    art = generate_3d(c.ctx, prompt="a vase", seed=3, format=fmt, **FAST).artifacts[0]
    assert art.name == f"a-vase-3.{fmt}" and art.metadata["format"] == fmt
    back = load_mesh(art, c.ctx.settings).mesh
    assert len(back.faces) == len(loaded(glb).faces)  # the same mesh, another file
    assert art.metadata["colours"] == (None if fmt == "stl" else "vertex")
    if fmt != "stl":
        assert back.visual.kind == "vertex"


def test_same_seed_same_bytes_other_seed_differs(make):
    c = make()

    def mesh(seed: int) -> bytes:
        return generate_3d(c.ctx, prompt="a cup", seed=seed, **FAST).artifacts[0].read_bytes()

    assert mesh(5) == mesh(5)
    assert mesh(5) != mesh(6)


def test_reports_each_step_then_the_decoding(make):
    c = make()
    generate_3d(c.ctx, prompt="a lamp", seed=2, steps=4, resolution=16)
    steps = c.steps()
    # Heun makes 7 model calls of 4 steps: each step is reported once, when it is finished.
    assert [m for _, m, _ in steps] == [f"generate_3d: step {i}/4" for i in range(1, 5)]
    fractions = [f for f, _, _ in c.events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert steps[-1][0] < 0.9  # denoising leaves room for decoding and writing
    assert any("decoding the surface on a 16³ grid" in m for _, m, _ in c.events)


@pytest.mark.parametrize("when", [": step 1/", "decoding"])
def test_cancelling_stores_nothing_and_the_pipeline_still_works(make, when):
    c = make()
    before = c.files()

    def progress(fraction: float, message: str, preview: Any) -> None:
        c.events.append((fraction, message, preview))
        if when in message:
            c.ctx.cancel_event.set()

    c.ctx.progress_fn = progress
    with pytest.raises(Cancelled):
        generate_3d(c.ctx, prompt="a boat", seed=1, steps=3, resolution=24)
    assert c.files() == before
    c.ctx.cancel_event.clear()
    c.events.clear()
    c.ctx.progress_fn = lambda f, m, p: c.events.append((f, m, p))
    result = generate_3d(c.ctx, prompt="a boat", seed=1, **FAST)  # the wrapper is gone
    assert result.data["faces"] > 0 and len(c.steps()) == 2


def test_limits_refuse_naming_the_setting(make):
    c = make(max_steps=8, max_resolution=32)
    with pytest.raises(ToolError, match=r"steps 9 is over the limit of 8 \(tools.mesh.max_steps"):
        generate_3d(c.ctx, prompt="a fox", steps=9)
    with pytest.raises(ToolError, match=r"resolution 48 .*tools.mesh.max_resolution"):
        generate_3d(c.ctx, prompt="a fox", resolution=48)
    with pytest.raises(ToolError, match=r"resolution 40 .*tools.mesh.max_resolution"):
        image_to_3d(c.ctx, image=c.attach(_object_png(c.ctx.workspace)), resolution=40)


def test_an_empty_prompt_is_refused(make):
    with pytest.raises(ToolError, match="the prompt is empty"):
        generate_3d(make().ctx, prompt="   ")


def test_a_field_with_no_surface_is_a_clear_error(make, tiny):
    from tools.shap_e import GENERATOR, load_shap_e, run_shap_e

    c = make(models_=None)  # a copy of its own: its renderer is changed below
    pipe = load_shap_e(c.ctx, GENERATOR)
    with torch.no_grad():
        pipe.pipe.shap_e_renderer.mlp.mlp[-1].bias[0] = -50.0  # outside everywhere
    with pytest.raises(ToolError, match="found no surface for 'a ghost'; try another seed"):
        kw = {"seed": 1, "steps": 2, "guidance": 15.0, "resolution": 16}
        run_shap_e(c.ctx, pipe, "generate_3d", what="'a ghost'", prompt="a ghost", **kw)


# --- the fallback of simple shapes ----------------------------------------------------------


def test_a_folder_that_is_no_pipeline_is_an_error_not_a_fallback(make, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    c = make(generator=str(empty))
    with pytest.raises(ToolError, match="holds no model_index.json.*tools.mesh.generator"):
        generate_3d(c.ctx, prompt="a table", shapes=BOX)


@pytest.mark.parametrize("generator", ["shap-e", "no-such-org/no-shap-e", "missing-folder"])
def test_without_weights_shapes_stand_in_labelled(make, tmp_path, generator):
    if generator == "missing-folder":
        generator = str(tmp_path / "nowhere" / "shap-e")
    c = make(generator=generator)
    result = generate_3d(c.ctx, prompt="a table", shapes=BOX, seed=4, format="ply")
    art, grid = result.artifacts
    assert art.name == "a-table-shapes.ply" and len(loaded(art).faces) == 12  # one box
    for meta in (art.metadata, grid.metadata, result.data):
        assert meta["procedural"] is True and meta["label"] == LABEL and meta["model"] is None
        assert generator in meta["reason"]
    assert art.metadata["preview"] == grid.id and preview(grid).mode == "RGB"
    assert "NOT a generated 3D model" in result.summary and "1 simple shape" in result.summary
    assert "anymodal models pull shap-e" in result.summary or "hf download" in result.summary
    assert "seed, steps, guidance and resolution do not apply" in result.summary


def test_without_weights_the_language_model_writes_the_shapes(make):
    asked: list[Any] = []

    def llm(messages: list[dict[str, Any]], on_token: Any, /, **options: Any) -> str:
        asked.append(messages)
        return json.dumps(BOX + [BOX[0] | {"position": [0, 0.75, 0]}])

    c = make(generator="shap-e", llm=llm)
    result = generate_3d(c.ctx, prompt="two stacked crates")
    assert asked and "two stacked crates" in asked[0][-1]["content"]
    assert result.data["shapes"] == 2 and len(loaded(result.artifacts[0]).faces) == 24


def test_without_weights_or_a_language_model_says_what_to_do(make):
    with pytest.raises(ToolError, match="no text-to-3D model .*no language model"):
        generate_3d(make(generator="shap-e").ctx, prompt="a table")


def test_with_the_fallback_off_a_missing_model_says_how_to_install(make):
    c = make(generator="shap-e", procedural_fallback=False)
    with pytest.raises(ToolError, match="needs a text-to-3D model.*anymodal models pull shap-e"):
        generate_3d(c.ctx, prompt="a table", shapes=BOX)
    c = make(generator="no-such-org/no-shap-e", procedural_fallback=False)
    with pytest.raises(ToolError, match="hf download no-such-org/no-shap-e"):
        generate_3d(c.ctx, prompt="a table")


def test_shapes_given_with_a_model_installed_are_not_needed(make):
    result = generate_3d(make().ctx, prompt="a table", shapes=BOX, seed=1, **FAST)
    assert result.data["procedural"] is False
    assert "the shapes given were not needed" in result.summary


# --- image_to_3d ----------------------------------------------------------------------------


def _object_png(folder: Path, background: tuple[int, ...] = (40, 90, 200)) -> Path:
    """A red disc and a yellow bar on a plain background, 96x64."""
    img = Image.new("RGB", (96, 64), background)
    draw = ImageDraw.Draw(img)
    draw.ellipse((28, 12, 68, 52), fill=(220, 30, 30))
    draw.rectangle((44, 20, 52, 44), fill=(250, 220, 20))
    path = folder / "object.png"
    img.save(path)
    return path


def test_image_to_3d_cuts_a_plain_background(make, tmp_path):
    c = make()
    result = image_to_3d(c.ctx, image=c.attach(_object_png(tmp_path)), seed=2, **FAST)
    art, grid = result.artifacts
    assert art.name == "object-3d-2.glb" and len(loaded(art).faces) > 0
    preview(grid)
    meta = art.metadata
    assert meta["pipeline"] == "ShapEImg2ImgPipeline" and meta["guidance"] == 3.0
    assert meta["background"] == "cut out" and meta["background_colour"] == "#285ac8"
    assert 0.5 < meta["background_share"] < 0.9 and meta["source"] == c.ctx.refs["a1"][0].id
    assert "background: cut out" in result.summary


def test_image_to_3d_makes_transparency_white(make, tmp_path):
    c = make()
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((16, 16, 48, 48), fill=(30, 160, 60, 255))
    img.save(tmp_path / "cutout.png")
    result = image_to_3d(c.ctx, image=c.attach(tmp_path / "cutout.png"), seed=1, **FAST)
    assert result.data["background"] == "transparent areas made white"
    assert len(loaded(result.artifacts[0]).faces) > 0


def test_prepare_image_cuts_only_what_touches_the_border():
    from tools.shap_e import prepare_image

    img = Image.new("RGB", (96, 64), (40, 90, 200))
    draw = ImageDraw.Draw(img)
    draw.ellipse((20, 4, 76, 60), fill=(220, 30, 30))
    draw.ellipse((40, 24, 56, 40), fill=(40, 90, 200))  # background colour, inside the disc
    out, facts, notes = prepare_image(img, remove_background=True)
    px = np.asarray(out)
    assert out.size == (96, 96) and facts["background"] == "cut out" and not notes
    assert (px[0, 0] == 255).all() and (px[50, 2] == 255).all()  # padding, then the cut
    assert tuple(px[16 + 32, 48]) == (40, 90, 200)  # the hole in the disc is kept
    assert tuple(px[16 + 10, 48]) == (220, 30, 30)


def test_prepare_image_keeps_a_busy_background_with_a_note():
    from tools.shap_e import prepare_image

    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out, facts, notes = prepare_image(Image.fromarray(noise), remove_background=True)
    assert facts["background"] == "kept (not plain)" and "background was kept" in notes[0]
    assert np.array_equal(np.asarray(out), noise)
    kept, facts, _ = prepare_image(Image.new("RGB", (8, 8), "red"), remove_background=False)
    assert facts["background"].startswith("kept") and kept.getpixel((0, 0)) == (255, 0, 0)
    with pytest.raises(ToolError, match="one plain colour"):
        prepare_image(Image.new("RGB", (8, 8), "red"), remove_background=True)


def test_image_to_3d_has_no_stand_in(make, tmp_path):
    c = make(image_generator="shap-e-img2img")
    with pytest.raises(ToolError, match="needs an image-to-3D model.*models pull shap-e-img2img"):
        image_to_3d(c.ctx, image=c.attach(_object_png(tmp_path)))


def test_a_pipeline_of_the_wrong_kind_is_refused_naming_the_setting(make, tiny, tmp_path):
    c = make(image_generator=str(tiny["text"]))
    wrong = r"is a text-to-3D pipeline, not image-to-3D; use it as tools.mesh.generator instead"
    with pytest.raises(ToolError, match=wrong + ", and set tools.mesh.image_generator to"):
        image_to_3d(c.ctx, image=c.attach(_object_png(tmp_path)), **FAST)
    c = make(generator=str(tiny["image"]))
    with pytest.raises(ToolError, match=r"not text-to-3D; .* set tools.mesh.generator to"):
        generate_3d(c.ctx, prompt="a fox", **FAST)


def test_to_trimesh_turns_z_up_to_y_up_with_outward_faces():
    from diffusers.pipelines.shap_e.renderer import MeshDecoderOutput

    from tools.shap_e import to_trimesh

    # A tetrahedron wound inwards, its apex up Z; colours 0..1 per vertex.
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    faces = torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])
    rgb = torch.tensor([[1.0, 0, 0.5], [0, 1, 0.5], [0, 0, 1], [1, 1, 1]])
    raw = MeshDecoderOutput(
        verts=verts, faces=faces, vertex_channels=dict(zip("RGB", rgb.T, strict=True))
    )
    mesh = to_trimesh(raw)
    assert mesh.volume > 0  # outward after the fix (inward gives a negative volume)
    apex = np.flatnonzero(np.isclose(mesh.vertices[:, 1], 1.0))
    assert len(apex) == 1 and np.allclose(mesh.vertices[apex[0]], (0, 1, 0))  # +Z is +Y
    assert np.allclose(sorted(mesh.vertices[:, 2]), [-1, 0, 0, 0])  # +Y is -Z
    colours = mesh.visual.vertex_colors[apex[0], :3]
    assert colours.dtype == np.uint8 and tuple(colours) == (255, 255, 255)
    data = io.BytesIO(mesh.export(file_type="glb"))
    assert len(trimesh.load(data, file_type="glb", force="mesh").faces) == 4
