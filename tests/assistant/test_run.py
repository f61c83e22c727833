"""Running plans end to end through the Python API: data flow, events, failures, sessions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PIL import Image

from assistant import Assistant, AttachmentError
from assistant.events import (
    ApprovalRequired,
    Final,
    PlanReady,
    PlanRejected,
    StepFailed,
    StepFinished,
)
from assistant.planners.base import NoPlanner
from tests.conftest import check_event_order, plugin_assistant

BRANCH_JOIN = {
    "steps": [
        {"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 256}},
        {"id": "s2", "tool": "resize_image", "args": {"image": "$a2", "height": 192}},
        {"id": "s3", "tool": "stitch_images", "args": {"images": ["$s1", "$s2"]}},
    ]
}


def test_branch_and_join_runs_and_passes_outputs_along(images):
    a, b = images
    events = list(Assistant().stream("resize both and stitch", [a, b], plan=BRANCH_JOIN))
    check_event_order(events, BRANCH_JOIN)
    result = events[-1].result
    assert result.ok, result.text
    finished = {e.step: e for e in events if isinstance(e, StepFinished)}
    # s1: 640x480 -> width 256 keeps 4:3; s2: 300x200 -> height 192 keeps 3:2.
    assert Image.open(finished["s1"].artifacts[0].path).size == (256, 192)
    assert Image.open(finished["s2"].artifacts[0].path).size == (288, 192)
    stitched = finished["s3"].artifacts[0]
    assert stitched.metadata["sources"] == [
        finished["s1"].artifacts[0].id,
        finished["s2"].artifacts[0].id,
    ]
    with Image.open(stitched.path) as img:
        assert img.size == (256 + 288, 192)
        # Left half comes from the red image, right half from the blue one.
        assert img.getpixel((10, 180))[0] > 150
        assert img.getpixel((256 + 280, 180))[2] > 150
    assert [art.id for art in result.artifacts][-1] == stitched.id
    assert "stitched 2 images" in result.text


def test_independent_steps_run_at_the_same_time(tmp_path):
    # Each step waits for the other to have started: run one after the other, they would
    # both hit their timeout.
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    plan = {
        "steps": [
            {"id": "s1", "tool": "gate", "args": {"marker": str(m1), "release": str(m2)}},
            {"id": "s2", "tool": "gate", "args": {"marker": str(m2), "release": str(m1)}},
        ]
    }
    events = list(plugin_assistant(step_timeout=20, max_replans=0).stream("x", plan=plan))
    check_event_order(events, plan)
    result = events[-1].result
    assert result.ok, result.text
    kinds = [(type(e).__name__, getattr(e, "step", None)) for e in events]
    first_finish = next(i for i, k in enumerate(kinds) if k[0] == "StepFinished")
    assert {k[1] for k in kinds[:first_finish] if k[0] == "StepStarted"} == {"s1", "s2"}


def test_failed_step_is_replanned_and_the_second_plan_runs(images):
    failing = {"steps": [{"id": "s1", "tool": "boom", "args": {"message": "disk on fire"}}]}
    fixed = {"steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 64}}]}
    events = list(plugin_assistant().stream("x", [images[0]], plan=[failing, fixed]))
    check_event_order(events)
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert [(e.step, e.error) for e in failed] == [("s1", "disk on fire")]
    assert [e.attempt for e in events if isinstance(e, PlanReady)] == [1, 2]
    result = events[-1].result
    assert result.ok
    assert Image.open(result.artifacts[0].path).width == 64


def test_replanning_is_bounded_and_the_reply_says_what_failed():
    failing = {"steps": [{"id": "s1", "tool": "boom", "args": {"message": "disk on fire"}}]}
    a = plugin_assistant(max_replans=2)
    events = list(a.stream("x", plan=[failing] * 5))
    assert sum(isinstance(e, StepFailed) for e in events) == 3  # first try + 2 re-plans
    result = events[-1].result
    assert result.status == "failed"
    assert "s1 (boom) failed: disk on fire" in result.text


def test_a_crashing_tool_is_reported_not_raised():
    plan = {"steps": [{"id": "s1", "tool": "crash", "args": {}}]}
    result = plugin_assistant(max_replans=0).run("x", plan=plan)
    assert result.status == "failed"
    assert "RuntimeError: unexpected bug" in result.text


def test_a_hung_tool_is_stopped_at_its_timeout():
    plan = {"steps": [{"id": "s1", "tool": "hang", "args": {"seconds": 60}}]}
    events = list(plugin_assistant(max_replans=0).stream("x", plan=plan))
    failed = [e for e in events if isinstance(e, StepFailed)]
    assert len(failed) == 1
    assert "timed out after 0.5s" in failed[0].error
    assert failed[0].seconds < 10
    assert events[-1].result.status == "failed"


def test_steps_after_a_failure_are_skipped_not_run(tmp_path):
    log = tmp_path / "log.txt"
    plan = {
        "steps": [
            {"id": "s1", "tool": "boom", "args": {}},
            {"id": "s2", "tool": "count", "args": {"label": "s2", "log": str(log), "after": "$s1"}},
        ]
    }
    result = plugin_assistant(max_replans=0).run("x", plan=plan)
    assert not log.exists()
    assert result.steps["s2"]["status"] == "skipped"
    assert "did not run" in result.text


def test_plan_with_no_steps_is_a_plain_reply():
    result = Assistant().run("hi", plan={"steps": [], "reply": "Hello there."})
    assert result.ok
    assert result.text.startswith("Hello there.")


def test_free_text_without_a_planner_model_says_how_to_go_on():
    events = list(Assistant(planner=NoPlanner("no model here")).stream("make a cat picture"))
    rejected = [e for e in events if isinstance(e, PlanRejected)]
    assert len(rejected) == 1  # not re-asked: asking again cannot help
    assert "--plan" in events[-1].result.text


def test_session_keeps_messages_and_artifacts_across_turns_and_bad_input(images, tmp_path):
    a = Assistant()
    first = a.run(
        "shrink",
        [images[0]],
        plan={
            "steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 100}}]
        },
    )
    session = first.session
    # A missing attachment is refused before anything runs ...
    with pytest.raises(AttachmentError, match="attachment not found"):
        a.run("again", [tmp_path / "missing.png"], session=session, plan=BRANCH_JOIN)
    # ... and so is an empty file.
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(AttachmentError, match="empty"):
        a.run("again", [empty], session=session, plan=BRANCH_JOIN)
    # A truncated image gets a failed step with a clear error; the session goes on.
    broken = tmp_path / "broken.png"
    broken.write_bytes(images[0].read_bytes()[:300])
    bad = a.run(
        "resize broken",
        [broken],
        session=session,
        plan={
            "steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 10}}]
        },
    )
    assert bad.status == "failed"
    assert "truncated or corrupt" in bad.text
    messages = a.messages(session)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    assert messages[1]["artifacts"][0]["id"] == first.artifacts[0].id
    assert Path(first.artifacts[0].path).exists()
    assert a.sessions.get(session).turns == 2


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (12_000, 12_000)).save(bomb)  # 144 MP, a few KB on disk
    plan = {"steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 10}}]}
    result = Assistant(max_replans=0).run("x", [bomb], plan=plan)
    assert result.status == "failed"
    assert "12000x12000" in result.text and "limit" in result.text


def test_approval_interrupts_and_resume_answers(images, monkeypatch):
    from tools.image_ops import ResizeImage

    monkeypatch.setattr(ResizeImage, "needs_approval", True)
    a = Assistant()
    plan = {"steps": [{"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 32}}]}
    events = list(a.stream("x", [images[0]], plan=plan))
    assert isinstance(events[-2], ApprovalRequired)
    assert events[-2].steps[0]["tool"] == "resize_image"
    waiting = events[-1].result
    assert waiting.status == "interrupted"
    assert not any(isinstance(e, StepFinished) for e in events)
    done = a.resume(waiting.session, approve=True)
    assert done.ok and Image.open(done.artifacts[0].path).width == 32

    refused = a.run("x", [images[0]], plan=plan)
    result = a.resume(refused.session, approve=False)
    assert result.status == "failed" and "did not approve" in result.text


def test_cancel_stops_the_run(tmp_path):
    import threading

    a = plugin_assistant(max_replans=0)
    plan = {
        "steps": [
            {
                "id": "s1",
                "tool": "gate",
                "args": {"marker": str(tmp_path / "m"), "release": str(tmp_path / "never")},
            },
            {
                "id": "s2",
                "tool": "count",
                "args": {"label": "x", "log": str(tmp_path / "log"), "after": "$s1"},
            },
        ]
    }
    threading.Timer(0.5, a.cancel).start()
    result = a.run("x", plan=plan)
    assert result.steps["s1"]["error"] == "cancelled"
    assert result.steps["s2"]["status"] == "skipped"
    assert not (tmp_path / "log").exists()


def test_async_twins(images):
    async def go():
        a = Assistant()
        events = [e async for e in a.astream("", list(images), plan=BRANCH_JOIN)]
        result = await a.arun("", list(images), plan=BRANCH_JOIN)
        return events, result

    events, result = asyncio.run(go())
    assert isinstance(events[-1], Final) and events[-1].result.ok
    assert result.ok and len(result.artifacts) == 3


def test_python_attachments_from_memory():
    import numpy as np

    img = Image.new("RGB", (50, 40), "green")
    wave = (np.zeros(8000, dtype=np.float32), 8000)
    plan = {
        "steps": [
            {"id": "s1", "tool": "resize_image", "args": {"image": "$a1", "width": 25}},
            {"id": "s2", "tool": "trim_audio", "args": {"audio": "$a2", "start": 0.5}},
        ]
    }
    result = Assistant().run("", [img, wave], plan=plan)
    assert result.ok, result.text
    assert result.artifacts[0].metadata["height"] == 20
    assert result.artifacts[1].metadata["duration"] == pytest.approx(0.5)


def test_progress_from_a_tool_thread_reaches_the_stream(tmp_path):
    from assistant.events import StepProgress

    plan = {
        "steps": [
            {"id": "s1", "tool": "count", "args": {"label": "p", "log": str(tmp_path / "log")}}
        ]
    }
    events = list(plugin_assistant().stream("x", plan=plan))
    check_event_order(events, plan)
    progress = [e for e in events if isinstance(e, StepProgress)]
    assert [(e.step, e.fraction, e.message) for e in progress] == [("s1", 0.5, "writing p")]


def test_cancel_names_one_session_and_leaves_the_others_running(tmp_path):
    import threading
    import time

    from assistant.api import SessionBusy

    a = plugin_assistant(max_replans=0)

    def gate_plan(name: str) -> dict:
        args = {"marker": str(tmp_path / name), "release": str(tmp_path / f"{name}.go")}
        return {"steps": [{"id": "s1", "tool": "gate", "args": args}]}

    results: dict[str, object] = {}
    threads = [
        threading.Thread(
            target=lambda n=n: results.__setitem__(n, a.run("x", session=n, plan=gate_plan(n)))
        )
        for n in ("one", "two")
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while not ((tmp_path / "one").exists() and (tmp_path / "two").exists()):
        assert time.monotonic() < deadline, "the gates never started"
        time.sleep(0.05)
    assert sorted(a.running()) == ["one", "two"]
    with pytest.raises(SessionBusy, match="already running"):
        a.run("again", session="one", plan=gate_plan("one"))
    with pytest.raises(SessionBusy):
        a.delete("one")

    assert a.cancel("one") is True
    (tmp_path / "two.go").touch()
    for t in threads:
        t.join(30)
    assert results["one"].steps["s1"]["error"] == "cancelled"  # type: ignore[attr-defined]
    assert results["two"].ok  # type: ignore[attr-defined]
    assert a.running() == [] and a.cancel("one") is False


def test_rename_a_session():
    from assistant.api import SessionNotFound

    a = plugin_assistant()
    session = a.run("first title", plan={"steps": [{"id": "s1", "tool": "noop"}]}).session
    a.rename(session, "  holiday photos  ")
    assert a.sessions.get(session).title == "holiday photos"
    with pytest.raises(ValueError, match="empty"):
        a.rename(session, "  ")
    with pytest.raises(SessionNotFound):
        a.rename("nope", "x")
