"""The shared language-model planner: parsing, repair of bad answers, the plan schema, the
shortlist, and the text tools, driven by a scripted chat backend."""

from __future__ import annotations

import json

import pytest

from assistant import Assistant
from assistant.events import Token
from assistant.plan import PlanError
from assistant.planners.base import PlanRequest, RespondRequest
from assistant.planners.llm import LLMPlanner, Reply, extract_json, plan_schema, tool_signature
from assistant.planners.shortlist import Shortlist, named_tools
from assistant.planning import described_attachment, make_plan
from tools import Registry

GOOD = '{"steps":[{"id":"s1","tool":"resize_image","args":{"image":"$a1","width":64}}]}'


class ScriptedChat:
    """A chat backend that answers from a list and records what it was asked."""

    name = "scripted-chat"
    sees_images = False

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def chat(self, messages, *, schema=None, tools=None, max_tokens=None, on_token=None):
        self.calls.append({"messages": messages, "schema": schema, "tools": tools})
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Reply):
            return answer
        if on_token:
            for word in answer.split(" "):
                on_token(word + " ")
        return Reply(text=answer)


def _plan(answers, n_attachments=1):
    backend = ScriptedChat(answers)
    atts = [
        described_attachment(f"p{i}.png", "image", width=640, height=480)
        for i in range(n_attachments)
    ]
    plan = make_plan(LLMPlanner(backend), "make it 64 wide", atts, Registry.discover())
    return plan, backend


@pytest.mark.parametrize(
    "first",
    [
        '{"steps":[{"id":"s1","tool":"resize_image","args":{"image":"$a1",',  # truncated
        '{"steps":[{"id":"s1","tool":"resize_picture","args":{"image":"$a1"}}]}',  # unknown
        '{"steps":[{"id":"s1","tool":"resize_image","args":{"image":"$a1","width":"big"}}]}',
        "Sure! I cannot do that.",  # no JSON at all
    ],
    ids=["truncated", "unknown-tool", "wrong-type", "no-json"],
)
def test_bad_answer_is_repaired_with_the_problem_shown(first):
    plan, backend = _plan([first, GOOD])
    assert [s.tool for s in plan.steps] == ["resize_image"]
    assert len(backend.calls) == 2
    repair = backend.calls[1]["messages"][-1]["content"]
    assert repair.startswith("That plan cannot run:")
    assert backend.calls[1]["messages"][-2] == {"role": "assistant", "content": first}


def test_prose_and_fences_around_json_are_accepted():
    plan, backend = _plan([f"Here is the plan:\n```json\n{GOOD}\n```\nHope it helps."])
    assert plan.steps[0].args == {"image": "$a1", "width": 64}
    assert len(backend.calls) == 1


def test_gives_up_after_two_repairs_with_the_last_problem():
    with pytest.raises(PlanError) as info:
        _plan(['{"steps":[{"id":"s1","tool":"nope","args":{}}]}'])
    assert "no valid plan in 3 tries" in str(info.value)
    assert "unknown tool 'nope'" in str(info.value)


def test_a_bad_plan_from_the_model_never_runs(tmp_path):
    backend = ScriptedChat(
        [
            '{"steps":[{"id":"s1","tool":"count","args":{"label":"x",'
            f'"log":"{tmp_path / "log"}","after":"$s9"}}}}]}}'
        ]
    )
    result = Assistant(
        planner=LLMPlanner(backend), tool_modules=["tests.plugin_tools"], max_replans=0
    ).run("count")
    assert result.status == "failed"
    assert "$s9 names no step" in result.text
    assert not (tmp_path / "log").exists()


def test_native_tool_calls_become_steps():
    calls = Reply(
        tool_calls=[
            {"name": "resize_image", "arguments": '{"id": "s1", "image": "$a1", "width": 64}'},
            {"name": "resize_image", "arguments": {"image": "$a2", "width": 64}},
            {"name": "stitch_images", "arguments": {"images": ["$s1", "$s2"]}},
        ]
    )
    backend = ScriptedChat([calls])
    atts = [described_attachment(n, "image") for n in ("a.png", "b.png")]
    planner = LLMPlanner(backend, native_tools=True)
    plan = make_plan(planner, "x", atts, Registry.discover())
    assert [(s.id, s.tool) for s in plan.steps] == [
        ("s1", "resize_image"),
        ("s2", "resize_image"),
        ("s3", "stitch_images"),
    ]
    offered = {t["function"]["name"] for t in backend.calls[0]["tools"]}
    assert {"resize_image", "stitch_images"} <= offered


def test_plan_schema_accepts_good_plans_and_rejects_unknown_tools():
    from jsonschema import Draft202012Validator

    schema = plan_schema(Registry.discover().specs())
    v = Draft202012Validator(schema)
    assert v.is_valid(json.loads(GOOD))
    assert not v.is_valid({"steps": [{"id": "s1", "tool": "nope", "args": {}}]})
    assert not v.is_valid(
        {"steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "bogus": 1}}]}
    )
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema)


