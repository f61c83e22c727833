"""Invalid plans are rejected with a clear message, and no tool runs."""

from __future__ import annotations

import pytest

from assistant.events import PlanRejected, StepStarted
from assistant.plan import Plan, PlanError
from tests.conftest import plugin_assistant


def _rejected(plan, attachments=(), **kw):
    """Run ``plan``; return the rejection message after checking nothing ran."""
    events = list(plugin_assistant(max_replans=0).stream("x", list(attachments), plan=plan))
    assert not any(isinstance(e, StepStarted) for e in events), "a step ran"
    rejected = [e for e in events if isinstance(e, PlanRejected)]
    assert len(rejected) == 1
    result = events[-1].result
    assert result.status == "failed" and rejected[0].error in result.text
    return rejected[0].error


def _count(tmp_path, sid="s1", **extra):
    args = {"label": sid, "log": str(tmp_path / "ran.log"), **extra}
    return {"id": sid, "tool": "count", "args": args}


@pytest.mark.parametrize(
    ("make_plan", "expected"),
    [
        (
            lambda p: [_count(p), {"id": "s2", "tool": "resize_imag", "args": {}}],
            "unknown tool 'resize_imag'; did you mean resize_image",
        ),
        (
            lambda p: [
                _count(p),
                {"id": "s2", "tool": "resize_image", "args": {"image": "$a1", "width": "wide"}},
            ],
            "s2 (resize_image): width: Input should be a valid integer",
        ),
        (
            lambda p: [_count(p), {"id": "s2", "tool": "resize_image", "args": {"image": "$a1"}}],
            "give width, height, or both",
        ),
        (
            lambda p: [
                _count(p),
                {
                    "id": "s2",
                    "tool": "resize_image",
                    "args": {"image": "$a1", "width": 10, "colour": "red"},
                },
            ],
            "colour: Extra inputs are not permitted",
        ),
        (lambda p: [_count(p, after="$s9")], "$s9 names no step in this plan"),
        (
            lambda p: [
                _count(p),
                {"id": "s2", "tool": "resize_image", "args": {"image": "$a3", "width": 10}},
            ],
            "$a3 names attachment 3, but 1 file(s) were attached",
        ),
        (
            lambda p: [_count(p, "s1", after="$s2"), _count(p, "s2", after="$s1")],
            "the steps form a cycle",
        ),
        (lambda p: [_count(p, "s1"), _count(p, "s1")], "step ids used twice: s1"),
        (lambda p: [_count(p, "s1", after="$s1")], "s1: refers to its own output"),
        (
            lambda p: [
                _count(p),
                {"id": "s2", "tool": "trim_audio", "args": {"audio": "$a1", "start": 0}},
            ],
            "a.png is image; this needs audio",
        ),
        (
            lambda p: [
                _count(p),
                {"id": "s2", "tool": "resize_image", "args": {"image": "$s1", "width": 5}},
            ],
            "$s1 is text; this needs image",
        ),
        (
            lambda p: [
                _count(p),
                {
                    "id": "s2",
                    "tool": "resize_image",
                    "args": {"image": "/etc/hostname", "width": 5},
                },
            ],
            "path /etc/hostname is outside the session; attach the file instead",
        ),
        (
            lambda p: [_count(p), {"id": "s2", "tool": "download_url", "args": {"url": "$a1"}}],
            "url: '$a1' is a reference, but url takes a plain value",
        ),
    ],
    ids=[
        "unknown-tool",
        "wrong-type",
        "missing-arg",
        "extra-arg",
        "missing-step",
        "missing-attachment",
        "cycle",
        "duplicate-id",
        "self-reference",
        "wrong-modality",
        "wrong-output-modality",
        "path-outside-session",
        "reference-in-plain-field",
    ],
)
def test_invalid_plan_is_rejected_and_nothing_runs(make_plan, expected, images, tmp_path):
    error = _rejected({"steps": make_plan(tmp_path)}, [images[0]])
    assert expected in error
    assert not (tmp_path / "ran.log").exists()


def test_malformed_json_plan_file_is_a_plan_error(tmp_path):
    bad = tmp_path / "plan.json"
    bad.write_text('{"steps": [{"id": "s1", "tool": ')
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.load(bad)
    with pytest.raises(PlanError, match="cannot read plan file"):
        Plan.load(tmp_path / "nope.json")
    with pytest.raises(PlanError, match="steps.0.tool: Field required"):
        Plan.parse({"steps": [{"id": "s1"}]})
    with pytest.raises(PlanError, match="step id 'a1' must be a short name"):
        plugin_assistant().run("x", plan=[{"id": "a1", "tool": "noop", "args": {}}])


def test_plan_order_puts_dependencies_first():
    plan = Plan.parse(
        [
            {"id": "c", "tool": "t", "args": {"x": ["$a", "$b.2"]}},
            {"id": "a", "tool": "t", "args": {"x": "$a1"}},
            {"id": "b", "tool": "t", "args": {"x": {"nested": "$a"}}},
        ]
    )
    assert plan.dependencies() == {"c": {"a", "b"}, "a": set(), "b": {"a"}}
    assert plan.order() == [["a"], ["b"], ["c"]]


def test_output_selectors_pick_by_index_and_modality(images):
    plan = {
        "steps": [
            {"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 40}},
            {"id": "s2", "tool": "resize_image", "args": {"image": "$s1.image", "height": 10}},
            {"id": "s3", "tool": "resize_image", "args": {"image": "$s2.1", "height": 5}},
        ]
    }
    result = plugin_assistant().run("x", [images[0]], plan=plan)
    assert result.ok, result.text
    assert result.artifacts[-1].metadata["height"] == 5
    bad = {
        "steps": [plan["steps"][0], {**plan["steps"][1], "args": {"image": "$s1.2", "width": 3}}]
    }
    failed = plugin_assistant(max_replans=0).run("x", [images[0]], plan=bad)
    assert "$s1.2: that step produced 1 artifact(s)" in failed.text
