"""The procedural 3D fallback: shapes built into one coloured mesh, and a scripted language
model writing the scene."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from tools import ArtifactStore, ToolContext, ToolError
from tools.mesh_scene import (
    MAX_SHAPES,
    Shape,
    build_scene,
    parse_scene,
    plan_scene,
    scene_schema,
)

trimesh = pytest.importorskip("trimesh")

CHAIR = [
    {"kind": "box", "size": [0.5, 0.05, 0.5], "position": [0, 0.45, 0], "color": "saddlebrown"},
    {"kind": "box", "size": [0.05, 0.45, 0.05], "position": [-0.2, 0.2, -0.2]},
    {"kind": "box", "size": [0.05, 0.45, 0.05], "position": [0.2, 0.2, -0.2]},
    {"kind": "cylinder", "size": [0.05, 0.45, 0.05], "position": [-0.2, 0.2, 0.2]},
    {"kind": "cylinder", "size": [0.05, 0.45, 0.05], "position": [0.2, 0.2, 0.2]},
    {"kind": "box", "size": [0.5, 0.5, 0.05], "position": [0, 0.75, -0.225], "color": "#a52a2a"},
]


class ScriptedLLM:
    """Answers with the given replies in turn and records what it was asked."""

    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.calls: list[tuple[list[dict], object]] = []
        self.options: list[dict] = []

    def __call__(self, messages, on_token, /, **options):
        self.calls.append(([dict(m) for m in messages], on_token))
        self.options.append(options)
        return self.replies[min(len(self.calls), len(self.replies)) - 1]


@pytest.fixture
def context(tmp_path):
    def make(llm, **kwargs) -> ToolContext:
        return ToolContext(
            store=ArtifactStore(tmp_path / "store"), workspace=tmp_path, llm=llm, **kwargs
        )

    return make


def _one(**fields) -> trimesh.Trimesh:
    return build_scene([Shape(**fields)])


def test_a_box_has_its_size_and_centre():
    mesh = _one(kind="box", size=(1, 2, 3), position=(0, 1, 0))
    assert np.allclose(mesh.extents, (1, 2, 3))
    assert np.allclose(mesh.bounds, [(-0.5, 0, -1.5), (0.5, 2, 1.5)])
    assert mesh.is_watertight and np.isclose(mesh.volume, 6)


def test_a_sphere_is_an_ellipsoid_of_its_size():
    mesh = _one(kind="sphere", size=(2, 1, 4), position=(3, 0.5, -1))
    assert np.allclose(mesh.extents, (2, 1, 4), atol=1e-6)
    assert np.allclose(mesh.bounds.mean(axis=0), (3, 0.5, -1), atol=1e-6)
    # every vertex lies on the ellipsoid, and it is finely enough tessellated to look round
    unit = (mesh.vertices - (3, 0.5, -1)) / (1, 0.5, 2)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1)
    assert len(mesh.faces) >= 1000


@pytest.mark.parametrize("kind", ["cylinder", "cone"])
def test_cylinders_and_cones_stand_on_y(kind):
    mesh = _one(kind=kind, size=(0.5, 2, 1), position=(1, 1, 0))
    assert np.allclose(mesh.extents, (0.5, 2, 1), atol=1e-6)
    assert np.allclose(mesh.bounds, [(0.75, 0, -0.5), (1.25, 2, 0.5)], atol=1e-6)
    bottom = mesh.vertices[np.isclose(mesh.vertices[:, 1], 0)]
    top = mesh.vertices[np.isclose(mesh.vertices[:, 1], 2)]
    # the base is a full ellipse on the ground; a cylinder's top is one too, a cone's a point
    assert np.ptp(bottom[:, 0]) == pytest.approx(0.5) and np.ptp(bottom[:, 2]) == pytest.approx(1)
    if kind == "cylinder":
        assert np.ptp(top[:, 0]) == pytest.approx(0.5) and np.ptp(top[:, 2]) == pytest.approx(1)
    else:
        assert np.allclose(top, (1, 2, 0))
    assert len(bottom) >= 32  # round enough for a smooth outline
    assert mesh.is_watertight and mesh.volume > 0  # closed, faces pointing out


def test_rotation_turns_a_box():
    turned = _one(kind="box", size=(1, 2, 3), position=(0, 1, 0), rotation=(0, 90, 0))
    assert np.allclose(turned.extents, (3, 2, 1))
    assert np.allclose(turned.bounds.mean(axis=0), (0, 1, 0))
    tipped = _one(kind="cylinder", size=(1, 4, 1), rotation=(0, 0, 90))  # lying along x
    assert np.allclose(tipped.extents, (4, 1, 1), atol=1e-6)


def test_colours_land_in_the_vertex_colours():
    mesh = build_scene(
        [
            Shape(kind="box", size=(1, 1, 1), color="red"),
            Shape(kind="sphere", size=(1, 1, 1), position=(3, 0, 0), color="#00f"),
            Shape(kind="cone", size=(1, 1, 1), position=(-3, 0, 0)),
        ]
    )
    assert mesh.visual.kind == "vertex"
    colours = mesh.visual.vertex_colors
    x = mesh.vertices[:, 0]
    assert (colours[x < -2] == (180, 180, 180, 255)).all()  # the default grey
    assert (colours[np.abs(x) < 1] == (255, 0, 0, 255)).all()
    assert (colours[x > 2] == (0, 0, 255, 255)).all()


def test_a_chair_is_one_mesh_of_six_parts():
    shapes = [Shape(**s) for s in CHAIR]
    mesh = build_scene(shapes)
    assert isinstance(mesh, trimesh.Trimesh)
    parts = mesh.split(only_watertight=False)
    assert len(parts) == 6
    assert np.allclose(mesh.bounds, [(-0.25, -0.025, -0.25), (0.25, 1.0, 0.25)])
    sizes = sorted(tuple(np.round(p.extents, 3)) for p in parts)
    assert sizes == sorted(tuple(s["size"]) for s in CHAIR)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"kind": "box", "size": (1, -2, 1)}, ["size.1", "greater than 0"]),
        ({"kind": "box", "size": (1, 200, 1)}, ["size.1", "less than or equal to 100"]),
        ({"kind": "box", "size": (1, 1, 1), "color": "blurple"}, ["'blurple' is not a colour"]),
        ({"kind": "pyramid", "size": (1, 1, 1)}, ["kind", "'box', 'sphere', 'cylinder' or 'cone'"]),
        ({"kind": "box", "size": (1, 1, 1), "colour": "red"}, ["colour", "Extra inputs"]),
        ({"kind": "box", "size": (1, 1, 1), "position": (0, float("nan"), 0)}, ["finite"]),
    ],
)
def test_a_bad_shape_says_what_is_wrong(fields, words):
    with pytest.raises(ValidationError) as info:
        Shape(**fields)
    for word in words:
        assert word in str(info.value)


def test_an_empty_or_crowded_scene_is_refused():
    with pytest.raises(ToolError, match="no shapes; give at least one"):
        build_scene([])
    box = Shape(kind="box", size=(1, 1, 1))
    assert len(build_scene([box] * MAX_SHAPES).split(only_watertight=False)) == MAX_SHAPES
    with pytest.raises(ToolError, match=f"{MAX_SHAPES + 1} shapes; the limit is {MAX_SHAPES}"):
        build_scene([box] * (MAX_SHAPES + 1))


def test_the_language_model_writes_the_scene_in_a_fenced_reply(context):
    reply = f"Here is a chair:\n```json\n{json.dumps({'shapes': CHAIR}, indent=1)}\n```\nEnjoy!"
    llm = ScriptedLLM(reply)
    progress: list[tuple[float, str]] = []
    ctx = context(llm, progress_fn=lambda f, m, p: progress.append((f, m)))
    shapes = plan_scene(ctx, "a wooden chair")
    assert [s.kind for s in shapes] == [s["kind"] for s in CHAIR]
    assert shapes[0].color == "saddlebrown" and shapes[1].color == "#b4b4b4"
    assert len(build_scene(shapes).split(only_watertight=False)) == 6
    ((messages, on_token),) = llm.calls
    assert on_token is None  # JSON for the builder, not text for the user
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '"kind"' in messages[0]["content"] and "y = 0" in messages[0]["content"]
    assert "a wooden chair" in messages[1]["content"]
    assert progress[-1][0] == 1.0 and "6 shapes" in progress[-1][1]
    # the reply is constrained to the scene's JSON schema where the backend can
    ((options),) = llm.options
    assert options["schema"] == scene_schema() and options["max_tokens"] >= 1000
    assert options["schema"]["properties"]["shapes"]["items"]["required"] == ["kind", "size"]


def test_a_shape_repeated_by_the_model_counts_once():
    chair = parse_scene(json.dumps({"shapes": CHAIR + CHAIR[1:3]}))
    assert len(chair) == len(CHAIR)


@pytest.mark.parametrize(
    "reply",
    [
        json.dumps(CHAIR),  # a bare list
        f"The scene: {json.dumps(CHAIR)} (units in metres) [done]",  # text with brackets after
        json.dumps(CHAIR[0]),  # one shape on its own
    ],
)
def test_replies_without_fences_are_read_too(reply):
    shapes = parse_scene(reply)
    assert shapes[0] == Shape(**CHAIR[0])
    assert len(shapes) in (1, len(CHAIR))


def test_a_bad_reply_is_retried_once_with_the_problem(context):
    bad = json.dumps({"shapes": [{"kind": "box", "size": [1, 0, 1]}, CHAIR[0]]})
    llm = ScriptedLLM(bad, json.dumps({"shapes": CHAIR}))
    shapes = plan_scene(context(llm), "a chair")
    assert len(shapes) == 6 and len(llm.calls) == 2
    second = llm.calls[1][0]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"] == bad
    assert "shapes[0].size[1]: Input should be greater than 0 (got 0)" in second[3]["content"]


def test_two_unusable_replies_fail_clearly(context):
    trailing = '{"shapes": [{"kind": "box", "size": [1, 1, 1]},]}'  # trailing comma: not JSON
    llm = ScriptedLLM(trailing, "I cannot draw in 3D, sorry.")
    with pytest.raises(ToolError) as info:
        plan_scene(context(llm), "a chair")
    message = str(info.value)
    assert "could not describe 'a chair' as simple shapes" in message
    assert "no JSON list or object" in message and "shap-e" in message
    assert "not valid JSON" in llm.calls[1][0][3]["content"]


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ('{"objects": []}', 'no "shapes" list'),
        ('{"shapes": []}', "the list of shapes is empty"),
        (json.dumps([CHAIR[0]] * (MAX_SHAPES + 1)), f"use at most {MAX_SHAPES}"),
        ('[{"kind": "box", "size": [1, 1, 1], "color": "nope"}]', "shapes[0].color: 'nope'"),
    ],
)
def test_each_problem_is_named_for_the_model(context, reply, problem):
    llm = ScriptedLLM(reply)
    with pytest.raises(ToolError, match="could not describe"):
        plan_scene(context(llm), "a chair")
    assert problem in llm.calls[1][0][3]["content"]


def test_no_language_model_is_a_clear_error(context):
    with pytest.raises(ToolError, match="no language model is configured.*shap-e.*give shapes"):
        plan_scene(context(None), "a chair")