def test_positional_schema_allows_only_references_that_exist_and_fit():
    from jsonschema import Draft202012Validator

    specs = Registry.discover().specs()
    v = Draft202012Validator(plan_schema(specs, ["image", "audio"]))

    def ok(*steps):
        return v.is_valid(
            {"steps": [{"id": f"s{i}", "tool": t, "args": a} for i, (t, a) in enumerate(steps, 1)]}
        )

    assert ok(
        ("resize_image", {"image": "$a1", "width": 5}),
        ("stitch_images", {"images": ["$s1", "$a1"]}),
    )
    assert not ok(("resize_image", {"image": "$s1", "width": 5}))  # itself
    assert not ok(("resize_image", {"image": "$a2", "width": 5}))  # $a2 is audio
    assert not ok(("resize_image", {"image": "$a3", "width": 5}))  # no third file
    assert not ok(
        ("resize_image", {"image": "$s2", "width": 5}),  # a later step
        ("resize_image", {"image": "$a1", "width": 5}),
    )
    assert not v.is_valid(
        {"steps": [{"id": "s2", "tool": "resize_image", "args": {"image": "$a1", "width": 5}}]}
    )  # numbering
    # With no files, the first step can only be a tool that needs no artifact.
    first = plan_schema(specs, [])["properties"]["steps"]["prefixItems"][0]["anyOf"]
    assert {k["properties"]["tool"]["const"] for k in first} == {
        "download_url",
        "write_text",
        "summarize_text",
        "translate_text",
        "generate_image",
        "speak",
        "generate_music",
        "generate_sound",
        "generate_video",
        "generate_3d",
        "search_memory",
    }


def test_compact_grammar_builds_for_the_registry():
    pytest.importorskip("xllamacpp")
    from assistant.planners.llamacpp import compact_grammar

    grammar = compact_grammar(plan_schema(Registry.discover().specs()))
    assert "resize_image" in grammar and '"whitespace_flexible":false' in grammar


def test_tool_signatures_are_compact():
    specs = {s["name"]: s for s in Registry.discover().specs()}
    assert tool_signature(specs["resize_image"]) == (
        "resize_image(image: image, width?: int, height?: int)"
    )
    assert tool_signature(specs["stitch_images"]).startswith(
        'stitch_images(images: list of image, layout?: "horizontal"|"vertical"|"grid"'
    )


def test_extract_json_finds_the_first_value():
    assert extract_json('blah {"a": [1, 2]} trailing {"b": 1}') == {"a": [1, 2]}
    with pytest.raises(PlanError, match="looks cut off"):
        extract_json('{"a": [1, ')


def test_responder_streams_model_tokens_then_the_facts(images):
    backend = ScriptedChat(["I resized your photo."])
    result = None
    events = list(
        Assistant(planner=LLMPlanner(backend)).stream(
            "resize",
            [images[0]],
            plan={
                "steps": [
                    {"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 20}}
                ]
            },
        )
    )
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert tokens[:4] == ["I ", "resized ", "your ", "photo. "]
    result = events[-1].result
    assert result.text.startswith("I resized your photo.")
    assert "Artifacts:" in result.text and result.artifacts[0].path in result.text


class FakeEmbedder:
    """Embeds by keyword: a 3-d space of (image, audio, text) words."""

    def embed(self, texts):
        import torch

        rows = []
        for t in texts:
            t = t.lower()
            rows.append([t.count("image") + t.count("photo"), t.count("audio"), t.count("text")])
        return torch.nn.functional.normalize(torch.tensor(rows, dtype=torch.float) + 1e-3, dim=-1)


def test_shortlist_keeps_relevant_and_named_tools_in_registry_order():
    specs = Registry.discover().specs()
    pick = Shortlist(lambda: FakeEmbedder(), size=3)
    request = PlanRequest(
        prompt="shorten this audio, then download_url something", attachments=[], tools=specs
    )
    names = [t["name"] for t in pick(request)]
    assert "download_url" in names  # named outright
    by_name = {s["name"]: s for s in specs}
    picked = [by_name[n] for n in names if n != "download_url"]
    assert len(picked) == 3  # the shortlist's size, all audio tools
    assert all("audio" in s["input_modalities"] + s["output_modalities"] for s in picked)
    assert names == [n for n in [s["name"] for s in specs] if n in names]  # registry order
    few = PlanRequest(prompt="x", attachments=[], tools=specs[:2])
    assert pick(few) == specs[:2]
    assert named_tools("please resize image now", ["resize_image", "crop_image"]) == {
        "resize_image"
    }


def test_write_text_uses_the_language_model_and_reads_text_artifacts(tmp_path):
    backend = ScriptedChat(["Summary: two dogs on grass."])
    (tmp_path / "notes.txt").write_text("Two terriers sit on a lawn in the sun.")
    plan = {
        "steps": [
            {"id": "s1", "tool": "summarize_text", "args": {"text": "$a1"}},
            {"id": "s2", "tool": "translate_text", "args": {"text": "$s1", "language": "French"}},
        ]
    }
    events = list(
        Assistant(planner=LLMPlanner(backend)).stream("", [tmp_path / "notes.txt"], plan=plan)
    )
    result = events[-1].result
    assert result.ok, result.text
    summary = result.artifacts[0]
    assert summary.modality.value == "text" and summary.read_text() == (
        "Summary: two dogs on grass."
    )
    first_user = backend.calls[0]["messages"][1]["content"]
    assert "Two terriers sit on a lawn" in first_user and "Summarise" in first_user
    assert "Summary: two dogs on grass." in backend.calls[1]["messages"][1]["content"]
    assert any(isinstance(e, Token) and e.step == "s1" for e in events)


def test_write_text_without_a_model_says_what_to_do(monkeypatch):
    from tools.text import apply_language_model

    class Ctx:
        llm = None

    with pytest.raises(Exception, match="no language model is configured"):
        apply_language_model(Ctx(), "x", ["y"], "text")


def test_template_responder_lists_failures():
    from assistant.planners.base import Planner

    text = "".join(
        Planner().respond(
            RespondRequest(
                prompt="x",
                status="failed",
                steps=[
                    {
                        "id": "s1",
                        "tool": "boom",
                        "status": "failed",
                        "error": "bad",
                        "summary": "",
                        "artifacts": [],
                    }
                ],
                artifacts=[],
                failures=[],
            )
        )
    )
    assert "Step s1 (boom) failed: bad" in text
