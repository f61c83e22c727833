"""The 3D tools through the whole graph with scripted plans: a tiny random Shap-E makes a chair
that is rendered and the render captioned by a tiny random LLaVA; without Shap-E the chair is
built from shapes, labelled as such in the reply; bad meshes fail their step clearly and the
session goes on with everything it had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assistant import Assistant
from assistant.events import Final, StepFailed, StepProgress
from tests.conftest import check_event_order

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
trimesh = pytest.importorskip("trimesh")
pytest.importorskip("embreex")
torch.set_num_threads(1)

CHAIR_RENDER_CAPTION = [
    {
        "id": "s1",
        "tool": "generate_3d",
        "args": {"prompt": "a chair", "seed": 3, "steps": 2, "resolution": 24},
    },
    {"id": "s2", "tool": "render_mesh", "args": {"mesh": "$s1", "size": 96, "frames": 4}},
    {"id": "s3", "tool": "caption_image", "args": {"image": "$s2"}},
]
CHAIR_SHAPES: list[dict[str, Any]] = [
    {"kind": "box", "size": [1.0, 0.1, 1.0], "position": [0, 0.5, 0], "color": "saddlebrown"},
    *(
        {"kind": "cylinder", "size": [0.08, 0.5, 0.08], "position": [x, 0.25, z]}
        for x in (-0.45, 0.45)
        for z in (-0.45, 0.45)
    ),
    {"kind": "box", "size": [1.0, 0.9, 0.1], "position": [0, 1.0, -0.45], "color": "#8b4513"},
]


@pytest.fixture(scope="module")
def tiny_shap_e(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_shap_e import build_tiny_shap_e

    return build_tiny_shap_e(tmp_path_factory.mktemp("tiny-shap-e"))


def _assistant(generator: Path | str, tiny_llava: Path | None = None) -> Assistant:
    tools: dict[str, Any] = {"mesh": {"generator": str(generator), "preview_size": 96}}
    if tiny_llava is not None:
        tools["image"] = {"vision_language": str(tiny_llava)}
    return Assistant(tools=tools, device="cpu", dtype="float32")


def test_make_a_chair_render_a_preview_and_caption_it(tiny_shap_e: Path, tiny_llava: Path):
    bot = _assistant(tiny_shap_e, tiny_llava)
    events = list(
        bot.stream(
            "make a 3D model of a chair, render a preview, and caption the preview",
            plan=CHAIR_RENDER_CAPTION,
        )
    )
    check_event_order(events, {"steps": CHAIR_RENDER_CAPTION})
    result = events[-1].result
    assert isinstance(events[-1], Final) and result.ok, result.text

    # s1: a GLB that trimesh reads with faces, and a preview of it.
    mesh, preview = result.steps["s1"]["artifacts"]
    assert mesh["modality"] == "mesh" and mesh["mime"] == "model/gltf-binary"
    assert mesh["metadata"]["procedural"] is False and mesh["metadata"]["preview"] == preview["id"]
    loaded = trimesh.load_mesh(mesh["path"])
    assert len(loaded.faces) > 0 and len(loaded.faces) == mesh["metadata"]["faces"]
    with Image.open(preview["path"]) as img:
        assert img.format == "PNG" and img.size[0] >= 96
    steps = [e for e in events if isinstance(e, StepProgress) and e.step == "s1"]
    assert len(steps) >= 2 and [e.fraction for e in steps] == sorted(e.fraction for e in steps)

    # s2: the turntable grid and GIF of s1's mesh.
    grid, gif = result.steps["s2"]["artifacts"]
    with Image.open(grid["path"]) as img:
        assert img.format == "PNG"
    with Image.open(gif["path"]) as img:
        assert img.format == "GIF" and img.n_frames == 4
    assert grid["metadata"]["source"] == mesh["id"]

    # s3: the caption is of s2's grid.
    caption = result.steps["s3"]
    assert caption["status"] == "ok" and caption["data"]["caption"]
    assert caption["artifacts"][0]["metadata"]["source"] == grid["id"]


def test_without_shap_e_the_chair_is_built_from_shapes(tmp_path: Path) -> None:
    bot = _assistant(tmp_path / "no-such-model")
    plan = [
        {
            "id": "s1",
            "tool": "generate_3d",
            "args": {"prompt": "a wooden chair", "seed": 1, "shapes": CHAIR_SHAPES},
        }
    ]
    result = bot.run("make a 3D model of a chair", plan=plan)
    assert result.ok, result.text
    mesh = result.artifacts[0]
    assert mesh.metadata["procedural"] is True and "not a generated" in mesh.metadata["label"]
    assert "NOT a generated" in result.text or "not a generated" in result.text
    loaded = trimesh.load_mesh(mesh.path)
    assert loaded.body_count == len(CHAIR_SHAPES)
    assert loaded.bounds[0][1] == pytest.approx(0.0, abs=1e-6)  # it stands on the ground


def _broken_files(folder: Path) -> dict[str, tuple[Path, str]]:
    glb = trimesh.creation.box().export(file_type="glb")
    points = trimesh.PointCloud([[0, 0, 0], [1, 0, 0], [0, 1, 0]]).export(file_type="ply")
    files = {
        "cut.glb": (glb[: len(glb) // 2], "not a readable GLB file"),
        "empty.stl": (b" \n", "is empty"),  # (a 0-byte file is refused when attached)
        "scan.ply": (points, "point cloud"),
        "line.obj": (b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "only degenerate faces"),
        "chair.fbx": (b"Kaydara FBX Binary  \x00", "not a mesh format anymodal reads"),
    }
    out = {}
    for name, (data, message) in files.items():
        (folder / name).write_bytes(data)
        out[name] = (folder / name, message)
    return out


def test_bad_meshes_fail_clearly_and_the_session_goes_on(tmp_path: Path) -> None:
    bot = _assistant(tmp_path / "no-such-model")
    good = tmp_path / "box.glb"
    good.write_bytes(trimesh.creation.box((1, 2, 3)).export(file_type="glb"))
    plan = [{"id": "s1", "tool": "describe_mesh", "args": {"mesh": "$a1"}}]
    first = bot.run("describe this model", [good], plan=plan)
    assert first.ok, first.text
    assert first.steps["s1"]["data"]["faces"] == 12 and first.steps["s1"]["data"]["watertight"]

    for path, message in _broken_files(tmp_path).values():
        events = list(bot.stream("and this one", [path], session=first.session, plan=plan))
        failed = [e for e in events if isinstance(e, StepFailed)]
        assert failed and message in failed[0].error, (path.name, failed)

    too_big = [
        {"id": "s1", "tool": "generate_3d", "args": {"prompt": "a chair", "resolution": 4096}},
    ]
    events = list(bot.stream("a very fine chair", session=first.session, plan=too_big))
    final = events[-1]
    assert isinstance(final, Final) and not final.result.ok
    assert "less than or equal to 256" in final.result.text  # the plan is refused up front

    again = bot.run("the box again", [good], session=first.session, plan=plan)
    assert again.ok and again.session == first.session
    assert again.artifacts[0].id == first.artifacts[0].id  # the same description, kept
    assert Path(first.artifacts[0].path).is_file()
    assert [m["role"] for m in bot.messages(first.session)] == ["user", "assistant"] * 8


def test_the_planner_sees_a_meshs_facts(tmp_path: Path) -> None:
    from assistant.api import attach
    from assistant.planners.base import PlanRequest
    from prompts import render
    from tools import ArtifactStore

    box = tmp_path / "crate.glb"
    box.write_bytes(trimesh.creation.box().export(file_type="glb"))
    atts = attach(ArtifactStore(tmp_path / "store"), [box])
    assert atts[0].modality.value == "mesh" and atts[0].metadata["faces"] == 12
    text = render("planner_user.j2", r=PlanRequest("what is this", atts, []))
    assert "$a1: crate.glb (mesh, 12 faces, watertight)" in text
