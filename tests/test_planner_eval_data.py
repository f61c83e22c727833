"""The planner evaluation set (benchmarks/planner_eval): its catalog, its tasks, its scorer."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

EVAL = Path(__file__).resolve().parents[1] / "benchmarks" / "planner_eval"


def _load_metrics() -> Any:
    spec = importlib.util.spec_from_file_location("planner_eval_metrics", EVAL / "metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


m = _load_metrics()
TOOLS = m.load_tools()
CATALOG = {t["name"]: t for t in TOOLS}
TASKS = m.load_tasks()

# Canonical tool names and the argument names every later issue relies on.
CANONICAL: dict[str, dict[str, set[str]]] = {
    "spine": {
        "resize_image": {"image", "width", "height"},
        "crop_image": {"image"},
        "stitch_images": {"images", "layout"},
        "convert_image": {"image"},
        "trim_audio": {"audio", "start", "end"},
        "concat_audio": {"audios"},
        "convert_audio": {"audio"},
        "download_url": {"url"},
    },
    "text": {
        "write_text": {"instruction", "texts"},
        "summarize_text": {"text"},
        "translate_text": {"text", "language"},
    },
    "image": {
        "generate_image": {
            "prompt",
            "negative_prompt",
            "width",
            "height",
            "steps",
            "seed",
            "num_images",
        },
        "edit_image": {"image", "instruction", "strength", "style_image"},
        "inpaint_image": {"image", "mask", "prompt"},
        "caption_image": {"image"},
        "ask_image": {"image", "question"},
        "read_text": {"image"},
        "detect_objects": {"image", "labels"},
        "segment_image": {"image", "prompt"},
        "draw_boxes": {"image"},
        "blur_outside_mask": {"image", "mask"},
        "rotate_image": {"image"},
        "add_text_to_image": {"image", "text"},
        "contact_sheet": {"images"},
        "audio_to_image": set(),  # an audio tool that makes images; listed under audio below
    },
    "audio": {
        "transcribe": {"audio"},
        "speak": {"text"},
        "generate_music": {"prompt", "duration", "seed"},
        "generate_sound": {"prompt", "duration", "seed"},
        "mix_audio": {"audios"},
        "fade_audio": {"audio"},
        "normalize_audio": {"audio"},
        "change_speed_pitch": {"audio"},
        "audio_effects": {"audio"},
        "reduce_noise": {"audio"},
        "audio_to_image": {"audio"},
    },
    "video": {
        "generate_video": {"prompt", "frames", "fps", "seed"},
        "animate_image": {"image", "motion"},
        "describe_video": {"video"},
        "ask_video": {"video", "question"},
        "extract_audio": {"video"},
        "extract_frames": {"video"},
        "change_speed": {"video"},
        "trim_video": {"video"},
        "concat_videos": {"videos"},
        "stabilize_video": {"video"},
        "add_audio": {"video", "audio", "mode"},
        "video_to_gif": {"video"},
        "slideshow": {"images", "audio", "seconds_per_image"},
    },
    "memory": {"remember": {"artifacts"}, "search_memory": {"query", "modality", "limit"}},
    "3d": {
        "generate_3d": {"prompt", "seed"},
        "image_to_3d": {"image"},
        "describe_mesh": {"mesh"},
        "convert_mesh": {"mesh", "format"},
        "simplify_mesh": {"mesh", "faces"},
        "render_mesh": {"mesh"},
    },
}
del CANONICAL["image"]["audio_to_image"]
GROUP_OF = {name: group for group, tools in CANONICAL.items() for name in tools}
SUPPORTED_KEYWORDS = {
    "type",
    "description",
    "title",
    "default",
    "enum",
    "anyOf",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "x-modality",
}
SLOT_HINTS = (
    "artifact: '$a1' for the first attachment, '$s1' for step s1's output)",
    "(literal text, or '$s1' for the text a step produced)",  # tools.base.text_input
)


def _plan(*steps: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {"steps": [{"id": i, "tool": t, "args": a} for i, t, a in steps]}


def _problems(plan: Any, n: int = 1, modalities: list[str] | None = None) -> list[str]:
    return m.validate_plan_against_catalog(plan, TOOLS, n, modalities)


# ----------------------------------------------------------------------------- the catalog


def test_catalog_has_exactly_the_canonical_tools_and_argument_names() -> None:
    assert len(TOOLS) == len(CATALOG), "tool names must be unique"
    assert set(CATALOG) == set(GROUP_OF)
    for name, group in GROUP_OF.items():
        props = set(CATALOG[name]["input_schema"]["properties"])
        missing = CANONICAL[group][name] - props
        assert not missing, f"{name} lacks {missing}"
    layout = CATALOG["stitch_images"]["input_schema"]["properties"]["layout"]
    assert layout["enum"] == ["horizontal", "vertical", "grid"]
    mode = CATALOG["add_audio"]["input_schema"]["properties"]["mode"]
    assert mode["enum"] == ["replace", "mix"]


def _walk(node: Any, seen: list[dict[str, Any]]) -> None:
    if isinstance(node, dict):
        seen.append(node)
        for key, value in node.items():
            if key == "properties":
                for sub in value.values():
                    _walk(sub, seen)
            elif key in ("items", "additionalProperties") and isinstance(value, dict):
                _walk(value, seen)
            elif key == "anyOf":
                for sub in value:
                    _walk(sub, seen)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_spec_is_well_formed(name: str) -> None:
    spec = CATALOG[name]
    assert set(spec) == {
        "name",
        "description",
        "input_schema",
        "input_modalities",
        "output_modalities",
    }
    assert spec["description"] and len(spec["description"]) < 200
    schema = spec["input_schema"]
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])
    nodes: list[dict[str, Any]] = []
    _walk(schema, nodes)
    found: list[str] = []
    for node in nodes:
        unknown = set(node) - SUPPORTED_KEYWORDS
        assert not unknown, f"{name}: the validator does not know {unknown}"
        if "x-modality" in node:
            assert node["type"] == "string"
            assert node["description"].endswith(SLOT_HINTS), node["description"]
            assert set(node["x-modality"]) <= set(m.MODALITIES)
            found += [x for x in node["x-modality"] if x not in found]
    assert spec["input_modalities"] == found
    assert set(spec["output_modalities"]) <= set(m.MODALITIES)


def test_spine_specs_match_the_live_registry() -> None:
    """Gold plans stay valid against the real tools wherever a tool exists for real."""
    try:
        from tools.registry import Registry

        live = {s["name"]: s for s in Registry.discover().specs()}
    except Exception as exc:  # the registry is other tests' business
        pytest.skip(f"the tool registry does not load: {exc}")
    for name in CANONICAL["spine"]:
        assert name in live
        ours, theirs = CATALOG[name]["input_schema"], live[name]["input_schema"]
        assert set(ours["required"]) <= set(theirs["properties"]), name
        assert set(theirs["required"]) <= set(ours["properties"]), name
        assert CATALOG[name]["output_modalities"] == live[name]["output_modalities"], name
    merged = {**CATALOG, **{k: v for k, v in live.items() if k in CATALOG}}
    for task in TASKS:
        atts = task["attachments"]
        problems = m.validate_plan_against_catalog(
            task["gold"], merged, len(atts), [a["modality"] for a in atts]
        )
        assert problems == [], (task["id"], problems)


# ----------------------------------------------------------------------------- the tasks


def test_task_records_are_well_formed() -> None:
    assert len(TASKS) >= 90
    ids = [t["id"] for t in TASKS]
    assert len(ids) == len(set(ids))
    requests = [t["request"].strip().lower() for t in TASKS]
    assert len(requests) == len(set(requests)), "requests must not repeat"
    for t in TASKS:
        assert set(t) == {"id", "category", "kind", "request", "attachments", "gold"}, t["id"]
        assert t["category"] in m.CATEGORIES and t["kind"] in m.KINDS, t["id"]
        assert 5 <= len(t["request"]) <= 400, t["id"]
        names = [a["name"] for a in t["attachments"]]
        assert len(names) == len(set(names)), t["id"]
        for a in t["attachments"]:
            assert set(a) == {"name", "modality"} and a["modality"] in m.MODALITIES, t["id"]
        assert set(t["gold"]) == {"steps"} and t["gold"]["steps"], t["id"]


@pytest.mark.parametrize("task", TASKS, ids=[t["id"] for t in TASKS])
def test_gold_plan_is_valid(task: dict[str, Any]) -> None:
    atts = task["attachments"]
    assert _problems(task["gold"], len(atts), [a["modality"] for a in atts]) == []
    # Every attachment is used: a gold plan that ignores a file is probably wrong.
    used = {r for s in task["gold"]["steps"] for r in m.references(s["args"])}
    assert {f"a{i}" for i in range(1, len(atts) + 1)} <= used, task["id"]


def test_kinds_match_the_plan_shapes() -> None:
    for t in TASKS:
        assert m.plan_shape(t["gold"]) == t["kind"], t["id"]
        if t["kind"] == "chain":
            assert 2 <= len(t["gold"]["steps"]) <= 4, t["id"]


def test_every_category_has_every_kind_and_the_mix_is_balanced() -> None:
    pairs = Counter((t["category"], t["kind"]) for t in TASKS)
    for category in m.CATEGORIES:
        for kind in m.KINDS:
            assert pairs[(category, kind)] >= 2, (category, kind)
    kinds = Counter(t["kind"] for t in TASKS)
    for kind in m.KINDS:
        assert 0.25 <= kinds[kind] / len(TASKS) <= 0.42, kinds
    assert Counter(t["category"] for t in TASKS)["cross"] >= 15


def test_every_tool_is_exercised() -> None:
    used = Counter(s["tool"] for t in TASKS for s in t["gold"]["steps"])
    assert set(CATALOG) - set(used) == set()


def test_categories_use_their_own_tools() -> None:
    for t in TASKS:
        tools = [s["tool"] for s in t["gold"]["steps"]]
        cat = t["category"]
        if cat == "memory":
            assert {"remember", "search_memory"} & set(tools), t["id"]
        elif cat == "cross":
            mods = {a["modality"] for a in t["attachments"]}
            for name in tools:
                mods |= set(CATALOG[name]["input_modalities"])
                mods |= set(CATALOG[name]["output_modalities"])
            assert len(mods) >= 2, t["id"]
        else:
            assert any(GROUP_OF[n] == cat for n in tools), t["id"]


def test_requests_are_varied() -> None:
    names_tool = [t for t in TASKS if any(n in t["request"] for n in CATALOG)]
    names_file = [t for t in TASKS if any(a["name"] in t["request"] for a in t["attachments"])]
    deictic = [t for t in TASKS if "this" in t["request"].lower() or "these" in t["request"]]
    terse = [t for t in TASKS if len(t["request"]) < 40]
    long = [t for t in TASKS if len(t["request"]) > 120]
    assert len(names_tool) >= 3 and len(names_file) >= 15 and len(deictic) >= 20
    assert len(terse) >= 8 and len(long) >= 8
    assert sum(1 for t in TASKS if not t["attachments"]) >= 15


# ----------------------------------------------------------------------------- metrics

GOLD = _plan(
    ("s1", "detect_objects", {"image": "$a1", "labels": ["cat"]}),
    ("s2", "draw_boxes", {"image": "$a1", "detections": "$s1"}),
)


def test_gold_scores_one_against_itself() -> None:
    for t in TASKS:
        assert m.tool_f1(t["gold"], t["gold"]) == 1.0
        assert m.edge_f1(t["gold"], t["gold"]) == 1.0
        assert m.exact(t["gold"], t["gold"]) is True
        ids = {s["id"] for s in t["gold"]["steps"]}
        assert m.align(t["gold"]["steps"], t["gold"]["steps"]) == {i: i for i in ids}


def test_edges_of_a_plan() -> None:
    assert m.plan_edges(GOLD) == {("$a1", "s1"), ("$a1", "s2"), ("s1", "s2")}


def test_a_wrong_tool_lowers_the_scores() -> None:
    pred = _plan(
        ("p1", "caption_image", {"image": "$a1"}),
        ("p2", "draw_boxes", {"image": "$a1", "detections": "$p1"}),
    )
    assert m.align(pred["steps"], GOLD["steps"]) == {"p2": "s2"}
    assert m.tool_f1(pred, GOLD) == pytest.approx(0.5)
    # pred edges: ($a1, ~p1), ($a1, s2), (~p1, s2): only ($a1, s2) is right.
    assert m.edge_f1(pred, GOLD) == pytest.approx(1 / 3)
    assert m.exact(pred, GOLD) is False


def test_a_missing_edge_lowers_edge_f1_only() -> None:
    pred = _plan(
        ("x1", "detect_objects", {"image": "$a1"}),
        ("x2", "draw_boxes", {"image": "$a1", "detections": "f" * 64}),
    )
    assert m.align(pred["steps"], GOLD["steps"]) == {"x1": "s1", "x2": "s2"}
    assert m.tool_f1(pred, GOLD) == 1.0
    assert m.edge_f1(pred, GOLD) == pytest.approx(0.8)  # 2 of 2 predicted, 2 of 3 gold
    assert m.exact(pred, GOLD) is False


def test_a_missing_or_extra_step() -> None:
    missing = _plan(("s1", "detect_objects", {"image": "$a1"}))
    assert m.tool_f1(missing, GOLD) == pytest.approx(2 / 3)
    assert m.edge_f1(missing, GOLD) == pytest.approx(0.5)
    extra = {"steps": [*GOLD["steps"], {"id": "s3", "tool": "resize_image", "args": {}}]}
    extra["steps"][2]["args"] = {"image": "$s2", "width": 100}
    assert m.tool_f1(extra, GOLD) == pytest.approx(0.8)
    assert m.edge_f1(extra, GOLD) == pytest.approx(6 / 7)  # 3 of 4 predicted, 3 of 3 gold
    assert m.exact(extra, GOLD) is False


def test_empty_and_missing_plans() -> None:
    assert m.tool_f1({"steps": []}, {"steps": []}) == 1.0
    assert m.edge_f1([], []) == 1.0
    assert m.tool_f1({"steps": []}, GOLD) == 0.0
    assert m.edge_f1(None, GOLD) == 0.0
    assert m.score_plan(None, GOLD) == {"tool_f1": 0.0, "edge_f1": 0.0, "exact": False}
    # No step edges on either side, but attachment edges still count.
    gen = _plan(("s1", "generate_image", {"prompt": "a cat"}))
    assert m.edge_f1(gen, gen) == 1.0
    assert m.edge_f1(gen, _plan(("s1", "generate_image", {"prompt": "$a1"}))) == 0.0


def test_alignment_prefers_the_same_attachments() -> None:
    gold = _plan(
        ("s1", "caption_image", {"image": "$a1"}), ("s2", "caption_image", {"image": "$a2"})
    )
    pred = _plan(
        ("p1", "caption_image", {"image": "$a2"}), ("p2", "caption_image", {"image": "$a1"})
    )
    assert m.align(pred["steps"], gold["steps"]) == {"p1": "s2", "p2": "s1"}
    assert m.edge_f1(pred, gold) == 1.0 and m.exact(pred, gold) is True
    swapped = _plan(
        ("p1", "caption_image", {"image": "$a1"}), ("p2", "caption_image", {"image": "$a1"})
    )
    assert m.edge_f1(swapped, gold) == pytest.approx(0.5)
    assert m.exact(swapped, gold) is False


def test_alignment_prefers_the_same_topological_position() -> None:
    gold = _plan(
        ("s1", "resize_image", {"image": "$a1", "width": 512}),
        ("s2", "resize_image", {"image": "$s1", "width": 256}),
    )
    # Listed in the other order, with other ids: the references decide.
    pred = _plan(
        ("late", "resize_image", {"image": "$early", "width": 256}),
        ("early", "resize_image", {"image": "$a1", "width": 512}),
    )
    assert m.align(pred["steps"], gold["steps"]) == {"early": "s1", "late": "s2"}
    assert m.exact(pred, gold) is True
    # Argument values other than references are not compared.
    pred["steps"][0]["args"]["width"] = 999
    assert m.exact(pred, gold) is True


def test_alignment_is_one_to_one_with_more_predicted_than_gold() -> None:
    gold = _plan(("s1", "caption_image", {"image": "$a1"}))
    pred = _plan(
        ("p1", "caption_image", {"image": "$a2"}),
        ("p2", "caption_image", {"image": "$a1"}),
        ("p3", "caption_image", {"image": "$a3"}),
    )
    assert m.align(pred, gold) == {"p2": "s1"}
    assert m.tool_f1(pred, gold) == pytest.approx(0.5)
    assert m.edge_f1(pred, gold) == pytest.approx(0.5)


def test_plan_shapes() -> None:
    assert m.plan_shape({"steps": []}) == "empty"
    assert m.plan_shape(GOLD["steps"][:1]) == "single"
    assert m.plan_shape(GOLD) == "chain"
    fan = _plan(
        ("s1", "segment_image", {"image": "$a1", "prompt": "dog"}),
        ("s2", "blur_outside_mask", {"image": "$a1", "mask": "$s1"}),
        ("s3", "inpaint_image", {"image": "$a1", "mask": "$s1", "prompt": "cat"}),
    )
    assert m.plan_shape(fan) == "branch"
    parallel = _plan(
        ("s1", "caption_image", {"image": "$a1"}), ("s2", "read_text", {"image": "$a1"})
    )
    assert m.plan_shape(parallel) == "branch"


# ----------------------------------------------------------------------------- summarize


RECORDS = [
    {"category": "image", "kind": "single", "valid": True, "tool_f1": 1.0, "edge_f1": 1.0,
     "exact": True, "latency_s": 1.0},
    {"category": "image", "kind": "chain", "valid": True, "tool_f1": 0.5, "edge_f1": 0.25,
     "exact": False, "latency_s": 2.0},
    # Invalid: its scores must not count.
    {"category": "audio", "kind": "single", "valid": False, "tool_f1": 1.0, "edge_f1": 1.0,
     "exact": True, "latency_s": 3.0},
    {"category": "audio", "kind": "chain", "valid": True, "tool_f1": 1.0, "edge_f1": 1.0,
     "exact": True, "latency_s": 4.0},
    # Missing prediction.
    {"category": "audio", "kind": "branch", "valid": False, "tool_f1": None, "edge_f1": None,
     "exact": None, "latency_s": 10.0},
]  # fmt: skip


def test_summarize_overall() -> None:
    s = m.summarize(RECORDS)
    assert s["n"] == 5
    assert s["valid_plan_rate"] == pytest.approx(0.6)
    assert s["tool_f1"] == pytest.approx(0.5)  # (1 + 0.5 + 0 + 1 + 0) / 5
    assert s["edge_f1"] == pytest.approx(0.45)  # (1 + 0.25 + 0 + 1 + 0) / 5
    assert s["exact_plan_rate"] == pytest.approx(0.4)
    assert s["latency_median_s"] == pytest.approx(3.0)
    assert s["latency_p90_s"] == pytest.approx(7.6)  # rank 3.6: 4 + 0.6 * (10 - 4)


def test_summarize_per_category_and_kind() -> None:
    s = m.summarize(RECORDS)
    assert set(s["by_category"]) == {"image", "audio"}
    img = s["by_category"]["image"]
    assert img["n"] == 2 and img["valid_plan_rate"] == 1.0
    assert img["tool_f1"] == pytest.approx(0.75)
    assert img["edge_f1"] == pytest.approx(0.625)
    assert img["exact_plan_rate"] == pytest.approx(0.5)
    assert img["latency_median_s"] == pytest.approx(1.5)
    assert img["latency_p90_s"] == pytest.approx(1.9)
    aud = s["by_category"]["audio"]
    assert aud["valid_plan_rate"] == pytest.approx(1 / 3)
    assert aud["tool_f1"] == pytest.approx(1 / 3)
    assert aud["latency_median_s"] == pytest.approx(4.0)
    single = s["by_kind"]["single"]
    assert single["n"] == 2 and single["tool_f1"] == pytest.approx(0.5)
    assert single["exact_plan_rate"] == pytest.approx(0.5)
    assert s["by_kind"]["branch"]["tool_f1"] == 0.0


def test_summarize_latencies() -> None:
    recs = [{"valid": True, "latency_s": x, "category": "c", "kind": "k"} for x in (5, 1, 3, 2, 4)]
    recs.append({"valid": True, "latency_s": None, "category": "c", "kind": "k"})
    s = m.summarize(recs)
    assert s["latency_median_s"] == 3.0
    assert s["latency_p90_s"] == pytest.approx(4.6)
    assert m.summarize(recs[:4])["latency_median_s"] == pytest.approx(2.5)
    assert m.percentile([7.0], 90) == 7.0
    assert m.percentile([], 50) is None
    assert m.summarize([])["n"] == 0
    assert m.summarize([])["latency_p90_s"] is None


def test_score_prediction_makes_summarize_records() -> None:
    task = next(t for t in TASKS if t["kind"] == "chain")
    good = m.score_prediction(task, task["gold"], TOOLS, latency_s=1.5)
    assert good["valid"] and good["exact"] and good["tool_f1"] == 1.0
    assert good["latency_s"] == 1.5 and good["category"] == task["category"]
    bad_plan = json.loads(json.dumps(task["gold"]))
    bad_plan["steps"][0]["tool"] = "no_such_tool"
    bad = m.score_prediction(task, bad_plan, TOOLS)
    assert not bad["valid"] and bad["tool_f1"] == 0.0 and bad["exact"] is False
    assert any("unknown tool" in p for p in bad["problems"])
    assert m.score_prediction(task, None, TOOLS)["problems"] == ["no plan was produced"]


# ----------------------------------------------------------------------------- validation


def test_validation_accepts_the_plan_forms() -> None:
    assert _problems(GOLD) == []
    assert _problems(GOLD["steps"]) == []
    assert _problems(json.dumps(GOLD)) == []
    assert _problems({"steps": [], "reply": "Hello!"}, 0) == []
    # Literal text goes into text slots; an artifact id into any slot.
    assert _problems(_plan(("s1", "speak", {"text": "hi there"})), 0) == []
    assert _problems(_plan(("s1", "resize_image", {"image": "a" * 64, "width": 10})), 0) == []
    # A tool with no declared outputs (search_memory) may feed any slot; a modality selector too.
    recall = ("s1", "search_memory", {"query": "my dog", "modality": "image"})
    assert (
        _problems(_plan(recall, ("s2", "edit_image", {"image": "$s1", "instruction": "x"})), 0)
        == []
    )
    frames = ("s1", "extract_frames", {"video": "$a1", "count": 2})
    assert _problems(_plan(frames, ("s2", "caption_image", {"image": "$s1.2"}))) == []


@pytest.mark.parametrize(
    ("plan", "n", "expected"),
    [
        (_plan(("s1", "sharpen", {"image": "$a1"})), 1, "unknown tool 'sharpen'"),
        (_plan(("s1", "ask_image", {"image": "$a1"})), 1, "question: required argument missing"),
        (_plan(("s1", "resize_image", {"image": "$a1", "width": "big"})), 1, "width"),
        (_plan(("s1", "resize_image", {"image": "$a1", "width": True})), 1, "width"),
        (_plan(("s1", "generate_image", {"prompt": "x", "num_images": 20})), 0, "<= 8"),
        (_plan(("s1", "generate_image", {"prompt": "x", "steps": 2.5})), 0, "should be integer"),
        (
            _plan(("s1", "stitch_images", {"images": ["$a1", "$a2"], "layout": "diagonal"})),
            2,
            "must be one of 'horizontal', 'vertical', 'grid'",
        ),
        (_plan(("s1", "stitch_images", {"images": ["$a1"]})), 1, "at least 2 item"),
        (
            _plan(("s1", "caption_image", {"image": "$a1", "style": "poem"})),
            1,
            "unexpected argument",
        ),
        (_plan(("s1", "caption_image", {"image": "$a3"})), 1, "names attachment 3, but 1 file"),
        (_plan(("s1", "caption_image", {"image": "$s9"})), 1, "$s9 names no step"),
        (_plan(("s1", "caption_image", {"image": "$s1"})), 1, "refers to its own output"),
        (
            _plan(("s1", "caption_image", {"image": "photo.jpg"})),
            1,
            "expected an artifact reference (image)",
        ),
        (
            _plan(
                ("s1", "caption_image", {"image": "$a1"}),
                ("s2", "resize_image", {"image": "$s1", "width": 10}),
            ),
            1,
            "$s1 is text (from caption_image); this needs image",
        ),
        (
            _plan(
                ("s1", "caption_image", {"image": "$a1"}),
                ("s2", "transcribe", {"audio": "$s1.audio"}),
            ),
            1,
            "caption_image produces no audio",
        ),
        (
            _plan(
                ("s1", "caption_image", {"image": "$a1"}),
                ("s2", "ask_image", {"image": "$a1", "question": "$s1"}),
            ),
            1,
            "looks like a reference",
        ),
        (
            _plan(
                ("s1", "resize_image", {"image": "$s2", "width": 10}),
                ("s2", "resize_image", {"image": "$s1", "width": 10}),
            ),
            0,
            "the steps form a cycle",
        ),
        (
            _plan(
                ("s1", "caption_image", {"image": "$a1"}),
                ("s1", "read_text", {"image": "$a1"}),
            ),
            1,
            "step ids used twice: s1",
        ),
        (_plan(("a1", "caption_image", {"image": "$a1"})), 1, "step id 'a1'"),
        ({"steps": [{"id": "s1", "tool": "caption_image"}], "why": "x"}, 0, "unexpected plan key"),
        ("{not json", 0, "not valid JSON"),
    ],
)
def test_validation_reports(plan: Any, n: int, expected: str) -> None:
    problems = _problems(plan, n)
    assert any(expected in p for p in problems), problems


def test_validation_checks_attachment_modalities_when_given() -> None:
    plan = _plan(("s1", "transcribe", {"audio": "$a1"}))
    assert _problems(plan, 1) == []
    assert _problems(plan, 1, ["video"]) == []
    assert _problems(plan, 1, ["image"]) == [
        "s1 (transcribe): audio: $a1 is image; this needs audio/video"
    ]
