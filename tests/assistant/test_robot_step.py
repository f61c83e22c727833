"""``Assistant.step``: the robot's slow loop, scripted (no model) and with a scripted chat
model standing in for the planner's, across calls of one episode."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PIL import Image

from assistant import Assistant
from assistant.api import SessionBusy
from assistant.decision import DECISION_SCHEMA
from assistant.planners.llm import LLMPlanner, Reply
from assistant.robot import DecisionError, NoDecisionModel

TASK = "put the red block in the bin"
SUBTASKS = ["pick up the red block", "place it in the bin"]


def camera(color: tuple[int, int, int] = (200, 30, 30)) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:] = color
    return img


def obs(outcome: str | None = None, **extra) -> dict:
    o = {"observation.images.top": camera(), "observation.state": [0.1, 0.2], "task": TASK}
    if outcome:
        o["outcome"] = outcome
    return {**o, **extra}


def test_scripted_subtasks_follow_the_policys_reports():
    a = Assistant()
    first = a.step(obs(), plan=SUBTASKS)
    assert (first.step, first.subtask, first.plan, first.done) == (1, SUBTASKS[0], SUBTASKS, False)
    assert first.decided_by == "scripted"
    steps = [
        a.step(obs("running")),  # still at it: same subtask, same episode
        a.step(obs("failure")),  # failed: tried again
        a.step(obs("success")),
        a.step(obs("running")),
        a.step(obs("success")),
        a.step(obs()),  # done stays done
    ]
    assert {d.episode for d in steps} == {first.episode}
    assert [d.step for d in steps] == [2, 3, 4, 5, 6, 7]
    assert [d.subtask for d in steps] == [
        SUBTASKS[0],
        SUBTASKS[0],
        SUBTASKS[1],
        SUBTASKS[1],
        "",
        "",
    ]
    assert "retrying" in steps[1].reason
    assert steps[2].plan == [SUBTASKS[1]]
    assert [d.done for d in steps] == [False, False, False, False, True, True]
    assert steps[-2].reason == "all 2 subtasks are done"
    # The frames were stored in the episode's session; the session is listed.
    frame = steps[0].artifacts[0]
    assert frame.metadata["camera"] == "top" and frame.mime == "image/jpeg"
    with Image.open(frame.path) as img:
        assert img.size == (64, 48)
        r, g, b = img.convert("RGB").getpixel((10, 10))
        assert r > 180 and g < 60 and b < 60
    assert set(steps[0].timing) == {"parse", "store", "decide", "record", "total"}
    assert steps[0].timing["total"] >= steps[0].timing["store"] >= 0
    info = a.sessions.get(first.episode)
    assert info is not None and info.title == f"robot: {TASK}" and info.turns == 7
    assert [r.reported for r in a.robot.history()][:3] == [None, "running", "failure"]


def test_without_reports_every_call_asks_for_the_next_subtask():
    a = Assistant()
    got = [a.step(obs(), plan=SUBTASKS if i == 0 else None) for i in range(3)]
    assert [d.subtask for d in got] == [*SUBTASKS, ""]
    assert got[-1].done


def test_scripted_decisions_one_per_call_then_used_up():
    a = Assistant()
    script = [
        {"subtask": "Open the drawer.", "plan": ["open the drawer", "take the cup"]},
        {"subtask": "take the cup", "reason": "the drawer is open"},
    ]
    one = a.step(obs(), plan=script)
    two = a.step(obs("success"))
    three = a.step(obs())
    assert one.subtask == "open the drawer" and one.plan == ["open the drawer", "take the cup"]
    assert (two.subtask, two.reason, two.plan) == (
        "take the cup",
        "the drawer is open",
        ["take the cup"],
    )
    assert three.done and "used up" in three.reason
    with pytest.raises(ValueError, match="decision 1: subtask is empty but done is false"):
        a.step(obs(), plan=[{"subtask": "", "done": False}])
    with pytest.raises(ValueError, match="plan= is a list of subtasks"):
        a.step(obs(), plan=[])


def test_an_episode_continues_in_a_new_process_and_reset_starts_another():
    a = Assistant()
    first = a.step(obs(), plan=SUBTASKS)
    a.step(obs("running"))
    # A new Assistant (a restarted process) continues the same episode from disk.
    b = Assistant()
    later = b.step(obs("success"), episode=first.episode)
    assert (later.episode, later.step, later.subtask) == (first.episode, 3, SUBTASKS[1])
    assert [r.subtask for r in b.robot.history(first.episode)] == [SUBTASKS[0]] * 2 + [SUBTASKS[1]]
    # An image without an instruction continues it: the episode knows its task.
    image_only = b.step({"observation.images.top": camera(), "outcome": "success"})
    assert image_only.done and image_only.episode == first.episode
    # reset: a fresh episode (a new session) whose first step needs its own instruction.
    with pytest.raises(ValueError, match="needs an instruction"):
        b.step({"observation.images.top": camera(), "reset": True})
    fresh = b.step(obs(reset=True), plan=["wave"])
    assert fresh.episode != first.episode and fresh.step == 1 and fresh.subtask == "wave"
    with pytest.raises(ValueError, match="already has steps"):
        b.step(obs(reset=True), episode=first.episode)
    assert b.robot.new_episode("ep-7") == "ep-7" and b.robot.current == "ep-7"
    with pytest.raises(ValueError, match="must be letters, digits"):
        b.step(obs(), episode="../escape")


def test_a_conversation_session_is_not_an_episode():
    a = Assistant(tool_modules=["tests.plugin_tools"])
    run = a.run("noop", plan={"steps": [{"id": "s1", "tool": "noop", "args": {}}]})
    with pytest.raises(ValueError, match="is a conversation, not a robot episode"):
        a.step(obs(), episode=run.session, plan=SUBTASKS)


class ScriptedChat:
    """A chat backend answering from a list, recording what it was asked."""

    name = "scripted-chat"

    def __init__(self, answers: list[str], sees_images: bool = False):
        self.answers = list(answers)
        self.sees_images = sees_images
        self.calls: list[dict] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def chat(self, messages, *, schema=None, tools=None, max_tokens=None, on_token=None):
        self.calls.append({"messages": messages, "schema": schema, "max_tokens": max_tokens})
        self.entered.set()
        self.release.wait(10)
        return Reply(text=self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])


def answer(subtask: str = "", done: bool = False, plan=(), reason: str = "ok") -> str:
    return json.dumps({"reason": reason, "done": done, "subtask": subtask, "plan": list(plan)})


def model_assistant(chat: ScriptedChat) -> Assistant:
    return Assistant(planner=LLMPlanner(chat))


def user_text(call: dict) -> str:
    content = call["messages"][1]["content"]
    return "\n".join(p["text"] for p in content if p["type"] == "text")


def test_the_model_sees_task_state_and_history_and_answers_to_the_schema():
    chat = ScriptedChat(
        [
            answer("Pick up the red block.", plan=SUBTASKS, reason="nothing done yet"),
            answer("place it in the bin", plan=SUBTASKS[1:]),
            answer(done=True, reason="the block is in the bin"),
        ]
    )
    a = model_assistant(chat)
    one = a.step(obs())
    assert one.subtask == "pick up the red block" and one.plan == SUBTASKS  # tidied
    assert one.decided_by == "scripted-chat" and one.reason == "nothing done yet"
    kept = a.step(obs("running"))  # a blind model has nothing new while the policy runs
    assert kept.subtask == one.subtask and kept.decided_by == "kept" and len(chat.calls) == 1
    two = a.step(obs("success"))
    three = a.step(obs("success"))
    assert two.subtask == "place it in the bin" and three.done and three.subtask == ""
    assert [c["schema"] for c in chat.calls] == [DECISION_SCHEMA] * 3
    assert all(c["max_tokens"] and c["max_tokens"] <= 256 for c in chat.calls)
    first, second, third = (user_text(c) for c in chat.calls)
    assert f"Task: {TASK}" in first and "start of the task" in first
    assert "Robot state: [0.1, 0.2]" in first and "you cannot see the images" in first
    assert (
        'Current subtask: "pick up the red block" (asked 2 times); the policy reports: success'
        in second
    )
    assert '- "pick up the red block": success' in third
    assert 'Current subtask: "place it in the bin"; the policy reports: success' in third
    # Text-only backends get no image parts.
    assert all(p["type"] == "text" for c in chat.calls for p in c["messages"][1]["content"])


def test_a_seeing_model_gets_the_frames_and_is_asked_while_the_policy_runs():
    chat = ScriptedChat([answer("pick up the red block")], sees_images=True)
    a = model_assistant(chat)
    first = a.step(obs())
    a.step(obs("running"))
    assert len(chat.calls) == 2
    parts = chat.calls[0]["messages"][1]["content"]
    images = [p for p in parts if p["type"] == "image"]
    assert [p["path"] for p in images] == [first.artifacts[0].path]
    assert "you cannot see" not in user_text(chat.calls[0])


def test_a_bad_answer_is_repaired_once_then_refused():
    chat = ScriptedChat(["no idea", answer("pick up the red block")])
    a = model_assistant(chat)
    assert a.step(obs()).subtask == "pick up the red block"
    repair = chat.calls[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "no idea"}
    assert "no JSON decision" in repair[-1]["content"]
    stuck = model_assistant(ScriptedChat([answer("", done=False)]))
    with pytest.raises(DecisionError, match="no usable decision in 2 tries.*subtask is empty"):
        stuck.step(obs())
    assert stuck.robot.history() == []  # nothing recorded for a step without a decision


def test_no_model_and_no_script_says_how_to_configure_one():
    a = Assistant(llama={"model": "no-such-model"})
    with pytest.raises(NoDecisionModel) as info:
        a.step(obs())
    text = str(info.value)
    assert "no model can decide the next subtask" in text
    assert "anymodal models pull no-such-model" in text and "planner = 'openai'" in text
    assert "plan=[subtasks]" in text
    assert a.step(obs(), plan=SUBTASKS).subtask == SUBTASKS[0]  # a script needs no model
    with pytest.raises(NoDecisionModel, match="planner = 'scripted' has no model"):
        Assistant(planner="scripted").step(obs())


def test_a_second_step_in_a_deciding_episode_is_session_busy():
    chat = ScriptedChat([answer("pick up the red block")])
    a = model_assistant(chat)
    a.robot.new_episode("ep-busy")
    chat.release.clear()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            a.step(obs(), episode="ep-busy")
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=first)
    worker.start()
    assert chat.entered.wait(10)
    assert a.running() == ["ep-busy"]
    with pytest.raises(SessionBusy, match="ep-busy"):
        a.step(obs(), episode="ep-busy")
    chat.release.set()
    worker.join(10)
    assert not errors and a.running() == []
    assert len(a.robot.history("ep-busy")) == 1


def test_a_reason_cut_at_the_schema_limit_loses_its_partial_word():
    limit = DECISION_SCHEMA["properties"]["reason"]["maxLength"]
    cut = "the red block sits in the bin while the blue block waits near the cupboard"[:limit]
    assert len(cut) == limit and not cut.endswith(" ")
    a = model_assistant(ScriptedChat([answer("pick up the blue block", reason=cut)]))
    reason = a.step(obs()).reason
    assert reason == cut.rsplit(" ", 1)[0] + " ..."


def test_the_example_loop_runs_a_scripted_episode_to_the_end(monkeypatch):
    import importlib.util
    import sys

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("robot_loop", REPO / "examples" / "robot_loop.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "robot_loop", example)  # its dataclasses look it up
    spec.loader.exec_module(example)
    a = Assistant()
    world = example.run_episode(a, scripted=True, say=False)
    assert world.in_bin == {"red", "blue"} and world.holding is None
    history = a.robot.history()
    assert history[-1].done and [r.subtask for r in history if r.subtask][0] == example.SCRIPT[0]
    assert {r.reported for r in history} >= {"running", "success"}  # the policy's reports arrived


def test_a_one_word_subtask_is_sent_back_as_no_instruction():
    chat = ScriptedChat([answer("cup"), answer("pick up the cup")])
    a = model_assistant(chat)
    assert a.step(obs()).subtask == "pick up the cup"
    assert "'cup' is not an instruction" in chat.calls[1]["messages"][-1]["content"]


def test_repeated_failures_are_pointed_out_to_the_model():
    chat = ScriptedChat([answer("pick up the blue block")])
    a = model_assistant(chat)
    for outcome in (None, "failure", "failure"):
        a.step(obs(outcome))
    assert "failed" not in user_text(chat.calls[1])
    assert "It has failed 2 times: do not ask for it again now" in user_text(chat.calls[2])
